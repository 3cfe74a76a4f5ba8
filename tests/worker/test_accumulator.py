"""The pure accumulators: fragments in, `tool_call_delta` payloads and ready calls out."""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from agentstream.worker.model import (
    ReadyToolCall,
    ToolCallAccumulator,
    ToolCallFragment,
)


def fragment(
    index: int, args: str = "", *, id: str | None = None, name: str | None = None
) -> ToolCallFragment:
    return ToolCallFragment(index=index, tool_call_id=id, tool_name=name, arguments_delta=args)


# --------------------------------------------------------------------------- examples


def test_feed_returns_the_tool_call_delta_fields_with_cumulative_arguments() -> None:
    acc = ToolCallAccumulator()
    first = acc.feed(fragment(0, '{"expr', id="call_a", name="calculator"))
    second = acc.feed(fragment(0, 'ession": "1+1"}'))

    assert first == {
        "index": 0,
        "tool_call_id": "call_a",
        "tool_name": "calculator",
        "arguments_delta": '{"expr',
        "arguments": '{"expr',
    }
    assert second == {
        "index": 0,
        "tool_call_id": "call_a",
        "tool_name": "calculator",
        "arguments_delta": 'ession": "1+1"}',
        "arguments": '{"expression": "1+1"}',
    }
    [ready] = acc.finish()
    assert ready == ReadyToolCall(
        index=0,
        tool_call_id="call_a",
        tool_name="calculator",
        parameters={"expression": "1+1"},
        error=None,
        arguments='{"expression": "1+1"}',
    )
    assert ready.as_event_item() == {
        "index": 0,
        "tool_call_id": "call_a",
        "tool_name": "calculator",
        "parameters": {"expression": "1+1"},
    }


def test_id_and_name_are_absent_until_they_arrive() -> None:
    acc = ToolCallAccumulator()
    early = acc.feed(fragment(3, "{"))
    named = acc.feed(fragment(3, "}", name="current_time"))
    identified = acc.feed(fragment(3, "", id="call_late"))

    assert "tool_call_id" not in early and "tool_name" not in early
    assert named["tool_name"] == "current_time" and "tool_call_id" not in named
    assert identified["tool_call_id"] == "call_late"
    assert acc.finish()[0].tool_call_id == "call_late"


def test_the_first_id_and_name_win_when_a_server_repeats_them() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(0, "{}", id="call_1", name="calculator"))
    payload = acc.feed(fragment(0, "", id="call_1", name="calculator"))

    assert payload["tool_call_id"] == "call_1" and payload["tool_name"] == "calculator"
    assert acc.finish()[0].tool_name == "calculator"


def test_interleaved_calls_are_kept_apart_and_sorted_by_index() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(1, '{"expression": ', id="b", name="calculator"))
    acc.feed(fragment(0, '{"expression": ', id="a", name="calculator"))
    acc.feed(fragment(1, '"4 + 5"}'))
    acc.feed(fragment(0, '"17 * 23"}'))

    ready = acc.finish()
    assert [(c.index, c.tool_call_id, c.parameters) for c in ready] == [
        (0, "a", {"expression": "17 * 23"}),
        (1, "b", {"expression": "4 + 5"}),
    ]


def test_calls_sharing_an_index_are_told_apart_by_their_ids() -> None:
    acc = ToolCallAccumulator()
    first = acc.feed(fragment(0, '{"expression": ', id="a", name="calculator"))
    acc.feed(fragment(0, '"1+2"}'))
    second = acc.feed(fragment(0, '{"expression": ', id="b", name="calculator"))
    acc.feed(fragment(0, '"3+4"}'))
    third = acc.feed(fragment(1, "{}", id="c", name="current_time"))

    assert (first["index"], second["index"], third["index"]) == (0, 1, 2)
    assert [(c.index, c.tool_call_id, c.parameters) for c in acc.finish()] == [
        (0, "a", {"expression": "1+2"}),
        (1, "b", {"expression": "3+4"}),
        (2, "c", {}),
    ]


def test_ids_repeated_on_every_fragment_keep_interleaved_calls_apart_at_one_index() -> None:
    acc = ToolCallAccumulator()
    for piece_a, piece_b in (('{"n"', '{"m"'), (": 1}", ": 2}")):
        acc.feed(fragment(0, piece_a, id="a", name="t"))
        acc.feed(fragment(0, piece_b, id="b", name="t"))

    assert [(c.tool_call_id, c.parameters) for c in acc.finish()] == [("a", {"n": 1}), ("b", {"m": 2})]


def test_a_late_id_joins_the_call_it_belongs_to() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(0, "{", name="t"))
    acc.feed(fragment(0, "}", id="late"))

    [call] = acc.finish()
    assert (call.tool_call_id, call.parameters) == ("late", {})


def test_empty_arguments_mean_no_parameters() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(0, id="c", name="current_time"))

    assert acc.finish()[0].parameters == {}
    assert acc.finish()[0].error is None


def test_invalid_json_becomes_an_error_item_not_an_exception() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(0, '{"expression": "2*3', id="c", name="calculator"))

    [ready] = acc.finish()
    assert ready.parameters is None
    assert ready.error is not None and ready.error.startswith("invalid JSON arguments: ")
    assert ready.as_event_item()["parameters"] is None


def test_json_that_is_not_an_object_is_an_error() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(0, "[1, 2]", id="c", name="calculator"))

    [ready] = acc.finish()
    assert ready.parameters is None
    assert ready.error == "invalid JSON arguments: expected an object, got list"


