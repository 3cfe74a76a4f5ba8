"""``python -m bench [streams|api|worker|all] [--quick]``: run one benchmark or all of them.

``all`` runs the streams core with modest sizes, then the API and the worker benches at
their defaults; each prints its table and writes its JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import time

from bench import api_bench, streams_bench, worker_bench

STREAMS_MODEST = ["--events", "50000", "--memory-events", "200000", "--memory-streams", "200"]
STREAMS_QUICK = ["--events", "10000", "--memory-events", "20000", "--memory-streams", "20"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=["streams", "api", "worker", "all"])
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test of the benches)")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    runs = {
        "streams": lambda: streams_bench.main(STREAMS_QUICK if args.quick else STREAMS_MODEST),
        "api": lambda: api_bench.main(quick),
        "worker": lambda: worker_bench.main(quick),
    }
    for name, run in runs.items():
        if args.which in (name, "all"):
            print(f"\n=== {name} ===", flush=True)
            started = time.perf_counter()
            run()
            print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
