"""The "Cost model" section of ``bench/RESULTS.md`` (issue 14, item 4), from measured figures only.

Inputs, each taken from a bench's JSON (a missing one is named, never guessed): the worker's
CPU per event at real pace and the bare writer's (``worker_pace.json``), the fenced writer's
client and Redis CPU per event in batches (``baselines.json``), the API's CPU per delivery
at the largest fan-out and Redis's CPU per event written while the API's hub reads it
(``fanout.json``), Redis bytes per token event (``streams.json``). The capacities are those
figures inverted (one core = 10^6 µs of CPU per second); the example multiplies them.
"""

from __future__ import annotations

from typing import Any

#: the example of issue 14: 500 tasks streaming 20 tokens/s, each with 3 readers
TASKS, RATE, READERS = 500, 20, 3


def inputs(data: dict[str, dict[str, Any] | None]) -> tuple[dict[str, tuple[float, str]], list[str]]:
    """``name -> (µs or bytes per event, where it was measured)`` and the names of missing sources."""
    got: dict[str, tuple[float, str]] = {}
    missing = []
    pace, base, fan, streams = (data.get(k) for k in ("worker_pace", "baselines", "fanout", "streams"))
    if pace:
        tag = f"worker_pace.json, {pace['params']['tasks']} tasks at {1000 / pace['params']['slow_ms']:.0f} tokens/s"
        size = pace.get("sizes", {}).get(str(pace["params"]["tasks"]))
        if size:  # the median over the rounds
            tag += f", median of {size['worker_cpu_us_per_event']['n']}"
            got["worker_us"] = (size["worker_cpu_us_per_event"]["median"], tag)
            got["writer_pace_us"] = (size["writer_cpu_us_per_event"]["median"], tag)
        else:
            got["worker_us"] = (pace["worker"]["cpu_us_per_item"], tag)
            got["writer_pace_us"] = (pace["writer"]["cpu_us_per_item"], tag)
        if "redis_cpu_us_per_event" in pace["worker"]:
            got["redis_pace_us"] = (pace["worker"]["redis_cpu_us_per_event"], tag + " (Redis process CPU)")
    else:
        missing.append("worker_pace.json")
    if base:
        w = base["ingest"]["columns"]["writer"]
        tag = f"baselines.json, batches of {base['params']['batch']}, median of {base['params']['rounds']}"
        got["writer_batch_us"] = (w["client_cpu_us"]["median"], tag)
        got["redis_batch_us"] = (w["redis_proc_cpu_us"]["median"], tag + " (Redis process CPU)")
    else:
        missing.append("baselines.json")
    if fan:
        cell = max(fan["cells"], key=lambda c: c["clients"])
        detail = cell["api"]["detail"]
        tag = f"fanout.json, {cell['clients']} SSE clients"
        got["api_us"] = (cell["api"]["cpu_us_per_delivery"], tag)
        written = detail["writer"]["written"]
        redis_s = detail["cpu_cores_used"]["redis"] * detail["writer"]["wall_s"]
        got["redis_fanout_us"] = (
            redis_s / written * 1e6,
            tag + ": Redis CPU per event written, writer + hub reads",
        )
    else:
        missing.append("fanout.json")
    if streams:
        got["bytes"] = (streams["memory"]["bytes_per_event"], "streams.json, 5-char token content")
    else:
        missing.append("streams.json")
    return got, missing


