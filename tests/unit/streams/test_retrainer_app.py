"""The retrainer's Faust app: which requests it acks, when, and what it leaves to a restart.

The agent runs in Faust's test context (a channel in memory, no broker); ``handle`` is replaced
by a recorder, so that only the agent's own logic is under test.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from streams.config.settings import load_settings
from streams.contracts.messages import RetrainRequest
from streams.contracts.names import RETRAINER_GROUP
from streams.control.retrainer import Retrainer


class Recorder:
    """Stands for ``Retrainer.handle``: records each request; request ``boom`` fails."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    async def __call__(self, request: RetrainRequest) -> str:
        self.handled.append(request.request_id)
        if request.request_id == "boom":
            raise ConnectionError("redis went away")
        return "shadow"


@pytest.fixture
def retrainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Retrainer:
    settings = load_settings(
        data_dir=tmp_path, registry=tmp_path / "registry", topic_retrain_requests="asks"
    )
    retrainer = Retrainer(settings, "127.0.0.1:1", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(retrainer, "handle", Recorder())
    monkeypatch.setattr(retrainer.registry, "names", lambda: ["sea"])
    return retrainer


def _request(request_id: str, model: str = "sea") -> bytes:
    request = RetrainRequest(request_id=request_id, model=model, version="1", reason="test")
    return request.model_dump_json().encode()


def test_the_app_is_the_retrainer_group_with_one_agent_on_the_requests_topic(
    retrainer: Retrainer,
) -> None:
    app = retrainer.app
    assert app.conf.id == RETRAINER_GROUP  # one group: each request goes to one retrainer
    (agent,) = app.agents.values()
    assert agent.channel.get_topic_name() == "asks"


def test_requests_are_acked_once_handled_and_bad_ones_skipped(
    retrainer: Retrainer, caplog: pytest.LogCaptureFixture
) -> None:
    handled = retrainer.handle.handled  # type: ignore[attr-defined]

    async def scenario() -> list[bool]:
        (agent,) = retrainer.app.agents.values()
        async with agent.test_context() as agent:
            acked = []
            for value in (_request("r1"), b"not json", _request("r2", model="nope")):
                event = await agent.put(value)
                acked.append(event.message.acked)
            return acked

    with caplog.at_level(logging.ERROR, logger="driftline.retrainer"):
        assert asyncio.run(scenario()) == [True, True, True]
    assert handled == ["r1"]
    assert "malformed retrain request" in caplog.text
    assert "unknown model 'nope'" in caplog.text


def test_a_request_whose_handling_fails_is_not_acked_and_crashes_the_app(
    retrainer: Retrainer,
) -> None:
    async def scenario() -> bool:
        (agent,) = retrainer.app.agents.values()
        async with agent.test_context() as agent:
            event = await agent.put(_request("boom"))
            return bool(event.message.acked)

    assert asyncio.run(scenario()) is False  # never committed: a restart handles it again
    assert isinstance(retrainer.app.crash_reason, ConnectionError)


def test_a_request_waits_for_a_round_of_stage_steps_to_end(retrainer: Retrainer) -> None:
    handled = retrainer.handle.handled  # type: ignore[attr-defined]

    async def scenario() -> None:
        (agent,) = retrainer.app.agents.values()
        async with agent.test_context() as agent:
            await retrainer.busy.acquire()  # as the stage timer holds it for a round
            put = asyncio.ensure_future(agent.put(_request("r1")))
            await asyncio.sleep(0.2)
            assert handled == [], "handled while the stages were being stepped"
            retrainer.busy.release()
            await put
        assert handled == ["r1"]

    asyncio.run(scenario())
