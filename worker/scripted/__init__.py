"""A deterministic, OpenAI-compatible chat-completions server for tests and the offline demo.

It is a real HTTP server on loopback, spoken to through the real ``openai`` client, so the
code under test takes the same path it takes against a paid API: SSE parsing, tool-call
fragments, HTTP errors, broken connections and the quirks of deployed servers included.
The reply is decided from the request alone, in this order:

1. Directives, in brackets, choose a behaviour. They may be written anywhere in the last
   user message (and are removed from the echoed text), in the model name
   (``scripted[length]``), or in the route: ``/with/length+slow:5/v1`` is a base URL whose
   every request carries ``[length][slow:5]`` (``ScriptedLLMServer.base_url_with``). The
   message wins over the model name, which wins over the route.

   ``[fail:429]``, ``[fail:500]`` (any 4xx/5xx)
       answer with that HTTP status and an OpenAI-shaped error body, before any token.
   ``[fail:429x2]``
       the same, but only for the first 2 requests with this exact last user message.
   ``[fail-after:3]``, ``[fail-after:3x2]``
       stream 3 token chunks, then drop the connection without ``[DONE]`` (every time, or
       only for the first 2 such requests).
   ``[slow:50]``
       50 ms between chunks, overriding the server's ``token_delay_s``.
   ``[think]``
       stream a few ``delta.reasoning_content`` chunks first, as reasoning models do.
   ``[tokens:N]``
       the final answer is exactly N word tokens, ``w1 w2 ... wN`` (for benchmarks).
   ``[narrate]``
       say a few words before calling tools.
   ``[bad-args]``
       tool-call arguments are truncated, invalid JSON.
   ``[no-id]``
       tool-call chunks carry no ``id``.

   Quirks of deployed servers (vLLM, llama.cpp, Ollama, Azure, Gemini's and OpenRouter's
   compatibility layers, proxies):

   ``[length]``, ``[content-filter]``
       stop after half the reply's chunks with ``finish_reason`` ``length`` or
       ``content_filter`` (a tool call is then cut inside its arguments). A request's
       ``max_tokens``/``max_completion_tokens`` smaller than the reply (one chunk, one
       token) stops it with ``length`` too.
   ``[refuse]``
       the reply is a refusal in ``delta.refusal`` chunks (``content`` null), ``stop``.
   ``[same-index]``
       parallel tool calls all carry ``index`` 0 (distinct ids), one after the other.
   ``[no-index]``
       tool calls carry no ``index``; each comes whole in one chunk.
   ``[no-finish]``
       no chunk carries a ``finish_reason``; the stream still ends with ``[DONE]``.
   ``[no-done]``
       the body ends (cleanly) without ``[DONE]``.
   ``[reject-stream-options]``
       a request that carries ``stream_options`` gets a 400, as some servers answer.

   Always, as some servers do: with ``stream_options.include_usage``, every chunk carries
   the usage so far (vLLM's continuous usage stats), and a final chunk without choices
   the total; usage has ``prompt_tokens_details.cached_tokens`` (the prompt's messages
   but the last) and ``completion_tokens_details.reasoning_tokens``. Interleaved tool-call
   fragments repeat their call's ``id`` (as some proxies do).

2. ``[refuse]``: the refusal "I'm sorry, but I can't help with that."
3. The last message has role ``tool``: a final answer built from the trailing tool results
   ("The answer is 391." / "The answers are 391 and 12."); a JSON result with a
   ``"result"`` key contributes that value.
4. The request offers a function named ``calculator`` and the last user message holds
   arithmetic (``17 * 23``, ``(2+3)*4``, ``2 ** 10``): one tool call per expression, their
   argument fragments interleaved across chunks, ``finish_reason="tool_calls"``.
5. Otherwise: ``"Turn {n}: you said {echo}."``, where n counts the user messages, so a test
   can tell whether the conversation history reached the model.

Content streams one word per chunk, each after the first with its leading space.

Modules: :mod:`.directives` (parsing), :mod:`.planner` (the reply), :mod:`.wire`
(OpenAI's framing), :mod:`.app` (HTTP), :mod:`.server` (serving and the command line).
"""

from agentstream.worker.scripted.app import MODEL_ID, create_app
from agentstream.worker.scripted.directives import Directives, parse_directives
from agentstream.worker.scripted.planner import Reply, ScriptedToolCall, plan_reply
from agentstream.worker.scripted.server import ScriptedLLMServer, main

__all__ = [
    "MODEL_ID",
    "Directives",
    "Reply",
    "ScriptedLLMServer",
    "ScriptedToolCall",
    "create_app",
    "main",
    "parse_directives",
    "plan_reply",
]
