"""What the scripted model answers, decided from the request alone (pure).

:func:`plan_reply` implements rules 2-5 of :mod:`agentstream.worker.scripted`: the reply's
words, reasoning, refusal and tool calls, before any wire framing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentstream.worker.scripted.directives import Directives, parse_directives

__all__ = ["CALCULATOR", "REFUSAL", "Reply", "ScriptedToolCall", "last_user_text", "plan_reply", "text_of"]

CALCULATOR = "calculator"
REFUSAL = "I'm sorry, but I can't help with that."
_THINKING = "Let me think about this step by step."
_NARRATION = "Let me calculate that."


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """One tool call of a scripted reply; ``arguments`` is the full JSON text (or not JSON)."""

    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    """What the scripted model says, as the tokens it streams, before any wire framing."""

    content: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()
    refusal: tuple[str, ...] = ()
    tool_calls: tuple[ScriptedToolCall, ...] = ()

    @property
    def finish_reason(self) -> str:
        """``"tool_calls"`` when the reply calls tools, else ``"stop"`` (a refusal too,
        as OpenAI does)."""
        return "tool_calls" if self.tool_calls else "stop"


def plan_reply(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] = (), directives: Directives | None = None
) -> Reply:
    """Decide the reply to a chat-completions request (rules 2-5 of the package docstring).

    ``directives`` are those of the route and model name, merged under the message's own.
    """
    found, echo = parse_directives(last_user_text(messages))
    directives = directives if directives is not None else found
    reasoning = _words(_THINKING) if directives.think else ()
    if directives.refuse:
        return Reply(refusal=_words(REFUSAL), reasoning=reasoning)
    if messages and messages[-1].get("role") == "tool":
        answer = _answer_from_results(_trailing_tool_results(messages))
        return Reply(content=_answer_words(answer, directives), reasoning=reasoning)
    if named := _named_calls(directives, tools, len(messages)):
        return Reply(reasoning=reasoning, tool_calls=named)
    expressions = _expressions(echo) if _offers_calculator(tools) else []
    if expressions:
        return Reply(
            content=_words(_NARRATION) if directives.narrate else (),
            reasoning=reasoning,
            tool_calls=_calculator_calls(expressions, len(messages), directives),
        )
    turn = sum(1 for message in messages if message.get("role") == "user")
    answer = f"Turn {turn}: you said {echo or 'nothing'}."
    return Reply(content=_answer_words(answer, directives), reasoning=reasoning)


def _words(text: str) -> tuple[str, ...]:
    words = text.split()
    return tuple(word if i == 0 else f" {word}" for i, word in enumerate(words))


def _answer_words(answer: str, directives: Directives) -> tuple[str, ...]:
    if directives.tokens is not None:
        return _words(" ".join(f"w{i}" for i in range(1, directives.tokens + 1)))
    return _words(answer)


def text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message (where the directives are)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _trailing_tool_results(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The results of the last batch of tool calls: the tool messages ending the list."""
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(_tool_result(text_of(message.get("content"))))
    return results[::-1]


def _tool_result(content: str) -> str:
    try:
        parsed = json.loads(content)
    except ValueError:
        return content.strip()
    if isinstance(parsed, dict) and "result" in parsed:
        parsed = parsed["result"]
    return parsed if isinstance(parsed, str) else json.dumps(parsed)


def _named_calls(directives: Directives, tools: Sequence[Any], turn: int) -> tuple[ScriptedToolCall, ...]:
    """The ``[call:...]`` directives whose tool the request offers, as tool calls."""
    offered = {
        tool["function"].get("name") for tool in tools if isinstance(tool, Mapping) and "function" in tool
    }
    return tuple(
        ScriptedToolCall(id=f"call_{turn}_{index}_{name}", name=name, arguments=json.dumps(args))
        for index, (name, args) in enumerate((n, a) for n, a in directives.calls if n in offered)
    )


def _answer_from_results(results: Sequence[str]) -> str:
    if len(results) == 1:
        return f"The answer is {results[0]}."
    return f"The answers are {', '.join(results[:-1])} and {results[-1]}."


def _offers_calculator(tools: Sequence[Any]) -> bool:
    return any(
        isinstance(tool, Mapping)
        and isinstance(tool.get("function"), Mapping)
        and tool["function"].get("name") == CALCULATOR
        for tool in tools
    )


_OPERAND = r"\(*\s*-?\d+(?:\.\d+)?\s*\)*"
_EXPRESSION = re.compile(rf"{_OPERAND}(?:\s*(?:\*\*|//|[-+*/%])\s*{_OPERAND})+")


def _expressions(text: str) -> list[str]:
    return [_balanced(match.group()) for match in _EXPRESSION.finditer(text)]


def _balanced(expression: str) -> str:
    """Drop parentheses the regex took from the surrounding prose, e.g. ``(try 2+3)``."""
    expression = expression.strip()
    while expression.count("(") > expression.count(")") and expression.startswith("("):
        expression = expression[1:].strip()
    while expression.count(")") > expression.count("(") and expression.endswith(")"):
        expression = expression[:-1].strip()
    return expression


def _calculator_calls(
    expressions: Sequence[str], turn: int, directives: Directives
) -> tuple[ScriptedToolCall, ...]:
    calls = []
    for index, expression in enumerate(expressions):
        arguments = json.dumps({"expression": expression})
        if directives.bad_args:
            arguments = arguments[:-2]  # cut inside the string: `{"expression": "17 * 23`
        # Derived from the turn too, so the ids of a later turn differ from earlier ones.
        digest = hashlib.sha256(f"{turn}:{index}:{expression}".encode()).hexdigest()
        call_id = None if directives.no_id else f"call_{digest[:24]}"
        calls.append(ScriptedToolCall(id=call_id, name=CALCULATOR, arguments=arguments))
    return tuple(calls)
