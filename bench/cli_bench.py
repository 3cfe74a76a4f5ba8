"""Start-up time of the ``agentstream`` command (issue 9: each under 0.5 s).

Run: ``python -m bench.cli_bench [--runs 15] [--quick]``.
Whole-process wall time (spawn to exit, as a shell or a container healthcheck sees it) of
``agentstream --help``, ``--version``, ``worker --help`` and ``worker --check`` (against a
Redis this bench starts), each run ``--runs`` times in turn, beside floors measured the same
way: ``python -c pass`` (the interpreter alone), ``import agentstream`` (the package and
its SDK, which every ``agentstream.*`` import pays) and ``import httpx``. ``import
rich.console`` is measured too: the cost ``rich`` would add to every command if the
renderer used it (issue 13 asks to decide by that figure).

Reports min/median/max in ms. Writes ``bench/results/cli.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
TARGET_S = 0.5


def _command() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("agentstream")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agentstream.cli"]


def cases(redis_url: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """``name -> (argv, extra environment)``; floors first."""
    py, cli = sys.executable, _command()
    found: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass (floor)": ([py, "-c", "pass"], {}),
        "import httpx": ([py, "-c", "import httpx"], {}),
        "import agentstream": ([py, "-c", "import agentstream"], {}),
    }
    if importlib.util.find_spec("rich") is not None:
        found["import rich.console"] = ([py, "-c", "import rich.console"], {})
    found |= {
        "agentstream --help": ([*cli, "--help"], {}),
        "agentstream --version": ([*cli, "--version"], {}),
        "agentstream worker --help": ([*cli, "worker", "--help"], {}),
        "agentstream worker --check": ([*cli, "worker", "--check"], {"REDIS_URL": redis_url}),
    }
    return found


def wall_s(argv: list[str], env: dict[str, str]) -> float:
    """One run, spawn to exit; a failing command fails the bench."""
    started = time.perf_counter()
    proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited with {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed


def run(runs: int) -> dict[str, Any]:
    with redis_node() as url:
        measured = cases(url)
        times: dict[str, list[float]] = {name: [] for name in measured}
        for argv, env in measured.values():
            wall_s(argv, env)  # warm the page cache and the bytecode
        for _ in range(runs):  # interleaved, so a busy spell hits every case alike
            for name, (argv, env) in measured.items():
                times[name].append(wall_s(argv, env))
    rows = {
        name: {
            "min_ms": min(values) * 1e3,
            "median_ms": statistics.median(values) * 1e3,
            "max_ms": max(values) * 1e3,
            "runs": len(values),
        }
        for name, values in times.items()
    }
    return {
        "target_ms": TARGET_S * 1e3,
        "cases": rows,
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version()},
    }


def table(results: dict[str, Any]) -> str:
    floor = results["cases"]["python -c pass (floor)"]["median_ms"]
    lines = [f"{'case':32} {'min':>8} {'median':>8} {'max':>8} {'median - floor':>15}  (ms)"]
    for name, row in results["cases"].items():
        mark = ""
        if name.startswith("agentstream "):
            mark = "  ok" if row["median_ms"] < results["target_ms"] else f"  OVER {results['target_ms']:.0f}"
        lines.append(
            f"{name:32} {row['min_ms']:8.0f} {row['median_ms']:8.0f} {row['max_ms']:8.0f} "
            f"{row['median_ms'] - floor:15.0f}{mark}"
        )
    load = ", ".join(f"{x:.1f}" for x in results["machine"]["load_avg"])
    lines.append(f"({results['machine']['cpus']} CPUs, load average {load})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="runs of each case (default: 15)")
    parser.add_argument("--quick", action="store_true", help="5 runs (a smoke test)")
    args = parser.parse_args(argv)
    results = run(5 if args.quick else args.runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'cli.json'}")


if __name__ == "__main__":
    main()
