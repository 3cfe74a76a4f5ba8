"""The Responses dialect of a wait for a person, with the real ``openai`` SDK against the
API and a real worker process: a response whose task waits ends ``completed`` with an
``mcp_approval_request`` item (or the question's ``function_call`` without output); a new
response with ``previous_response_id`` and the answer items continues the same task."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.api.openai_events import collect, numbers
from tests.api.server import Api
from tests.harness import eventually
from tests.hitl import ASK, DELETE, events
from tests.processes import WorkerProcess

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


@pytest.fixture
async def client(hitl_stack: tuple[Api, WorkerProcess]) -> AsyncIterator[AsyncOpenAI]:
    api, _ = hitl_stack
    async with AsyncOpenAI(base_url=f"{api.url}/v1", api_key="key-alice", max_retries=0, timeout=60.0) as sdk:
        yield sdk


async def test_an_approval_request_ends_the_response_and_the_answer_continues_the_task(
    hitl_stack: tuple[Api, WorkerProcess], client: AsyncOpenAI
) -> None:
    api, _ = hitl_stack
    first = await collect(await client.responses.create(model="hybrid", input=DELETE, stream=True))
    waiting = first[-1].response
    assert first[-1].type == "response.completed" and waiting.status == "completed"
    (request,) = [item for item in waiting.output if item.type == "mcp_approval_request"]
    assert request.name == "delete_file" and json.loads(request.arguments) == {"path": "/tmp/x"}
    assert request.server_label == "agentstream"
    assert not [item for item in waiting.output if item.type == "function_call_output"]
    # read again later, the first response stays what it was when the task parked
    assert (await client.responses.retrieve(waiting.id)).model_dump() == waiting.model_dump()

    answer = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    second = await collect(
        await client.responses.create(
            model="hybrid",
            previous_response_id=waiting.id,
            input=[answer],
            stream=True,  # type: ignore[list-item]
        )
    )
    continued = second[-1].response
    assert second[0].type == "response.created" and continued.id.startswith(f"{waiting.id}.")
    assert continued.status == "completed" and "deleted /tmp/x" in continued.output_text
    outputs = [item for item in continued.output if item.type == "function_call_output"]
    assert [o.output for o in outputs] == ["deleted /tmp/x"]
    assert not [item for item in continued.output if item.type == "function_call"]  # announced before
    assert numbers(first + second) == sorted(set(numbers(first + second)))
    assert (await client.responses.retrieve(continued.id)).model_dump() == continued.model_dump()
    # a retried answer records nothing twice and is the same continuation
    again = await client.responses.create(model="hybrid", previous_response_id=waiting.id, input=[answer])  # type: ignore[list-item]
    assert again.id == continued.id
    async with api.client() as http:
        kinds = [e["type"] for e in await events(http, waiting.id)]
    assert kinds.count("input") == 1 and kinds.count("tool_result") == 1 and kinds[-1] == "completed"


async def test_a_question_is_answered_with_a_function_call_output_and_a_denial_reaches_the_model(
    hitl_stack: tuple[Api, WorkerProcess], client: AsyncOpenAI
) -> None:
    asked = await client.responses.create(model="hybrid", input=ASK)
    assert asked.status == "completed"
    (call,) = [item for item in asked.output if item.type == "function_call"]
    assert call.name == "ask_user" and "Which colour?" in call.arguments
    assert not [item for item in asked.output if item.type == "function_call_output"]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "blue"}
    answered = await client.responses.create(model="hybrid", previous_response_id=asked.id, input=[output])  # type: ignore[list-item]
    assert answered.status == "completed"
    assert [o.output for o in answered.output if o.type == "function_call_output"] == ["blue"]

    background = await client.responses.create(model="hybrid", input=DELETE, background=True)

    async def parked() -> bool:
        return (await client.responses.retrieve(background.id)).status == "completed"

    await eventually(parked, timeout_s=60)
    waiting = await client.responses.retrieve(background.id)
    (request,) = [item for item in waiting.output if item.type == "mcp_approval_request"]
    deny = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False,
            "reason": "too risky"}  # fmt: skip
    denied = await client.responses.create(model="hybrid", previous_response_id=waiting.id, input=[deny])  # type: ignore[list-item]
    (failure,) = [o for o in denied.output if o.type == "function_call_output"]
    assert failure.output == "denied by the user: too risky" and denied.status == "completed"


async def test_answers_that_do_not_fit_are_refused(
    hitl_stack: tuple[Api, WorkerProcess], client: AsyncOpenAI
) -> None:
    api, _ = hitl_stack
    waiting = await client.responses.create(model="hybrid", input=DELETE)
    (request,) = [item for item in waiting.output if item.type == "mcp_approval_request"]
    answer = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    async with api.client() as http:
        alone = await http.post("/v1/responses", json={"model": "hybrid", "input": [answer]})
        assert alone.status_code == 422 and "previous_response_id" in alone.text
        body = {"model": "llm", "previous_response_id": waiting.id, "input": [answer]}
        assert (await http.post("/v1/responses", json=body)).status_code == 422
        stranger = {**answer, "approval_request_id": "mcpr_nope"}
        body = {"model": "hybrid", "previous_response_id": waiting.id, "input": [stranger]}
        wrong = await http.post("/v1/responses", json=body)
        assert wrong.status_code == 409 and "nope" in wrong.text
        assert (await http.get(f"/v1/responses/{waiting.id}.x")).status_code == 404
        missing: httpx.Response = await http.get("/v1/responses/nothing.3")
        assert missing.status_code == 404
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="hybrid", previous_response_id="resp_missing", input=[answer])  # type: ignore[list-item]
