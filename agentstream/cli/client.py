"""The client commands, against a running API: ``run`` (submit and watch), ``tail``
(follow a task live) and ``replay`` (what the stream holds, then exit).

They render to stdout, report on stderr, and retry visibly when the API does not answer
(:mod:`agentstream.cli.reach`). Exit code: 0 when the task succeeded (``replay``: when
the stream was read), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import IO

from agentstream.cli.reach import Patience, follow, retrying
from agentstream.cli.render import Renderer
from agentstream.sdk import AgentStreamClient

__all__ = ["exit_code", "replay", "run", "tail"]


def _client(args: argparse.Namespace) -> AgentStreamClient:
    # No retries inside the SDK: every failure comes back at once and is retried visibly.
    return AgentStreamClient(args.url, args.api_key, max_reconnects=0)


def exit_code(renderer: Renderer) -> int:
    """0 when the task succeeded, 1 when it failed or was cancelled."""
    return 0 if renderer.status == "succeeded" else 1


async def run(args: argparse.Namespace, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Submit ``args.prompt`` and stream the task to its end."""
    tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
    # An id of our own makes the submission idempotent, so a retry cannot run it twice.
    task_id = args.task_id or f"tsk_{uuid.uuid4().hex}"
    patience = Patience(args.url, err, args.retry_for)
    async with _client(args) as client:
        await retrying(
            patience,
            lambda: client.submit(
                args.prompt, agent=args.agent, tools=tools, model=args.model, task_id=task_id
            ),
        )
        print(f"task {task_id}", file=err, flush=True)
        renderer, _ = await follow(
            patience, lambda after: client.events(task_id, mode=args.mode, after=after), out, err
        )
    return exit_code(renderer)


async def tail(args: argparse.Namespace, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Follow a task from ``args.after`` (default: the start) until it completes."""
    patience = Patience(args.url, err, args.retry_for)
    async with _client(args) as client:
        renderer, _ = await follow(
            patience,
            lambda after: client.events(args.task_id, mode=args.mode, after=after),
            out,
            err,
            after=args.after,
        )
    return exit_code(renderer)


async def replay(args: argparse.Namespace, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Render what the task's stream holds now, from the start, then exit."""
    patience = Patience(args.url, err, args.retry_for)
    async with _client(args) as client:
        # A reconnection reads the pages again; events already shown are skipped.
        await follow(patience, lambda _after: client.replay(args.task_id, mode=args.mode), out, err)
    return 0
