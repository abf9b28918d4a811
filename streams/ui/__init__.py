"""The live web console, ``driftline ui``: models, timelines and a live alerts feed.

A read-only Starlette application on uvicorn (:mod:`streams.ui.app`) over what the workers
and the retrainer already write: the registry, the monitors' health and history in Redis,
the alerts stream and the lifecycle records (:mod:`streams.ui.data`), with the alerts fed to
the browser as server-sent events (:mod:`streams.ui.feed`). Every asset is served from
``static/``: the page works offline.
"""

from streams.ui.app import Console, build_app
from streams.ui.server import bind, serve

__all__ = ["Console", "bind", "build_app", "serve"]
