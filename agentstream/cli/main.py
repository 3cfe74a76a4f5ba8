"""The ``agentstream`` command: the one composition root of the project.

::

    agentstream demo "What is 17 * 23?"     # everything in one process, nothing to install
    agentstream demo --serve                 # ... and keep it running: open the viewer
    agentstream api --host 127.0.0.1 --port 8000
    agentstream worker [--app my_agents.app:app]   # scale out by running more of them
    agentstream scripted-llm --port 8900     # the offline, deterministic model
    agentstream run "What is 17 * 23?"       # submit to a running API and watch it live
    agentstream tail TASK_ID [--after CURSOR]
    agentstream replay TASK_ID

The wing, one concept per module: :mod:`~agentstream.cli.commands` (the parser),
:mod:`~agentstream.cli.render` (events to text, pure) and
:mod:`~agentstream.cli.terminal` (writing it live), :mod:`~agentstream.cli.client` and
:mod:`~agentstream.cli.reach` (``run``/``tail``/``replay``, retrying visibly),
:mod:`~agentstream.cli.services` (``api``/``worker``/``scripted-llm``),
:mod:`~agentstream.cli.demo` with :mod:`~agentstream.cli.stack` (worker and API in this
loop) and :mod:`~agentstream.cli.embedded` (a real Redis). This module imports none of
them until a command runs, so ``--help`` and ``--version`` load no server dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from agentstream import __version__
from agentstream.cli.commands import build_parser

__all__ = ["main"]


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function running command ``name`` (its module imported now)."""
    if name == "api":
        from agentstream.cli.services import serve_api

        return serve_api
    if name == "worker":
        from agentstream.cli.services import run_worker

        return run_worker
    if name == "scripted-llm":
        from agentstream.cli.services import scripted_llm

        return scripted_llm
    if name == "demo":
        from agentstream.cli.demo import demo

        return lambda args: asyncio.run(demo(args))
    from agentstream.cli import client

    runner = {"run": client.run, "tail": client.tail, "replay": client.replay}[name]
    return lambda args: asyncio.run(runner(args))


def _user_error(exc: Exception) -> int | None:
    """The exit code of an error the user can fix (message only, no traceback), else None."""
    from agentstream.cli.embedded import EmbeddedRedisError
    from agentstream.cli.reach import GaveUp
    from agentstream.sdk import AgentStreamError

    if isinstance(exc, AgentStreamError | GaveUp):
        return 1
    if isinstance(exc, EmbeddedRedisError):
        return 2
    # Imported on this error path only: they load the streams package (0.7 s).
    from agentstream.streams.errors import UsageError
    from agentstream.worker.errors import ConfigurationError

    return 2 if isinstance(exc, UsageError | ConfigurationError) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentstream`` console script; returns the exit code."""
    args = build_parser(__version__).parse_args(argv)
    try:
        return _command(args.command)(args)
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C; the demo cancels itself
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code = _user_error(exc)
        if code is None:
            raise
        print(f"agentstream: {exc}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
