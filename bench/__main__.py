"""``python -m bench [streams|baselines|api|fanout|worker|latency|groups|resume|memory|cli|scale|report|all] [--quick]``.

``all`` runs the streams core with modest sizes, the honest baselines (hand-packed RESP,
fence-free Lua, XRANGE floor), then the API, the fan-out floor, the worker (throughput,
at real pace, model client CPU per request), latency-matrix, consumer-group (vs FastStream), resume (vs Vercel's
resumable-stream), memory, CLI start-up and scale (2 workers + 2 APIs on a 3-node cluster)
benches at their defaults, then ``bench.report`` (``bench/RESULTS.md`` and PNG
plots under ``bench/results/``). Each bench prints its table and writes its JSON under
``bench/results/``; a bench that fails is reported and the others still run. The baselines,
fan-out and worker benches (throughput and real pace) run with ``--profile`` (py-spy), so that a missed ratio keeps
its profile in RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import traceback
from collections.abc import Callable

from bench import (
    api_bench,
    baselines_bench,
    cli_bench,
    fanout_bench,
    groups_peer_bench,
    latency_bench,
    memory_bench,
    model_request_bench,
    report,
    resume_peer_bench,
    scale_bench,
    streams_bench,
    worker_bench,
    worker_pace,
)

STREAMS_MODEST = ["--events", "50000", "--memory-events", "200000", "--memory-streams", "200"]
STREAMS_QUICK = ["--events", "10000", "--memory-events", "20000", "--memory-streams", "20"]
NAMES = [
    "streams",
    "baselines",
    "api",
    "fanout",
    "worker",
    "latency",
    "groups",
    "resume",
    "memory",
    "cli",
    "scale",
    "report",
]


def run_both(first: Callable[[], None], second: Callable[[], None]) -> None:
    """Run ``second`` even when ``first`` fails (then re-raise the failure)."""
    try:
        first()
    finally:
        second()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=[*NAMES, "all"])
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test of the benches)")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    runs: dict[str, Callable[[], None]] = {
        "streams": lambda: streams_bench.main(STREAMS_QUICK if args.quick else STREAMS_MODEST),
        "baselines": lambda: baselines_bench.main([*quick, "--profile"]),
        "api": lambda: api_bench.main(quick),
        "fanout": lambda: fanout_bench.main([*quick, "--profile"]),
        "worker": lambda: run_both(
            lambda: worker_bench.main([*quick, "--profile"]),
            lambda: run_both(
                lambda: worker_pace.main([*quick, "--profile"]), lambda: model_request_bench.main(quick)
            ),
        ),
        "latency": lambda: latency_bench.main(quick),
        "groups": lambda: groups_peer_bench.main(quick),
        "resume": lambda: resume_peer_bench.main(quick),
        "memory": lambda: memory_bench.main(quick),
        "cli": lambda: cli_bench.main(quick),
        "scale": lambda: scale_bench.main(quick),
        "report": report.main,
    }
    started_all = time.perf_counter()
    timings: dict[str, float] = {}
    failed: list[str] = []
    for name, run in runs.items():
        if args.which in (name, "all"):
            print(f"\n=== {name} ===", flush=True)
            started = time.perf_counter()
            try:
                run()
            except (Exception, asyncio.CancelledError):  # one broken bench must not hide the others' results
                traceback.print_exc()
                failed.append(name)
            timings[name] = time.perf_counter() - started
            print(f"({name}: {timings[name]:.0f} s)", flush=True)
    if len(timings) > 1:
        total = time.perf_counter() - started_all
        print(
            "\n" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"; total {total:.0f} s",
            flush=True,
        )
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
