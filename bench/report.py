"""Turn ``bench/results/*.json`` into ``bench/RESULTS.md`` and PNG plots (issue 5).

Run: ``python -m bench.report`` (``python -m bench all`` runs it last). Every table row gives
the absolute figures of both sides, their ratio where there is a counterpart measured in
the same run on the same Redis, the target where the project set one, and whether it was
met. A section whose JSON is missing is listed as not run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cost_model, plots, report_latency
from bench import report_honest as honest

HERE = Path(__file__).parent
RESULTS = HERE / "results"
OUT = HERE / "RESULTS.md"

Row = tuple[str, str, str, str, str, str]


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def num(x: float | None, digits: int = 1, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}{unit}"


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def met(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def md_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


HEAD = ("measure", "baseline (raw / peer)", "agentstream", "ratio", "target", "met?")


# --------------------------------------------------------------------------- machine


def machine() -> list[str]:
    model = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split("\n", 1)[0].split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"

    def version(*cmd: str) -> str:
        if shutil.which(cmd[0]) is None:
            return "not found"
        try:
            return (
                subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().split("\n")[0]
            )
        except (OSError, subprocess.SubprocessError):
            return "?"

    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores; RAM {mem}",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
        f"- Redis: {version('redis-server', '--version')} (each bench starts its own on a free loopback port)",
        f"- node: {version('node', '--version')}",
        f"- load average when the report was written: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


# --------------------------------------------------------------------------- sections


def streams_section(d: dict[str, Any]) -> tuple[list[Row], dict[str, float]]:
    i, r, g, lat, mem = (d[k] for k in ("ingest", "replay", "groups", "latency", "memory"))
    rows: list[Row] = [
        ("ingest events/s (batch 64) vs redis-py pipelined XADD (client-bound; see the honest baselines)",
         num(i["raw_pipelined_xadd"]["per_s"], 0), num(i["writer"]["per_s"], 0), ratio(i["ratio_throughput"]), "", ""),
        ("ingest client CPU us/event", num(i["raw_pipelined_xadd"]["cpu_us_per_item"]), num(i["writer"]["cpu_us_per_item"]),
         ratio(i["ratio_cpu"]), "", ""),
        ("replay entries/s vs redis-py xrange (dicts built; the floor is in the honest baselines)",
         num(r["raw_xrange"]["per_s"], 0), num(r["replay_decoded_filtered"]["per_s"], 0), ratio(r["ratio"]), "", ""),
        ("group read+ack entries/s", num(g["raw_xreadgroup_xack"]["per_s"], 0), num(g["group_consumer"]["per_s"], 0),
         ratio(g["ratio"]), "", ""),
        ("append -> tail p50 ms (light load)", num(lat["raw_xadd_xread_block"]["p50_ms"], 3), num(lat["writer_to_tail"]["p50_ms"], 3), "", "", ""),
        ("append -> tail p99 ms (light load)", num(lat["raw_xadd_xread_block"]["p99_ms"], 3), num(lat["writer_to_tail"]["p99_ms"], 3),
         ratio(lat["writer_to_tail"]["p99_ms"] / lat["raw_xadd_xread_block"]["p99_ms"]), "<= 2 ms", met(lat["writer_to_tail"]["p99_ms"] <= 2)),
        ("Redis bytes / token event (5-char content)", "", num(mem["bytes_per_event"]),
         f"{mem['overhead_bytes_per_event']:.1f} + content", "<= 64 + content", met(mem["overhead_bytes_per_event"] <= 64)),
    ]  # fmt: skip
    ratios = {"ingest vs redis-py pipeline": i["ratio_throughput"], "replay vs redis-py xrange": r["ratio"],
              "group read+ack (raw)": g["ratio"]}  # fmt: skip
    return rows, ratios


def api_section(d: dict[str, Any]) -> tuple[list[Row], dict[str, float]]:
    raw, sse, rep, p = d["raw_fanout"], d["sse_fanout"], d["replay"], d["params"]
    rl, sl, rr = raw["load"], sse["load"], rep["ratios_vs_raw"]
    target = d.get("target", {}).get("sse_p99_ms_max", 250)
    fan_ratio = sse["delivered_per_s"] / raw["delivered_per_s"]
    rows: list[Row] = [
        (f"fan-out {p['tasks']} tasks x {p['clients_per_task']} clients: done", f"{rl['completed']}/{rl['clients']}",
         f"{sl['completed']}/{sl['clients']}", "", "all", met(sl["completed"] == sl["clients"])),
        ("fan-out deliveries/s", num(raw["delivered_per_s"], 0), num(sse["delivered_per_s"], 0), ratio(fan_ratio), "", ""),
        ("fan-out latency p50 ms", num(rl.get("p50_ms")), num(sl.get("p50_ms")), "", "", ""),
        ("fan-out latency p99 ms", num(rl.get("p99_ms")), num(sl.get("p99_ms")), ratio(sl.get("p99_ms", 0) / rl["p99_ms"]) if rl.get("p99_ms") else "-",
         f"<= {target} ms", met(sl.get("p99_ms", 1e9) <= target)),
        ("API RSS MB (clients connected / peak)", "", f"{sse['api_rss_kb']['before_run_clients_connected'] / 1024:.0f} / {sse['api_rss_kb']['peak'] / 1024:.0f}", "", "", ""),
        ("API CPU us / delivery", "", num(sse["api_cpu_us_per_delivery"]), "", "", ""),
        (f"replay {rep['events_in_stream']:,} over SSE, ev/s", num(rep["raw_xrange_1000"]["per_s"], 0), num(rep["sse_minimal_reader"]["per_s"], 0), ratio(rr["sse_minimal_reader"]), "", ""),
        ("replay via SDK events(), ev/s", num(rep["raw_xrange_1000"]["per_s"], 0), num(rep["sdk_events_sse"]["per_s"], 0), ratio(rr["sdk_events_sse"]), "", ""),
        ("replay via SDK JSON pages, ev/s", num(rep["raw_xrange_1000"]["per_s"], 0), num(rep["sdk_replay_json_pages_1000"]["per_s"], 0), ratio(rr["sdk_replay_json_pages_1000"]), "", ""),
    ]  # fmt: skip
    return rows, {"SSE fan-out deliveries": fan_ratio, "SSE replay": rr["sse_minimal_reader"]}


def worker_section(d: dict[str, Any]) -> tuple[list[Row], dict[str, float]]:
    """The worker against the bare writer at 200 tasks, over the rounds (median (min-max),
    ratios paired within each round)."""
    sm, t = d["summary"], d["target"]
    sp, ok = honest.spread, sm["met"]
    rows: list[Row] = [
        (f"events/s, {d['params']['tasks']} concurrent tasks", sp(sm["writer_per_s"], 0, ""), sp(sm["worker_per_s"], 0, ""),
         sp(sm["ratio_throughput"]), f">= {t['throughput_ratio_min']:g}x", met(ok["throughput"])),
        ("client CPU us/event", sp(sm["writer_cpu_us_per_event"], 1, ""), sp(sm["worker_cpu_us_per_event"], 1, ""),
         sp(sm["ratio_cpu"]), f"<= {t['cpu_ratio_max']:g}x", met(ok["cpu"])),
        ("model server CPU us/event (own process)", "", sp(sm["model_server_cpu_us_per_event"], 1, ""), "", "", ""),
        ("worker CPU split: per task us / per token event us (share of per-task)", "",
         f"{sp(sm['per_task_us'], 0, '')} / {sp(sm['per_token_event_us'], 1, '')} ({sp(sm['per_task_share'], 2, '')})",
         "", "", ""),
        ("token -> Redis p50 ms (entry id: 1 ms resolution, truncated)", sp(sm["writer_to_redis_p50_ms"], 3, ""),
         sp(sm["worker_to_redis_p50_ms"], 3, ""), "", "", ""),
        ("token -> Redis p99 ms (entry id: 1 ms resolution, truncated)", sp(sm["writer_to_redis_p99_ms"], 3, ""),
         sp(sm["worker_to_redis_p99_ms"], 3, ""), "", "", ""),
        ("token -> tail p50 ms", sp(sm["writer_p50_ms"], 3, ""), sp(sm["worker_p50_ms"], 3, ""),
         f"{sp(sm['adds_p50_ms'], 3, '')} ms added", "", ""),
        ("token -> tail p99 ms", sp(sm["writer_p99_ms"], 3, ""), sp(sm["worker_p99_ms"], 3, ""),
         f"{sp(sm['adds_p99_ms'], 3, '')} ms added", f"<= +{t['worker_adds_p99_ms_max']:g} ms", met(ok["latency"])),
        ("tasks that never ended (all rounds)", "", str(sm["never_ended"]), "", "0", met(ok["ended"])),
    ]  # fmt: skip
    return rows, {"worker vs bare writer": sm["ratio_throughput"]["median"]}


def groups_section(d: dict[str, Any]) -> list[tuple[str, ...]]:
    def row(name: str, k: str, vs: str | None) -> tuple[str, ...]:
        x = d[k]
        return (name, num(x["per_s"], 0), num(x["cpu_us_per_item"]), f"{x['items']}/{x['expected']}", str(x["pending_after"]),
                ratio(x["per_s"] / d[vs]["per_s"]) if vs else "")  # fmt: skip

    return [
        row("raw XREADGROUP COUNT 100 + XACK per batch", "raw", None),
        row("agentstream GroupConsumer read(100) + ack(batch)", "group_consumer_batch", "faststream_batch"),
        row("FastStream StreamSub batch=True, max_records=100", "faststream_batch", None),
        row("agentstream GroupConsumer async for + ack each", "group_consumer_each", "faststream_each"),
        row("FastStream StreamSub per message, AckPolicy.ACK", "faststream_each", None),
    ]


def resume_section(d: dict[str, Any]) -> list[tuple[str, ...]]:
    lib, sse = d["agentstream_reconnects"]["library"], d["agentstream_reconnects"]["sse"]
    rs, ok, rk = d["resumable_reconnects"], d["agentstream_killed"], d["resumable_killed"]
    t = lambda x, k: num(x["time_to_first_event_after_resume_ms"].get(k), 2)  # noqa: E731
    lost = lambda x: f"{x['lost']} / {x['duplicated']} / {x['missing_at_end']}"  # noqa: E731
    after = rk.get("after_stall") or {}
    recover = after.get("error") or after.get("result") or "-"
    return [
        (f"reconnects done (of {d['params']['reconnects']})", str(lib["reconnects"]), str(sse["reconnects"]), str(rs["reconnects"]), ""),
        ("resume -> first event p50 ms", t(lib, "p50_ms"), t(sse, "p50_ms"), t(rs, "p50_ms"), ""),
        ("resume -> first event p99 ms", t(lib, "p99_ms"), t(sse, "p99_ms"), t(rs, "p99_ms"), ""),
        ("resume -> first event max ms", t(lib, "max_ms"), t(sse, "max_ms"), t(rs, "max_ms"), ""),
        ("lost / duplicated / missing at end", lost(lib), lost(sse), lost(rs), "0 / 0 / 0"),
        ("Redis PUBLISH calls for the reconnect run", "0 (reads are XRANGE/XREAD)", "0", f"{rs.get('redis_publish_calls', '-')} for {d['params']['events']:,} events", ""),
        ("producer SIGKILLed: events the reader had", str(ok["received_before_kill"]), "", str(rk["received"]), ""),
        ("... the connected reader is told", f"no (silence; gives up after {d['params']['stall_ms']:g} ms)", "",
         f"no (silence; {'stalled' if rk['stalled'] else 'ended'})", ""),
        ("... a reader resuming now gets", f"{ok['fresh_reader_after_kill']['tokens']} stored tokens (of {ok['received_before_kill']} seen), seq gaps {ok['fresh_reader_after_kill']['seq_gaps']}",
         "", f"{recover} after {num(after.get('after_ms'), 0)} ms", ""),
        ("... stream finished by a new attempt", f"{ok['reader_final']['ended']}: lost / dup / missing {lost(ok['reader_final'])}", "",
         "impossible (history lived in the producer)", ""),
    ]  # fmt: skip


def memory_section(d: dict[str, Any]) -> list[Row]:
    raw, cycles = d["raw"], d["ours"]
    last = cycles[-1]
    target = d["target"]["residual_excluding_feed_bytes_max"]
    feed = last["feed_bytes"]["after_expiry"] - last["feed_bytes"]["before"]
    return [
        (f"bytes / entry, {last['tasks']} tasks x {last['events_per_task']:.0f} entries", num(raw["bytes_per_entry_finished"]),
         num(last["bytes_per_entry_finished"]), ratio(d["ratio_bytes_per_entry_vs_raw"]), "", ""),
        (f"growth with {last['tasks']} tasks finished, MB", num(raw["growth_finished_bytes"] / 1e6, 2), num(last["growth_finished_bytes"] / 1e6, 2), "", "", ""),
        (f"keys expired after (retention {d['params']['retention_s']} s)", f"{raw['expiry_wait_s']:.1f} s",
         ", ".join(f"{c['expiry_wait_s']:.1f} s" for c in cycles), "", "", met(all(c["keys_left"] == 0 for c in cycles))),
        ("residual after expiry, KB (per cycle)", num(raw["residual_after_expiry_bytes"] / 1e3),
         ", ".join(num(c["residual_after_expiry_bytes"] / 1e3) for c in cycles), "", "", ""),
        ("... of which the task feed (capped, not expired), KB", "", num(feed / 1e3), "", "", ""),
        ("residual excluding the feed, KB (per cycle)", "", ", ".join(num(c["residual_excluding_feed_bytes"] / 1e3) for c in cycles),
         "", f"<= {target / 1024:.0f} KiB", met(d["returned_to_baseline"])),
    ]  # fmt: skip


def throughput_ratios(data: dict[str, dict[str, Any] | None]) -> dict[str, float]:
    """ours / baseline throughput of every section that has one, for the ratio plot."""
    ratios: dict[str, float] = {}
    if data.get("streams"):
        ratios.update(streams_section(data["streams"])[1])  # type: ignore[arg-type]
    b = data.get("baselines")
    if b:
        ratios["ingest vs best raw writer (median)"] = b["ingest"]["ratios_ours_over"][b["best_raw_writer"]][
            "per_s"
        ]["median"]
        if "best_lists_reader" in b:
            ratios["replay vs best XRANGE lists reader (median)"] = b["replay"]["ratios_ours_over"][
                b["best_lists_reader"]
            ]["per_s"]["median"]
    if data.get("api"):
        ratios.update(api_section(data["api"])[1])  # type: ignore[arg-type]
    if data.get("worker") and "summary" in data["worker"]:
        ratios.update(worker_section(data["worker"])[1])  # type: ignore[arg-type]
    g = data.get("groups")
    if g:
        ratios["groups: ours / FastStream (batch)"] = g["ratios"]["ours_batch_vs_faststream_batch"]
        ratios["groups: ours / FastStream (each)"] = g["ratios"]["ours_each_vs_faststream_each"]
    return ratios


# --------------------------------------------------------------------------- document


def streams_md(d: dict[str, Any]) -> list[str]:
    return [
        "## Streams core vs raw redis-py (`bench/streams_bench.py`)",
        "",
        md_table(HEAD, streams_section(d)[0]),
        "",
    ]


def api_md(d: dict[str, Any]) -> list[str]:
    p = d["params"]
    return ["## HTTP API vs raw Redis (`bench/api_bench.py`)", "",
            f"{p['tasks']} tasks x {p['clients_per_task']} SSE clients, {p['rate_per_task']:g} tokens/s per task, "
            f"{p['seconds']:g} s, one API process; raw = one blocking XREAD connection per client.", "",
            md_table(HEAD, api_section(d)[0]), ""]  # fmt: skip


def worker_md(d: dict[str, Any]) -> list[str]:
    if "summary" not in d:
        return ["## Worker vs bare writer (`bench/worker_bench.py`)", "",
                "worker.json predates the rounds and targets: re-run `python -m bench worker`.", ""]  # fmt: skip
    p, ok = d["params"], d["summary"]["met"]
    out = [
        "## Worker vs bare writer (`bench/worker_bench.py`)", "", honest.provenance(d), "",
        f"Throughput: {p['tasks']} concurrent `llm` tasks of {p['tokens']} tokens against the scripted model (own "
        "process, no delay), one arq worker process; bare writer: `TaskStore.writer` appending the same events for "
        "the same tasks, each task yielding to the loop after each event (one event per wake-up, as a worker's "
        f"tasks). Latency: {p['lat_tasks']} tasks x {p['lat_tokens']} tokens, one per {p['slow_ms']} ms, token "
        "timestamp -> a live tail in another process. "
        f"{d.get('rounds', 1)} round(s), each on a fresh stack; median (min-max), ratios paired within each round.", "",
        md_table(HEAD, worker_section(d)[0]), "",
    ]  # fmt: skip
    if not (ok.get("throughput") and ok.get("cpu")):
        prof = d.get("profile") or {}
        if prof.get("categories"):
            long, short = prof["categories"], prof.get("short_tasks_categories", {})
            out += [f"Where the worker's samples went, by what is on their stack ({p['tokens']}-token tasks, then the "
                    "same tasks with 2 tokens: what a task costs apart from its tokens; `PROFILE_RULES` in the bench); "
                    "% of samples. \"other\": stacks py-spy cut short (asyncio internals only) and other threads.", "",
                    *honest.md(("category", f"{p['tokens']} tokens", "2 tokens"),
                               [(k, f"{v:.1f}", f"{short[k]:.1f}" if k in short else "") for k, v in long.items()]), ""]  # fmt: skip
        out += honest.profile_block(prof or None, "the worker process, throughput run",
                                    "python -m bench.worker_bench --profile",
                                    "over one more throughput run after the measured rounds")  # fmt: skip
    return out


def latency_md(lat: dict[str, Any]) -> list[str]:
    return [
        "## Latency matrix: token -> SSE client (`bench/latency_bench.py`)", "",
        f"Source of tokens: {lat['source']}. Each cell: {lat['params']['seconds']:g} s of writing; raw = XADD -> "
        "blocking XREAD, one connection per consumer, same rate, same Redis, same run. Columns: p50 / p99 / max in ms; "
        "the last column is the CPU (cores) each process used during the SSE phase and how busy the whole box was "
        "(2 cores; the writer, the API, Redis and all clients share them).", "",
        md_table(("tasks x consumers @ tokens/s per task", "raw XADD->XREAD", "agentstream SSE", "p99 ratio", "target p99", "met?",
                  "SSE clients done, samples", "CPU (SSE phase)"), report_latency.latency_section(lat)), "",
        "![latency matrix](results/latency_matrix.png)", "", *report_latency.latency_notes(lat),
    ]  # fmt: skip


def groups_md(g: dict[str, Any]) -> list[str]:
    return [
        "## Consumer groups vs FastStream (`bench/groups_peer_bench.py`)", "",
        f"One finished stream of {g['entries']:,} entries (agentstream's encoding), drained by each consumer with its "
        f"own group created at `0`, one after the other, same process, same Redis. FastStream {g['versions']['faststream']} "
        f"(redis-py {g['versions']['redis_py']}), access log off. Ratio: agentstream / FastStream in the same ack mode.", "",
        md_table(("consumer", "entries/s", "CPU us/entry", "processed", "pending after", "ratio vs FastStream"), groups_section(g)), "",
        "![groups](results/groups.png)", "",
    ]  # fmt: skip


def resume_md(r: dict[str, Any]) -> list[str]:
    p = r["params"]
    return [
        "## Resume vs Vercel resumable-stream (`bench/resume_peer_bench.py`)", "",
        f"resumable-stream {r['versions']['resumable-stream']} with `redis` {r['versions']['redis (npm)']} (node), same Redis. "
        f"A producer process emits {p['events']:,} events, one per {p['interval_ms']:g} ms; a reader process reads "
        f"{p['every']} events, disconnects, waits {p['pause_ms']:g} ms and resumes, {p['reconnects']} times, then reads to "
        "the end. Then the producer is SIGKILLed half-way.", "",
        md_table(("measure", "agentstream Reader.tail", "agentstream SSE API", "resumable-stream", "target"), resume_section(r)), "",
        "What each guarantees:", "",
        f"- **agentstream**: {r['guarantees']['agentstream']}",
        f"- **resumable-stream**: {r['guarantees']['resumable-stream']}", "",
        "![resume](results/resume.png)", "",
    ]  # fmt: skip


def memory_md(d: dict[str, Any]) -> list[str]:
    return ["## Memory over finished tasks (`bench/memory_bench.py`)", "",
            md_table(HEAD, memory_section(d)), "", "![memory](results/memory.png)", ""]  # fmt: skip


def model_request_md(d: dict[str, Any]) -> list[str]:
    rows = [
        (name, honest.spread(r["sdk_create_cpu_us"], 0, ""), honest.spread(r["agentstream_cpu_us"], 0, ""),
         honest.spread(r["ratio"]))
        for name, r in d["prompts"].items()
    ]  # fmt: skip
    return [
        "## Model client CPU per request (`bench/model_request_bench.py`)", "", honest.provenance(d), "",
        f"CPU of the worker's process per streamed model turn (a one-token answer from a loopback server in its own "
        f"process), {d['requests']} requests per client per round, {d['rounds']} rounds interleaved; median (min-max), "
        "the ratio paired within each round. SDK create: `chat.completions.with_streaming_response.create` with every "
        "field as an argument, which the SDK walks against its TypedDicts in Python on each call (what the client did "
        "before); agentstream: `OpenAIClient.stream_chat`, which passes the history, tools and options as `extra_body`. "
        "Both through the SDK's aiohttp transport.", "",
        *honest.md(("prompt", "SDK create, us", "agentstream, us", "agentstream / SDK"), rows), "",
    ]  # fmt: skip


#: every section in document order: the JSON it renders and how
SECTIONS: list[tuple[str, Callable[[dict[str, Any]], list[str]]]] = [
    ("streams", streams_md), ("baselines", honest.baselines), ("api", api_md), ("fanout", honest.fanout),
    ("worker", worker_md), ("worker_pace", honest.pace), ("model_request", model_request_md), ("scale", honest.scale), ("latency", latency_md),
    ("groups", groups_md), ("resume", resume_md), ("memory", memory_md),
]  # fmt: skip


def build() -> str:
    names = [name for name, _ in SECTIONS]
    data = {n: load(n) for n in names}
    made = plots.plots(data, throughput_ratios(data))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# agentstream benchmark results",
        "",
        f"Generated by `python -m bench.report` on {now} from `bench/results/*.json` "
        "(`python -m bench all` runs every bench, then this). Each ratio is measured side by side in "
        "one run, on the same Redis, on this machine; absolute figures are this machine's. Other "
        "processes may have been running: figures are noisy, latency tails most of all.",
        "",
        *quick_warning([n for n in names if honest.is_quick(data[n])]),
        "## Machine",
        "",
        *machine(),
        "",
    ]
    missing = [n for n in names if data[n] is None]
    if missing:
        parts += [f"Not run (no JSON): {', '.join(missing)}.", ""]
    for name, render in SECTIONS:
        section_data = data[name]
        if section_data is not None:
            parts += render(section_data)
    parts += cost_model.section(data)
    if "throughput_ratios.png" in made:
        parts += ["## Throughput ratios", "", "![throughput ratios](results/throughput_ratios.png)", ""]
    parts += ["Plots: " + ", ".join(f"`bench/results/{m}`" for m in made), ""]
    return "\n".join(parts)


def quick_warning(quick: list[str]) -> list[str]:
    if not quick:
        return []
    return [f"**Not a quiet-machine measurement**: {', '.join(quick)} come from `--quick` runs (smoke-test sizes) "
            "on a busy 2-core box (other test suites running); their absolute figures are meaningless and even their "
            "ratios are noisy. Each such section gives its load average. Re-measure on a quiet machine with "
            "`python -m bench all` before quoting them. Sections without a measurement line come from an earlier full "
            "run whose JSON recorded no load average.", ""]  # fmt: skip


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT.write_text(build())
    print(f"written: {OUT}")


if __name__ == "__main__":
    main()
