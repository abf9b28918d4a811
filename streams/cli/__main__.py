"""``python -m streams.cli``: the ``driftline`` command, as the processes it starts run it."""

from __future__ import annotations

from streams.cli.main import main

raise SystemExit(main())
