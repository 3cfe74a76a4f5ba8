"""Human in the loop while a task runs, with real worker processes: a message sent to a
running task reaches the model before its next turn, exactly once (a repeated key, a
worker killed in between); a tool's ``ctx.ask`` parks the task and resumes with the
answers. The scripted model answers ``Turn n: you said <last user message>``, so its
answer tells which messages it was given and how many user messages it saw."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.server import Api
from tests.hitl import events, submit, wait_status
from tests.processes import WorkerProcess

APP = '''
import asyncio
from pathlib import Path

from agentstream import App
from agentstream.worker.app import ToolContext

app = App(name="running")
HERE = Path(__file__).resolve().parent


@app.tool(timeout_s=120)
async def hold(name: str) -> str:
    """Wait until the test lets the call go on (a file of that name appears)."""
    while not (HERE / name).exists():
        await asyncio.sleep(0.02)
    return f"{name} went on"


@app.tool
async def book_trip(city: str, ctx: ToolContext) -> str:
    """Book a trip, asking the traveller what is missing."""
    with (HERE / "book_trip.runs").open("a") as runs:  # idempotent enough: counted runs
        runs.write("run\\n")
    when = await ctx.ask(f"When do you go to {city}?")
    seats = await ctx.ask("How many seats?")
    return f"booked {city} on {when} for {seats}"
'''
HOLD = "Start [call:hold:name=go]"


@pytest.fixture
def worker_app(tmp_path: Path) -> str:
    """The app above, written into the folder the workers start in (its tools' files go there)."""
    (tmp_path / "runningapp.py").write_text(APP)
    return "runningapp:app"


async def stored_kinds(api: Api, task_id: str) -> list[str]:
    return [event["type"] async for _, event in api.services.reader.replay(f"alice/{task_id}")]


async def until_stored(api: Api, worker: WorkerProcess, task_id: str, kind: str, count: int = 1) -> None:
    """Wait until ``count`` events of ``kind`` are in the task's stream (polled)."""
    async with asyncio.timeout(45):
        while (await stored_kinds(api, task_id)).count(kind) < count:
            worker.assert_running()
            await asyncio.sleep(0.02)


def check_story(seen: list[dict[str, Any]]) -> list[str]:
    """The event types of a whole stream, checked: dense seqs, one ``completed`` last."""
    kinds = [e["type"] for e in seen]
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1)), kinds
    assert kinds.count("completed") == 1 and kinds[-1] == "completed", kinds
    return kinds


async def test_a_message_to_a_running_task_reaches_the_model_before_its_next_turn_once(
    api: Api, worker: WorkerProcess, tmp_path: Path
) -> None:
    async with api.client() as client:
        task_id = await submit(client, HOLD, agent="hybrid")
        reader = asyncio.create_task(events(client, task_id))  # connected throughout
        await until_stored(api, worker, task_id, "tool_call")  # the model's first turn is over
        url = f"/v1/tasks/{task_id}/input"
        headers = {"Idempotency-Key": "hi-1"}
        first = await client.post(url, json={"message": "also say hi"}, headers=headers)
        again = await client.post(url, json={"message": "also say hi"}, headers=headers)
        assert first.status_code == again.status_code == 202, first.text
        assert first.json() == again.json() and first.json()["status"] == "running"
        async with api.client(headers={"Authorization": "Bearer key-bob"}) as bob:
            assert (await bob.post(url, json={"message": "me too"})).status_code == 404
        asked_along = await client.post(url, json={"message": "x", "tool_call_id": "c1"})
        assert asked_along.status_code == 409 and "not waiting" in asked_along.text

        (tmp_path / "go").touch()  # the tool returns; the next turn comes
        seen = await asyncio.wait_for(reader, 60)
        late = await client.post(url, json={"message": "one more"})
    assert late.status_code == 409 and "has ended (succeeded)" in late.text

    kinds = check_story(seen)
    assert seen[-1]["status"] == "succeeded", worker.log()
    assert kinds.count("input") == 1 and kinds.count("input_delivered") == 1
    message = seen[kinds.index("input")]
    delivered = seen[kinds.index("input_delivered")]
    assert message["message"] == "also say hi" and message["seq"] == first.json()["seq"]
    assert delivered["input_seqs"] == [message["seq"]] and "answer" not in delivered
    # recorded while the tool ran, given to the model after the tool's result, before turn 2
    assert kinds.index("tool_call") < kinds.index("input") < kinds.index("tool_result")
    second_turn = [i for i, e in enumerate(seen) if e["type"] == "iteration_start"][1]
    assert kinds.index("tool_result") < kinds.index("input_delivered") < second_turn
    result = next(e for e in seen if e["type"] == "result")
    assert result["output"] == "Turn 2: you said also say hi."  # two user messages: once


