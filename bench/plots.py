"""The PNG plots of ``bench/RESULTS.md`` (drawn by ``bench.report`` from the benches' JSON)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def plots(data: dict[str, dict[str, Any] | None], ratios: dict[str, float]) -> list[str]:
    """Draw the PNGs under ``bench/results/``; ``ratios``: throughput ratios (ours / baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(RESULTS / name, dpi=110)
        plt.close(fig)
        made.append(name)

    drawn: list[tuple[Any, Callable[..., None]]] = [
        (data.get("latency"), latency_plot), (ratios, ratios_plot), (data.get("groups"), groups_plot),
        (data.get("memory"), memory_plot), (data.get("resume"), resume_plot),
    ]  # fmt: skip
    for figures, draw in drawn:
        if figures:
            draw(figures, plt, save)
    return made


def latency_plot(lat: dict[str, Any], plt: Any, save: Callable[[Any, str], None]) -> None:
    """p50 / p99 bars per latency-matrix cell, raw and SSE (log scale)."""
    cells = lat["cells"]
    labels = [f"{c['tasks']}x{c['consumers']}\n@{c['rate_per_task']:g}/s" for c in cells]
    fig, ax = plt.subplots(figsize=(max(7, len(cells) * 1.1), 4.5))
    w = 0.2
    xs = range(len(cells))
    series = [("raw p50", "raw", "p50_ms", "#9ecae1"), ("raw p99", "raw", "p99_ms", "#3182bd"),
              ("SSE p50", "sse", "p50_ms", "#fdae6b"), ("SSE p99", "sse", "p99_ms", "#e6550d")]  # fmt: skip
    for k, (name, side, key, color) in enumerate(series):
        ax.bar(
            [x + (k - 1.5) * w for x in xs],
            [max(c[side][key] or 0.01, 0.01) for c in cells],
            w,
            label=name,
            color=color,
        )
    for x, c in zip(xs, cells, strict=True):
        if c.get("target_p99_ms"):
            ax.hlines(c["target_p99_ms"], x - 0.45, x + 0.45, colors="k", linestyles="dashed")
    ax.set_yscale("log")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("token -> client latency, ms (log)")
    ax.set_title("Latency matrix: tasks x consumers @ tokens/s per task (dashed: p99 target)")
    ax.legend(fontsize=8)
    save(fig, "latency_matrix.png")


def ratios_plot(ratios: dict[str, float], plt: Any, save: Callable[[Any, str], None]) -> None:
    """One bar per throughput ratio, ours / baseline."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(ratios) + 1.2))
    names = list(ratios)
    vals = [ratios[n] for n in names]
    ax.barh(names, vals, color=["#31a354" if v >= 1 else "#de2d26" for v in vals])
    ax.axvline(1.0, color="k", linewidth=1)
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v:.2f}x", va="center", fontsize=8)
    ax.set_xlabel("agentstream / baseline, throughput (same run, same Redis)")
    ax.invert_yaxis()
    save(fig, "throughput_ratios.png")


def groups_plot(g: dict[str, Any], plt: Any, save: Callable[[Any, str], None]) -> None:
    """Entries/s of each consumer of the groups bench."""
    keys = ["raw", "group_consumer_batch", "faststream_batch", "group_consumer_each", "faststream_each"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(keys, [g[k]["per_s"] for k in keys], color=["#999", "#e6550d", "#3182bd", "#e6550d", "#3182bd"])
    ax.set_xlabel(f"entries/s processed + acked ({g['entries']:,} entries, own group each)")
    ax.invert_yaxis()
    save(fig, "groups.png")


def memory_plot(m: dict[str, Any], plt: Any, save: Callable[[Any, str], None]) -> None:
    """Redis memory before, with all tasks finished and after expiry."""
    fig, ax = plt.subplots(figsize=(7, 4))
    stages = ["used_memory_before", "used_memory_finished", "used_memory_after_expiry"]
    names = ["before", "all finished", "after expiry"]
    ax.plot(names, [m["raw"][s] / 1e6 for s in stages], marker="o", label="raw XADD + EXPIRE")
    for n, c in enumerate(m["ours"], 1):
        ax.plot(names, [c[s] / 1e6 for s in stages], marker="o", label=f"agentstream cycle {n}")
    ax.axhline(m["baseline_used_memory"] / 1e6, color="k", linestyle="dashed", linewidth=1, label="baseline")
    ax.set_ylabel("Redis used_memory - client buffers, MB")
    ax.set_title(
        f"{m['params']['tasks']} tasks x {m['params']['events_per_task']} events, retention {m['params']['retention_s']} s"
    )
    ax.legend(fontsize=8)
    save(fig, "memory.png")


def resume_plot(r: dict[str, Any], plt: Any, save: Callable[[Any, str], None]) -> None:
    """Resume -> first event percentiles of each side."""
    sides = [("agentstream Reader.tail", r["agentstream_reconnects"]["library"]),
             ("agentstream SSE API", r["agentstream_reconnects"]["sse"]),
             ("resumable-stream", r["resumable_reconnects"])]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, key in enumerate(("p50_ms", "p99_ms", "max_ms")):
        ax.bar([x + (k - 1) * 0.25 for x in range(len(sides))],
               [s["time_to_first_event_after_resume_ms"].get(key) or 0 for _, s in sides], 0.25, label=key)  # fmt: skip
    ax.set_xticks(range(len(sides)), [n for n, _ in sides])
    ax.set_ylabel("resume -> first event, ms")
    ax.set_title(f"{r['params']['reconnects']} reconnects mid-stream")
    ax.legend(fontsize=8)
    save(fig, "resume.png")
