"""The command line itself: what ``--help``/``--version``/``worker --check`` load, every
option's help, ``--app``, the small server commands."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentstream import __version__
from agentstream.cli.commands import build_parser, format_environment
from agentstream.cli.embedded import EmbeddedRedis
from agentstream.cli.environment import stack_env, with_app
from agentstream.cli.healthcheck import check_redis
from agentstream.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = ("fastapi", "starlette", "arq", "openai", "redis", "uvicorn", "pydantic")


def _imported_by(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the command with ``-X importtime``; the top-level packages it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agentstream.cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return proc, names


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["worker", "--help"]])
def test_help_and_version_load_no_server_dependency(args: list[str]) -> None:
    proc, imported = _imported_by(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not imported & set(SERVER_SIDE), sorted(imported & set(SERVER_SIDE))
    if args == ["--version"]:
        assert proc.stdout == f"agentstream {__version__}\n"


def test_worker_check_loads_no_server_dependency(redis_url: str) -> None:
    proc, imported = _imported_by("worker", "--check", env={"REDIS_URL": redis_url})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not imported & set(SERVER_SIDE), sorted(imported & set(SERVER_SIDE))


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_every_command_and_option_has_a_help_text() -> None:
    parser = build_parser("0")
    missing = [
        f"{p.prog} {action.dest}"
        for p in _parsers(parser)
        for action in p._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing += [f"command {c.dest}" for c in commands._choices_actions if not (c.help or "").strip()]
    assert missing == []


def test_worker_help_lists_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    out = capsys.readouterr().out
    assert "--app MODULE:ATTR" in out and "AGENTSTREAM_APP" in out and "REDIS_URL" in out


def test_worker_check_reports_whether_redis_answers(redis_url: str) -> None:
    assert check_redis({"REDIS_URL": redis_url}) == 0
    assert check_redis({"REDIS_URL": redis_url, "AGENTSTREAM_QUEUE_URL": "redis://127.0.0.1:1/0"}) == 1


def test_worker_check_authenticates_and_never_prints_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmbeddedRedis(tmp_path, None, "--requirepass", "s3cret", persistent=False) as url:
        good = url.replace("redis://", "redis://:s3cret@")
        assert check_redis({"REDIS_URL": good}) == 0
        assert check_redis({"REDIS_URL": url.replace("redis://", "redis://:wrong@")}) == 1
        assert check_redis({"REDIS_URL": url}) == 1
    err = capsys.readouterr().err
    assert "AUTH refused" in err and "NOAUTH" in err
    assert "wrong" not in err and ":***@" in err


def test_app_goes_into_the_environment_mapping_and_nowhere_else() -> None:
    before = dict(os.environ)
    base = {"PATH": "/bin"}
    assert with_app(base, "my_agents.app:app") == {"PATH": "/bin", "AGENTSTREAM_APP": "my_agents.app:app"}
    assert with_app(base, None) == base
    env = stack_env(base, "redis://127.0.0.1:1/0", prefix="p", model_base_url="http://m/v1", app="a.b:c")
    assert env == {
        "PATH": "/bin",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "AGENTSTREAM_PREFIX": "p",
        "OPENAI_BASE_URL": "http://m/v1",
        "AGENTSTREAM_APP": "a.b:c",
    }
    assert base == {"PATH": "/bin"} and dict(os.environ) == before


@pytest.mark.parametrize("command", ["worker", "demo"])
def test_app_takes_module_colon_attr(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parsed = build_parser("0").parse_args([command, "--app", "my_agents.app:app"])
    assert parsed.app == "my_agents.app:app"
    with pytest.raises(SystemExit) as exited:
        main([command, "--app", "my_agents"])
    assert exited.value.code == 2
    assert "expected module:attr" in capsys.readouterr().err


def test_api_refuses_a_public_bind_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENTSTREAM_API_KEYS", raising=False)
    assert main(["api", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "refusing to bind '0.0.0.0' without API keys" in capsys.readouterr().err


def test_scripted_llm_subcommand_serves_and_prints_its_url() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "agentstream.cli", "scripted-llm", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("scripted LLM listening on http://127.0.0.1:")
        finally:
            proc.terminate()
            proc.wait(10)


def test_an_environment_section_lists_each_variable_with_its_meaning() -> None:
    text = format_environment([("REDIS_URL", "the Redis"), ("AGENTSTREAM_APP", "your App " * 12)], width=60)
    lines = text.splitlines()
    assert lines[0] == "environment:"
    assert lines[1] == "  REDIS_URL        the Redis"
    assert lines[2].startswith("  AGENTSTREAM_APP  your App") and len(lines) > 3
    assert all(line.startswith(" " * 19) for line in lines[3:])
    assert all(len(line) <= 60 for line in lines)