def test_a_call_without_a_name_is_an_error() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(0, "{}", id="c"))

    [ready] = acc.finish()
    assert ready.tool_name == ""
    assert ready.parameters is None
    assert ready.error == "tool call 0 has no function name"


def test_generated_ids_are_stable_for_the_same_input_and_vary_with_the_salt() -> None:
    def ids(salt: str) -> list[str]:
        acc = ToolCallAccumulator(id_salt=salt)
        acc.feed(fragment(0, '{"expression": "1"}', name="calculator"))
        acc.feed(fragment(1, '{"expression": "2"}', name="calculator"))
        return [call.tool_call_id for call in acc.finish()]

    first = ids("turn-1")
    assert first == ids("turn-1")
    assert first != ids("turn-2")
    assert len(set(first)) == 2
    assert all(i.startswith(f"call_{n}_") for n, i in enumerate(first))


def test_event_items_are_copies() -> None:
    acc = ToolCallAccumulator()
    acc.feed(fragment(0, '{"a": 1}', id="c", name="t"))
    [ready] = acc.finish()

    item = ready.as_event_item()
    item["parameters"]["a"] = 2
    assert ready.parameters == {"a": 1}


# --------------------------------------------------------------------------- properties


@dataclass(frozen=True)
class Scenario:
    calls: dict[int, tuple[str | None, str, str]]  # index -> (id, name, arguments)
    fragments: list[ToolCallFragment]


@st.composite
def scenarios(draw: st.DrawFn, *, arguments: st.SearchStrategy[str] | None = None) -> Scenario:
    indices = draw(st.lists(st.integers(0, 20), min_size=1, max_size=4, unique=True))
    texts = arguments if arguments is not None else st.text(max_size=40)
    per_call: list[list[ToolCallFragment]] = []
    calls: dict[int, tuple[str | None, str, str]] = {}
    for index in indices:
        args = draw(texts)
        cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=6)))
        bounds = [0, *cuts, len(args)]
        pieces = [args[a:b] for a, b in itertools.pairwise(bounds)]
        id_at = draw(st.none() | st.integers(0, len(pieces) - 1))
        name_at = draw(st.integers(0, len(pieces) - 1))
        call_id = f"call_{index}_given" if id_at is not None else None
        name = f"tool_{index}"
        calls[index] = (call_id, name, args)
        per_call.append(
            [
                fragment(
                    index,
                    piece,
                    id=call_id if i == id_at else None,
                    name=name if i == name_at else None,
                )
                for i, piece in enumerate(pieces)
            ]
        )
    # A random interleaving that keeps each call's own fragments in order.
    order = draw(st.permutations([n for n, frags in enumerate(per_call) for _ in frags]))
    streams = [iter(frags) for frags in per_call]
    return Scenario(calls, [next(streams[n]) for n in order])


@given(scenarios())
def test_any_interleaving_reassembles_every_call(scenario: Scenario) -> None:
    acc = ToolCallAccumulator()
    for frag in scenario.fragments:
        acc.feed(frag)

    ready = acc.finish()
    assert [call.index for call in ready] == sorted(scenario.calls)
    for call in ready:
        call_id, name, args = scenario.calls[call.index]
        assert call.arguments == args
        assert call.tool_name == name
        if call_id is not None:
            assert call.tool_call_id == call_id
        else:
            assert call.tool_call_id.startswith(f"call_{call.index}_")


@given(scenarios())
def test_payloads_track_each_call_and_never_share_state(scenario: Scenario) -> None:
    acc = ToolCallAccumulator()
    so_far: dict[int, str] = {}
    payloads: list[dict[str, object]] = []
    snapshots: list[dict[str, object]] = []
    for frag in scenario.fragments:
        payload = acc.feed(frag)
        so_far[frag.index] = so_far.get(frag.index, "") + frag.arguments_delta
        assert payload["index"] == frag.index
        assert payload["arguments_delta"] == frag.arguments_delta
        assert payload["arguments"] == so_far[frag.index]
        assert all(payload is not earlier for earlier in payloads)
        # A consumer that scribbles on what it got must not change what comes next...
        payload["arguments"] = "scribbled"
        payload["tool_name"] = "scribbled"
        payloads.append(payload)
        snapshots.append(copy.deepcopy(payload))

    # ...and what comes next must not change what it already got.
    assert payloads == snapshots
    assert [call.arguments for call in acc.finish()] == [
        scenario.calls[index][2] for index in sorted(scenario.calls)
    ]


json_objects = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    max_size=4,
).map(json.dumps)


@given(scenarios(arguments=json_objects))
def test_json_object_arguments_parse_to_their_parameters(scenario: Scenario) -> None:
    acc = ToolCallAccumulator()
    for frag in scenario.fragments:
        acc.feed(frag)

    for call in acc.finish():
        assert call.error is None
        assert call.parameters == json.loads(scenario.calls[call.index][2])


@given(st.lists(st.text(max_size=20), min_size=1, max_size=4), st.data())
def test_calls_one_after_the_other_at_one_index_all_survive(
    arguments: list[str], data: st.DataObject
) -> None:
    acc = ToolCallAccumulator()
    for n, args in enumerate(arguments):
        cut = data.draw(st.integers(0, len(args)))
        acc.feed(fragment(0, args[:cut], id=f"id{n}", name="t"))
        acc.feed(fragment(0, args[cut:]))

    ready = acc.finish()
    assert [(c.index, c.tool_call_id, c.arguments) for c in ready] == [
        (n, f"id{n}", args) for n, args in enumerate(arguments)
    ]
