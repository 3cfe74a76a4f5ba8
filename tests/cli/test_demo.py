"""``agentstream demo`` end to end, as a user runs it: a subprocess in an empty folder with
a clean environment (no model key: the scripted model stands in)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import default_sigint

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("redis", "model", "loading", "worker", "api")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTSTREAM_", "REDIS_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _assert_demo_output(out: str) -> None:
    for step in STEPS:
        assert re.search(rf"^  {step} +.*… (ready|done) in \d+\.\d\ds", out, re.MULTILINE), step
    assert "no OPENAI_API_KEY: using the built-in scripted model" in out
    assert '→ calculator({"expression": "17 * 23"})' in out
    assert "← 391" in out
    assert "The answer is 391." in out
    assert "no gaps, same cursors as the live consumer, same text: 'The answer is 391.'" in out


@pytest.mark.timeout(120)
def test_demo_runs_offline_from_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentstream.cli", "demo", "What is 17 * 23?"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    _assert_demo_output(proc.stdout)
    assert proc.stdout.endswith("done.\n") and "serving until Ctrl-C" not in proc.stdout
    redis_dir = tmp_path / ".agentstream" / "redis"
    assert (redis_dir / "appendonly.aof").exists() or (redis_dir / "appendonlydir").is_dir()


def _demo(folder: Path, *args: str) -> subprocess.Popen[str]:
    """``agentstream demo`` started in ``folder``, its output piped; it stops on Ctrl-C."""
    return subprocess.Popen(
        [sys.executable, "-m", "agentstream.cli", "demo", *args],
        cwd=folder,
        env=_env(),
        preexec_fn=default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _redis_port(out: str) -> int:
    found = re.search(r"^  redis +.*redis://127\.0\.0\.1:(\d+)/0", out, re.MULTILINE)
    assert found, out
    return int(found.group(1))


def _gone(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_serve_keeps_the_viewer_up_until_ctrl_c(tmp_path: Path, stop: signal.Signals) -> None:
    with _demo(tmp_path, "--serve") as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            deadline = time.monotonic() + 90
            while not any(line.startswith("  key ") for line in lines) and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break  # the demo ended early: the assertions below say how
                lines.append(line)
            out = "".join(lines)
            viewer = re.search(r"^  viewer  (http://127\.0\.0\.1:\d+)/ui#task=(tsk_\w+)$", out, re.MULTILINE)
            key = re.search(r"^  key     (demo-\w+) ", out, re.MULTILINE)
            assert viewer and key, out
            base, task_id = viewer.groups()
            page = httpx.get(f"{base}/ui", timeout=30)
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            task = httpx.get(
                f"{base}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key.group(1)}"}, timeout=30
            )
            assert task.status_code == 200 and task.json()["status"] == "succeeded"
        finally:
            proc.send_signal(stop)
            rest, err = proc.communicate(timeout=60)
    _assert_demo_output(out)
    assert proc.returncode == 0, err
    assert rest.endswith("done.\n") and "stopping the API" in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/ui", timeout=5)
    assert _gone(_redis_port(out))


@pytest.mark.timeout(120)
def test_a_demo_stopped_while_starting_leaves_nothing_running(tmp_path: Path) -> None:
    with _demo(tmp_path) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline() + proc.stdout.readline()  # the title, then Redis is up
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, f"{first}{rest}{err}"
    assert "interrupted" in err and "task tsk_" not in rest
    assert _gone(_redis_port(first))
