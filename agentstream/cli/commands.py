"""The command line: every command and option of ``agentstream``, each with its help.

Building the parser imports nothing beyond the standard library, so ``agentstream --help``
and ``--version`` stay fast; the commands import their servers only when they run.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from collections.abc import Callable, Iterable

__all__ = ["DEFAULT_URL", "MODES", "build_parser", "format_environment", "worker_environment_help"]

DEFAULT_URL = "http://127.0.0.1:8000"
MODES = ("core", "chunk", "output", "chunk_output", "all")
_APP_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def format_environment(variables: Iterable[tuple[str, str]], width: int = 100) -> str:
    """``(name, meaning)`` pairs as an ``environment:`` section of a command's help."""
    pairs = list(variables)
    column = max((len(name) for name, _ in pairs), default=0) + 2
    lines = ["environment:"]
    for name, meaning in pairs:
        wrapped = textwrap.wrap(meaning, max(20, width - column - 2)) or [""]
        lines.append(f"  {name:<{column}}{wrapped[0]}")
        lines += [" " * (column + 2) + more for more in wrapped[1:]]
    return "\n".join(lines)


def worker_environment_help() -> str:
    """The ``environment:`` section of ``agentstream worker --help``, computed only when
    that help is shown: every variable the worker reads (the worker's own list)."""
    from agentstream.worker.config import ENV_VARS, PROCESS_ENV_VARS

    return format_environment([*ENV_VARS, *PROCESS_ENV_VARS])


class _Parser(argparse.ArgumentParser):
    """An argument parser whose help may end with text computed only when shown."""

    def __init__(self, *args: object, help_footer: Callable[[], str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._help_footer = help_footer

    def format_help(self) -> str:
        text = super().format_help()
        return f"{text}\n{self._help_footer()}\n" if self._help_footer is not None else text


def app_reference(value: str) -> str:
    """``module:attr`` of the user's App, checked for shape (the worker imports it)."""
    if not _APP_REFERENCE.match(value):
        raise argparse.ArgumentTypeError(f"expected module:attr (e.g. my_agents.app:app), got {value!r}")
    return value


def seconds(value: str) -> float:
    """A number of seconds, 0 or more."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {value!r}")
    return number


def _app_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app",
        type=app_reference,
        metavar="MODULE:ATTR",
        help="your App of agents and tools, as module:attr; sets AGENTSTREAM_APP for the worker",
    )


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("AGENTSTREAM_URL", DEFAULT_URL),
        help=f"API base URL (default: $AGENTSTREAM_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("AGENTSTREAM_API_KEY"),
        help="API key (default: $AGENTSTREAM_API_KEY)",
    )
    parser.add_argument(
        "--retry-for",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="keep retrying an API that does not answer this long, a line per retry (default: 30)",
    )


def _mode_option(parser: argparse.ArgumentParser, default: str = "core") -> None:
    parser.add_argument("--mode", default=default, choices=MODES, help=f"streaming mode (default: {default})")


def _agent_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent",
        default="hybrid",
        metavar="NAME",
        help="the agent: llm, tool, hybrid or a named agent of the workers' App (default: hybrid; "
        "GET /v1/agents lists them)",
    )


def _demo(commands: argparse._SubParsersAction[_Parser]) -> None:
    demo = commands.add_parser("demo", help="run everything in this process and stream one task")
    demo.add_argument("prompt", nargs="?", default="What is 17 * 23?", help="the task (default: %(default)r)")
    _agent_option(demo)
    _mode_option(demo)
    demo.add_argument(
        "--data-dir", default=".agentstream/redis", help="Redis data folder, AOF on (default: %(default)s)"
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep the stack running after the task and print the viewer's URL and key, until Ctrl-C",
    )
    demo.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (default: a free port)")
    _app_option(demo)


def _servers(commands: argparse._SubParsersAction[_Parser]) -> None:
    api = commands.add_parser("api", help="serve the HTTP API (configured from the environment)")
    api.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    api.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    api.add_argument("--log-level", default="info", help="uvicorn log level (default: %(default)s)")

    worker = commands.add_parser(
        "worker",
        help="run an arq worker (configured from the environment)",
        help_footer=worker_environment_help,
    )
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if Redis answers, 1 if not (healthcheck)"
    )
    _app_option(worker)

    llm = commands.add_parser("scripted-llm", help="serve the deterministic OpenAI-compatible model")
    llm.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    llm.add_argument("--port", type=int, default=8900, help="port, 0 for a free one (default: %(default)s)")
    llm.add_argument("--token-delay", type=seconds, default=0.0, help="seconds between tokens (default: 0)")
    llm.add_argument("--allow-remote", action="store_true", help="allow a non-loopback host")


def _clients(commands: argparse._SubParsersAction[_Parser]) -> None:
    run = commands.add_parser("run", help="submit a task to a running API and stream it")
    run.add_argument("prompt", help="the task's input")
    _agent_option(run)
    run.add_argument("--tools", help="comma-separated tool names (default: the agent's)")
    run.add_argument("--model", help="model name (default: the worker's)")
    run.add_argument("--task-id", help="your own task id (default: a new one); makes the submit idempotent")
    _mode_option(run)
    _client_options(run)

    tail = commands.add_parser("tail", help="follow a task's events until it completes")
    tail.add_argument("task_id", help="the task to follow")
    tail.add_argument("--after", help="resume after this cursor ($ for new events only)")
    _mode_option(tail)
    _client_options(tail)

    replay = commands.add_parser("replay", help="render a task's stream from the start, then exit")
    replay.add_argument("task_id", help="the task to replay")
    _mode_option(replay)
    _client_options(replay)


def build_parser(version: str) -> argparse.ArgumentParser:
    """The ``agentstream`` parser (``version`` is printed by ``--version``)."""
    parser = _Parser(prog="agentstream", description="Durable, resumable streams of LLM agent events.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="`agentstream COMMAND --help` for its options"
    )
    _demo(commands)
    _servers(commands)
    _clients(commands)
    return parser