def section(data: dict[str, dict[str, Any] | None]) -> list[str]:
    got, missing = inputs(data)
    out = ["## Cost model", "",
           "Per event, from the figures above (each row names its source; a section measured in a quick run "
           "or on a busy box gives an upper bound of the cost, not the capacity of a quiet machine):", "",
           "| cost | per event | source |", "|---|---|---|"]  # fmt: skip
    names = {"worker_us": "worker CPU, real pace (us)", "writer_pace_us": "bare writer CPU, same pace (us)",
             "writer_batch_us": "writer client CPU, batched (us)", "api_us": "API CPU per delivery (us)",
             "redis_pace_us": "Redis CPU, worker at real pace (us)", "redis_batch_us": "Redis CPU, batched writer (us)",
             "redis_fanout_us": "Redis CPU with API readers (us)", "bytes": "Redis bytes per stored token event"}  # fmt: skip
    out += [f"| {label} | {got[k][0]:,.1f} | {got[k][1]} |" for k, label in names.items() if k in got]
    if missing:
        out += [
            "",
            f"Not measured in this report (no JSON): {', '.join(missing)}; the rows that need them are left out.",
        ]
    out += [
        "",
        "What that means (one Python process uses at most one core; Redis executes commands on one core per shard):",
        "",
    ]
    if "worker_us" in got:
        w = got["worker_us"][0]
        out.append(f"- **N workers**: one worker process at real pace streams at most 10^6 / {w:,.0f} = "
                   f"{1e6 / w:,.0f} events/s per core; N processes, N times that.")  # fmt: skip
    if "api_us" in got:
        a = got["api_us"][0]
        out.append(f"- **M API processes**: one API process delivers at most 10^6 / {a:,.1f} = {1e6 / a:,.0f} SSE "
                   "events/s per core; M processes behind a load balancer, M times that (each reads Redis once per "
                   "task it serves, however many of its clients follow the task).")  # fmt: skip
    shard = [f"10^6 / {got[k][0]:,.1f} = {1e6 / got[k][0]:,.0f} events/s ({names[k]})"
             for k in ("redis_pace_us", "redis_fanout_us", "redis_batch_us") if k in got]  # fmt: skip
    if shard:
        out.append(f"- **Redis Cluster of K shards**: one shard absorbs at most {'; '.join(shard)}. A task's keys share "
                   "one hash slot, so tasks spread over the K shards and the capacity is K times that while no single "
                   "task exceeds one shard.")  # fmt: skip
    out += ["", "At real pace the per-event figures include fixed per-second costs (Redis's cron, arq polling the "
            "queue every 50 ms, the bench following the task feed) divided by the events of that run: a run with more "
            "tasks divides them by more events.", "", *example(got), ""]  # fmt: skip
    sc = data.get("scale")
    if sc:
        out += [f"Checked in a run (`bench/scale_bench.py`, {sc['params']['workers']} workers, {sc['params']['apis']} APIs, "
                f"{sc['params']['shards']} shards, {sc['params']['tasks']} tasks): workers {sc['worker_cpu_us_per_event']:,.0f} us "
                f"per event, APIs {sc['api_cpu_us_per_delivery']:,.1f} us per delivery, Redis {sc['redis_cpu_us_per_event']:,.1f} "
                "us per event over all shards (its section above gives the spread over processes).", ""]  # fmt: skip
    return out


def example(got: dict[str, tuple[float, str]]) -> list[str]:
    events, deliveries = TASKS * RATE, TASKS * RATE * READERS
    lines = [f"Example: {TASKS} tasks x {RATE} tokens/s with {READERS} SSE readers each = {events:,} events/s "
             f"appended and {deliveries:,} deliveries/s:", ""]  # fmt: skip
    if "worker_us" in got:
        lines.append(f"- workers: {events:,} x {got['worker_us'][0]:,.0f} us = {events * got['worker_us'][0] / 1e6:.1f} "
                     f"cores (the bare writer at the same pace: {events * got['writer_pace_us'][0] / 1e6:.1f} cores)")  # fmt: skip
    if "api_us" in got:
        lines.append(
            f"- API: {deliveries:,} x {got['api_us'][0]:,.1f} us = {deliveries * got['api_us'][0] / 1e6:.1f} cores"
        )
    for key in ("redis_pace_us", "redis_fanout_us"):
        if key in got:
            lines.append(f"- Redis ({got[key][1]}): {events:,} x {got[key][0]:,.1f} us = "
                         f"{events * got[key][0] / 1e6:.2f} cores")  # fmt: skip
    if "bytes" in got:
        b = got["bytes"][0]
        lines.append(f"- Redis memory: {b:,.0f} bytes x {events:,} events/s = {b * events / 1e6:,.2f} MB per second "
                     f"of streaming, {b * events * 3600 / 1e9:,.1f} GB for each hour of streams kept (retention)")  # fmt: skip
    return lines
