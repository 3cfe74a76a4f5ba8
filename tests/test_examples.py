"""The README's runnable examples run as a new user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_write_and_replay_example_runs_on_the_embedded_redis() -> None:
    done = subprocess.run(
        [sys.executable, "examples/write_and_replay.py"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "live tail saw: queued status token" in done.stdout
    assert "replayed text: Hello from a durable stream ." in done.stdout
    assert "10 events, seqs 1..10" in done.stdout
