"""``agentstream demo``: the whole stack in this process, one task streamed live, then
replayed by a second consumer from the start.

It starts, on loopback only and each as a timed step: a real Redis (AOF on, data in
``.agentstream/redis``), the scripted model when neither ``OPENAI_API_KEY`` nor
``OPENAI_BASE_URL`` is set, an arq worker and the API. ``--serve`` keeps them running
after the task and prints the viewer's URL and key until Ctrl-C. Shutdown goes in reverse
order, each step with a deadline, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import IO, TypeVar

from agentstream.cli.embedded import EmbeddedRedis
from agentstream.cli.environment import stack_env, with_app
from agentstream.cli.summary import summarize_replay
from agentstream.cli.terminal import render_stream
from agentstream.sdk import AgentStreamClient

__all__ = ["Steps", "demo"]

T = TypeVar("T")


class Steps:
    """Start-up steps printed as they happen: ``  redis    starting… ready in 0.04s (…)``."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def note(self, label: str, text: str) -> None:
        """A step that took no time: one line."""
        self._out.write(f"  {label:<8} {text}\n")
        self._out.flush()

    def _begin(self, label: str, doing: str) -> float:
        self._out.write(f"  {label:<8} {doing}… ")
        self._out.flush()
        return time.monotonic()

    def _end(self, started: float, done: str, detail: str) -> None:
        suffix = f"  {detail}" if detail else ""
        self._out.write(f"{done} in {time.monotonic() - started:.2f}s{suffix}\n")
        self._out.flush()

    @contextlib.contextmanager
    def timed(self, label: str, doing: str, done: str = "done") -> Iterator[list[str]]:
        """Time a block; what it appends to the yielded list is printed after the time."""
        detail: list[str] = []
        started = self._begin(label, doing)
        try:
            yield detail
        except BaseException:
            self._out.write("failed\n")
            raise
        self._end(started, done, " ".join(detail))

    async def start(
        self,
        stack: AsyncExitStack,
        label: str,
        service: AbstractAsyncContextManager[T],
        describe: Callable[[T], str] = lambda _: "",
    ) -> T:
        """Enter ``service`` on ``stack`` as a timed ``starting… ready`` step."""
        with self.timed(label, "starting", "ready") as detail:
            value = await stack.enter_async_context(service)
            detail.append(describe(value))
        return value


def _real_model(env: Mapping[str, str]) -> str | None:
    """Where the configured model is, or ``None`` when none is (then the scripted one runs)."""
    if not env.get("OPENAI_API_KEY") and not env.get("OPENAI_BASE_URL"):
        return None
    where = env.get("OPENAI_BASE_URL") or "api.openai.com"
    return f"{env.get('AGENTSTREAM_MODEL') or 'the default model'} at {where}"


async def _start_model(stack: AsyncExitStack, steps: Steps, env: Mapping[str, str]) -> str | None:
    """The scripted model's base URL, or ``None`` when a real model is configured."""
    real = _real_model(env)
    if real is not None:
        steps.note("model", real)
        return None
    with steps.timed("model", "loading the scripted model"):
        from agentstream.worker.scripted_llm import ScriptedLLMServer
    llm = await steps.start(
        stack,
        "model",
        ScriptedLLMServer(token_delay_s=0.02),
        lambda server: f"{server.base_url} (no OPENAI_API_KEY: using the built-in scripted model)",
    )
    return str(llm.base_url)


async def _start_stack(stack: AsyncExitStack, steps: Steps, args: argparse.Namespace) -> tuple[str, str]:
    """Redis, the model, the worker and the API, each a timed step; ``(api_url, key)``."""
    env = with_app(os.environ, args.app)
    # One task, watched live: a worker polling its queue every 0.5 s (the default) would
    # add that much to the wait for the first event.
    env.setdefault("AGENTSTREAM_POLL_DELAY_S", "0.05")
    redis = EmbeddedRedis(args.data_dir)
    redis_url = await steps.start(
        stack, "redis", redis, lambda url: f"{url} ({redis.executable}, AOF on, data in {args.data_dir})"
    )
    model_url = await _start_model(stack, steps, env)
    with steps.timed("loading", "importing the worker and the API"):
        from agentstream.cli.stack import InProcessApi, InProcessWorker, stack_configs

        config, api_settings, key = stack_configs(stack_env(env, redis_url, model_base_url=model_url))
        api = InProcessApi(api_settings, port=args.port)
    await steps.start(stack, "worker", InProcessWorker(config), lambda _: "an arq worker in this process")
    api_url = await steps.start(stack, "api", api)
    return api_url, key


async def _run_task(
    client: AgentStreamClient, args: argparse.Namespace, out: IO[str], err: IO[str]
) -> tuple[str, bool]:
    """Submit, stream live, replay from the start; ``(task_id, everything ok)``."""
    task = await client.submit(args.prompt, agent=args.agent)
    task_id = str(task["task_id"])
    print(f"\ntask {task_id} (streaming mode {args.mode}):", file=out, flush=True)
    renderer, live = await render_stream(client.events(task_id, mode=args.mode), out, err)
    print("\nreplay: a second consumer reads the same stream from the start (mode all)", file=out)
    replayed = [event async for event in client.events(task_id, mode="all", after="0")]
    summary = summarize_replay(live, replayed)
    print(f"  {summary.describe()}", file=out, flush=True)
    return task_id, summary.ok and renderer.status == "succeeded"


class _Signals:
    """SIGINT (Ctrl-C) and SIGTERM while the demo runs: during ``--serve`` the first one
    ends the serving (the normal way out, exit 0); otherwise, or again, the demo is
    cancelled, which stops everything it started in reverse order (Redis runs in a
    session of its own and must never be left behind)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stop_serving = asyncio.Event()
        self.serving = False
        self._task = asyncio.current_task()

    def __call__(self) -> None:
        if self.serving and not self.stop_serving.is_set():
            self.stop_serving.set()
        elif self._task is not None:
            self._task.cancel()

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self)
        try:
            yield self
        finally:
            for sig in self.SIGNALS:
                loop.remove_signal_handler(sig)


async def _serve(api_url: str, key: str, task_id: str, out: IO[str], signals: _Signals) -> None:
    signals.serving = True
    print(
        f"\nserving until Ctrl-C:\n"
        f"  viewer  {api_url}/ui#task={task_id}\n"
        f"  key     {key}  (paste it into the viewer's sign-in; it is this run's only key)\n"
        f'  try     agentstream run "What is 2 ** 10?" --url {api_url} --api-key {key}',
        file=out,
        flush=True,
    )
    await signals.stop_serving.wait()


async def demo(args: argparse.Namespace, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Run the demo; 0 when the task succeeded and the replay matched what was seen live."""
    steps = Steps(out)
    print(f"agentstream demo: {args.prompt!r}", file=out, flush=True)
    with _Signals().installed() as signals:
        async with AsyncExitStack() as stack:
            api_url, key = await _start_stack(stack, steps, args)
            async with AgentStreamClient(api_url, key) as client:
                task_id, ok = await _run_task(client, args, out, err)
            if args.serve:
                await _serve(api_url, key, task_id, out, signals)
            print("\nstopping the API, the worker, the model and Redis …", file=out, flush=True)
    print("done.", file=out, flush=True)
    return 0 if ok else 1