async def message_across_a_kill(
    api: Api,
    start_worker: Callable[[str], WorkerProcess],
    folder: Path,
    message: str,
    before_kill: Callable[[str], Awaitable[None]] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """A task whose tool holds is sent ``message``; then (after ``before_kill(task_id)``) its
    worker is SIGKILLed, the tool let go if it was not yet (``folder/go``) and a second worker
    started. Every event of the task as a reader connected throughout saw them, and their
    checked types."""
    first = start_worker("first")
    async with api.client() as client:
        task_id = await submit(client, HOLD, agent="hybrid")
        reader = asyncio.create_task(events(client, task_id))
        await until_stored(api, first, task_id, "tool_call")
        sent = await client.post(f"/v1/tasks/{task_id}/input", json={"message": message})
        assert sent.status_code == 202, sent.text
        if before_kill is not None:
            await before_kill(task_id)
        first.kill()
        (folder / "go").touch()
        second = start_worker("second")
        seen = await asyncio.wait_for(reader, 60)
    kinds = check_story(seen)
    assert seen[-1]["status"] == "succeeded", second.log()
    return seen, kinds


async def test_a_worker_killed_after_a_message_is_recorded_gives_it_once(
    api: Api, start_worker: Callable[[str], WorkerProcess], tmp_path: Path
) -> None:
    # killed once the message is recorded, before it is given to the model (the tool holds)
    seen, kinds = await message_across_a_kill(api, start_worker, tmp_path, "after the crash")
    assert kinds.count("retry") == 1 and kinds.count("input_delivered") == 1
    assert kinds.index("input") < kinds.index("retry") < kinds.index("input_delivered")
    result = next(e for e in seen if e["type"] == "result")
    assert result["output"] == "Turn 2: you said after the crash."


async def test_a_worker_killed_after_the_model_was_given_a_message_does_not_give_it_again(
    api: Api, start_worker: Callable[[str], WorkerProcess], tmp_path: Path
) -> None:
    async def until_answering(task_id: str) -> None:
        (tmp_path / "go").touch()
        async with asyncio.timeout(45):  # given to the model, which is answering
            while True:
                kinds = await stored_kinds(api, task_id)
                if "input_delivered" in kinds and "token" in kinds[kinds.index("input_delivered") :]:
                    return
                await asyncio.sleep(0.02)

    # [slow:300]: the answer to the message (15 words) streams for 4.5 s, so the kill lands
    # in it even if this test is held up a few seconds after the first token
    words = "slowly and steadily, a word at a time, to the end"
    seen, kinds = await message_across_a_kill(
        api, start_worker, tmp_path, f"[slow:300] {words}", before_kill=until_answering
    )
    assert kinds.count("input_delivered") == 1 and kinds.count("retry") == 1
    assert kinds.index("input_delivered") < kinds.index("retry")
    assert next(e for e in seen if e["type"] == "result")["output"] == f"Turn 2: you said {words}."


async def test_a_tool_that_asks_waits_without_a_worker_and_resumes_with_the_answers(
    api: Api, worker: WorkerProcess, tmp_path: Path
) -> None:
    async with api.client() as client:
        task_id = await submit(client, "Trip [call:book_trip:city=Rome]", agent="hybrid")
        reader = asyncio.create_task(events(client, task_id))  # connected through both waits
        await wait_status(client, worker, task_id, "waiting")
        meta = await api.services.store.meta(f"alice/{task_id}")
        assert meta is not None and [p["kind"] for p in meta.pending_input] == ["question"]
        call_id = meta.pending_input[0]["tool_call_id"]

        # the one slot of the worker is free: another task runs to the end meanwhile
        other = await submit(client, "Hello", agent="hybrid")
        assert (await wait_status(client, worker, other, "succeeded"))["status"] == "succeeded"

        url = f"/v1/tasks/{task_id}/input"
        answered = await client.post(url, json={"message": "monday"})  # the oldest question
        assert answered.status_code == 200 and answered.json()["pending"] == 0, answered.text
        await until_stored(api, worker, task_id, "input_required", 2)  # the tool ran again, asked again
        await wait_status(client, worker, task_id, "waiting")
        second = await client.post(url, json={"message": "2", "tool_call_id": call_id})
        assert second.status_code == 200, second.text
        seen = await asyncio.wait_for(reader, 60)

    kinds = check_story(seen)
    assert seen[-1]["status"] == "succeeded", worker.log()
    questions = [e for e in seen if e["type"] == "input_required"]
    assert [q["prompt"] for q in questions] == ["When do you go to Rome?", "How many seats?"]
    assert {q["tool_call_id"] for q in questions} == {call_id} and questions[0]["tool_name"] == "book_trip"
    assert [e["message"] for e in seen if e["type"] == "input"] == ["monday", "2"]
    outcome = [e for e in seen if e["type"] in ("tool_result", "tool_error")]
    assert len(outcome) == 1 and outcome[0]["result"] == "booked Rome on monday for 2"
    assert kinds.index("tool_result") > kinds.index("input", kinds.index("input") + 1)
    assert "booked Rome on monday for 2" in next(e for e in seen if e["type"] == "result")["output"]
    # the tool ran from its start once per answer: what it does before an ask must be idempotent
    assert (tmp_path / "book_trip.runs").read_text().count("run") == 3
