"""``driftline ui`` in a real headless Chromium, over a real worker on a real Kafka and Redis.

As an operator would see it: the console is opened while the worker scores normal traffic
with labels; it lists the model and draws its charts with no console error. Then drifted
events come, the worker's monitors raise a data-drift alert, and it appears in the live feed
within 2 s of landing in Redis. Then a second version is promoted: the console shows it as
champion and marks the promotion on the timelines. Screenshots of each moment go to the
test's directory (the path is printed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import redis
from playwright.sync_api import ConsoleMessage, Page

from models.data import synthetic
from streams.contracts.names import ALERTS_KEY, history_key
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.console import chromium, chromium_path, start_console
from tests.kit import Background, Deployment, Workers, agrawal_events
from tests.waiting import wait_until

FEED_BOUND_MS = 2_000  # the bound: an alert appears in the feed within 2 s
CHARTS = ("throughput", "metrics", "drift", "fairness")


# Per chart, the number of series it drew (paths with at least two points).
_SERIES_PER_CHART = (
    "Object.fromEntries([...document.querySelectorAll('figure[data-chart]')].map(f => "
    "[f.dataset.chart, [...f.querySelectorAll('path.series')]"
    ".filter(p => (p.getAttribute('d').match(/L/g) || []).length > 0).length]))"
)


def _drawn(page: Page) -> dict[str, int]:
    """Per chart, the number of series it drew (paths with at least two points)."""
    counts: dict[str, int] = page.evaluate(f"() => {_SERIES_PER_CHART}")
    return counts


def test_console_shows_a_live_model_its_drift_alert_and_a_promotion(
    services: Endpoints, unique: str, tmp_path: Path
) -> None:
    chromium_path()  # none: the run ends here, saying how to get one
    dep = Deployment.up(
        services,
        unique,
        tmp_path,
        champion="logreg",
        monitor={"window": 500, "min_labels": 100, "rolling_window": 500},
        DRIFTLINE_CHALLENGER_KIND="off",
        DRIFTLINE_HISTORY_INTERVAL_S="0.5",
    )
    client = redis.Redis.from_url(services.redis)
    bg = Background()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} at {message.location}")

    try:
        with Workers(dep) as workers:
            worker = workers.start("worker")
            workers.ready("worker")
            url = start_console(workers)
            assert url.startswith("http://127.0.0.1:"), f"binds loopback by default: {url}"

            ds = synthetic("agrawal", rows=2000, seed=7)
            pairs = list(dataset_events(ds, prefix="n", entities=0))
            dep.score([event for event, _ in pairs], worker)
            labels = [{"event_id": e["event_id"], "label": int(y)} for e, y in pairs]
            asyncio.run(dep.produce("labels", labels))
            wait_until(
                "the monitors to write a few history points",
                lambda: client.xlen(history_key(dep.model)) >= 4,
                60,
                0.2,
                detail=lambda: workers.log("worker"),
            )

            # Playwright's sync API runs a loop in this thread: the producers run on another
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("console", on_console)
                page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
                page.goto(url)
                page.wait_for_selector(f'nav li[data-model="{dep.model}"]', timeout=15_000)
                page.wait_for_selector(f'main .head[data-selected="{dep.model}"]', timeout=15_000)
                # each chart once the history it reads has two points: the fairness gaps
                # only once labels joined, a refresh or two after the scores' charts
                page.wait_for_function(
                    f"() => {{ const n = {_SERIES_PER_CHART}; "
                    f"return {list(CHARTS)}.every(c => (n[c] || 0) >= 1); }}",
                    timeout=30_000,
                )
                page.wait_for_selector('#feed-state[data-state="live"]', timeout=15_000)
                drawn = _drawn(page)
                assert set(drawn) == set(CHARTS), drawn
                assert all(drawn[c] >= 1 for c in CHARTS), f"every chart draws a line: {drawn}"
                # the label-free estimate beside the realized figures: dashed, and in the table
                page.wait_for_selector(  # attached: a flat line has no height to be visible
                    'figure[data-chart="metrics"] path.series.estimated',
                    state="attached",
                    timeout=30_000,
                )
                figures = page.inner_text("[data-figures]")
                assert "est. F1" in figures and "[" in figures, figures
                page.screenshot(path=str(tmp_path / "console-1-normal.png"), full_page=True)

                # drift: salary far out of its training range; the worker raises data_drift
                drifted = agrawal_events(2000, prefix="d", seed=8)
                for event in drifted:
                    event["features"]["salary"] = event["features"]["salary"] * 3 + 100_000.0
                bg.run(dep.produce("events", drifted))
                item = page.wait_for_selector(
                    f'ol.alerts li[data-model="{dep.model}"][data-kind="data_drift"]',
                    timeout=120_000,
                )
                assert item is not None
                stream_id = item.get_attribute("data-stream-id") or ""
                shown_at = int(item.get_attribute("data-shown-at") or 0)
                assert "fresh" in (item.get_attribute("class") or ""), "it came by the live feed"
                [(_, fields)] = client.xrange(ALERTS_KEY, min=stream_id, max=stream_id)
                raised = orjson.loads(fields[b"alert"])
                assert raised["model"] == dep.model and raised["kind"] == "data_drift"
                assert raised["feature"] == "salary", raised
                landed_ms = int(stream_id.split("-")[0])  # the stream id: when Redis took it
                latency_ms = shown_at - landed_ms
                assert latency_ms <= FEED_BOUND_MS, f"shown {latency_ms} ms after it was raised"

                # the feed filters by kind: fairness only hides it, data_drift shows it again
                page.select_option("#filter-kind", "fairness")
                assert page.locator(f'ol.alerts li[data-stream-id="{stream_id}"]').count() == 0
                page.select_option("#filter-kind", "data_drift")
                assert page.locator(f'ol.alerts li[data-stream-id="{stream_id}"]').count() == 1
                page.select_option("#filter-kind", "")
                page.wait_for_selector("main .head .badge.alerting", timeout=15_000)
                # the timeline catches up with the alert: drift is an active finding
                page.wait_for_selector('main td:text-is("data_drift")', timeout=15_000)
                # beside each active finding, what explains it (empty for a feature's drift)
                assert page.locator('main th:text-is("explained by")').count() == 1
                page.screenshot(path=str(tmp_path / "console-2-drift.png"), full_page=True)

                # a promotion by hand: the console names the new champion and marks it in time
                version = dep.add_version("logreg", seed=2)
                promoted = dep.cli("models", "promote", dep.model, version)
                assert promoted.returncode == 0, promoted.stderr
                more = agrawal_events(1000, prefix="p", seed=9)
                bg.run(dep.produce("events", more))
                page.wait_for_selector(
                    f'main .chip.alias:text-is("champion: v{version}")', timeout=30_000
                )
                marked = 'figure[data-chart] line[data-mark="promote"]'
                page.wait_for_selector(marked, state="attached", timeout=30_000)
                page.screenshot(path=str(tmp_path / "console-3-promotion.png"), full_page=True)

                # the full report, made now, opens under the same policy without an error
                with page.expect_popup() as popup:
                    page.click("main .head a")
                report = popup.value
                report.on("console", on_console)
                report.wait_for_selector("h2#live", timeout=60_000)
                assert report.title() == f"Driftline report: {dep.model}"
                assert report.locator("img").count() > 0, "its plots are inline"

                assert worker.poll() is None, workers.log("worker")
                assert errors == [], errors
    finally:
        bg.close()
        client.close()
    print(
        f"\nconsole: {dep.model} listed, {len(CHARTS)} charts drawn, data_drift alert shown "
        f"{latency_ms} ms after it was raised, v{version} promotion marked; "
        f"screenshots in {tmp_path}"
    )
