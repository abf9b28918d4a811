"""``driftline ui``: the live web console (:mod:`streams.ui`), served until interrupted."""

from __future__ import annotations

import click

from streams.cli.options import Args, command, option, redis_url_option, registry_option
from streams.config.settings import env_name, load_settings
from streams.local.services import LocalServices
from streams.ui import bind, serve


def ui_command(args: Args) -> int:
    """Serve the console on the settings' address and say where."""
    settings = load_settings(
        registry=args.registry,
        redis_url=args.redis_url,
        ui_host=args.host,
        ui_port=args.port,
    )
    sock = bind(settings.ui_host, settings.ui_port)  # a taken address is said first
    try:
        redis_url = LocalServices(settings).redis_url()
    except BaseException:
        sock.close()
        raise
    return serve(settings, redis_url, sock)


def register(root: click.Group) -> None:
    """Add ``ui``."""
    root.add_command(
        command(
            "ui",
            ui_command,
            help="a live web console: models, timelines, alerts as they come (read-only)",
            description="Serve a read-only web console of every model in the registry: "
            "versions, aliases, routing and health; live timelines of throughput, rolling "
            "metrics, drift and fairness with promotions, rollbacks and alerts marked; a live "
            "alerts feed; the lifecycle history; each model's full HTML report. Every asset is "
            f"served locally. With {env_name('ui_token')} set, every request needs the token.",
            params=[
                option("--host", setting="ui_host", metavar="ADDR", help="address to bind"),
                option(
                    "--port",
                    setting="ui_port",
                    type=click.IntRange(0, 65_535),
                    metavar="PORT",
                    help="port to listen on; 0 picks a free one (printed)",
                ),
                registry_option(),
                redis_url_option("Redis the workers write to"),
            ],
        )
    )


__all__ = ["register", "ui_command"]
