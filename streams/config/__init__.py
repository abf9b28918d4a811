"""Driftline's settings (:mod:`~streams.config.settings`): every ``DRIFTLINE_*`` variable, read
once at the edge and passed down as constructor arguments. The bottom layer of ``streams``,
beside :mod:`streams.contracts`; it knows nothing of the command line.
"""

__all__: list[str] = []
