"""Driftline's benchmark harness: the full path against baselines measured in the same run.

Run it as ``driftline bench [--quick] [--json PATH]``; see ``bench/README.md``.
"""

__all__: list[str] = []
