"""py-spy samples of a bench's process, summarised as top functions (issue 14, item 3).

A ratio below its target keeps the profile that explains it in ``bench/RESULTS.md``. The
benches call :func:`start` on the process they measure (the API, the worker) for the
measured window and :func:`finish` to get the summary; by hand:
``python -m bench.profile PID [SECONDS]`` prints the same table for any running process.

``py-spy record --nonblocking --format raw`` writes collapsed stacks (``frame;frame;... N``);
the summary gives each function's share of the samples as the innermost frame ("self")
and anywhere on the stack ("total"). Needs the ``bench`` extra (py-spy) and the right to
ptrace the process (same user; ``kernel.yama.ptrace_scope`` <= 1 for a non-child).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LINE_NO = re.compile(r":\d+\)$")
TOP = 25
ENTRY_PCT = 80


@dataclass
class Sampling:
    proc: asyncio.subprocess.Process | None
    out: Path
    error: str = ""


async def start(pid: int, seconds: float | None = None, rate: int = 200) -> Sampling:
    """Start sampling ``pid`` in the background, for ``seconds`` or until :func:`finish`
    (never raises: a missing py-spy or a refused ptrace ends up in the summary's ``error``)."""
    out = Path(tempfile.mkstemp(prefix="pyspy-", suffix=".txt")[1])
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if exe is None:
        return Sampling(None, out, "py-spy not installed (pip install -e '.[bench]')")
    cmd = [exe, "record", "--nonblocking", "--format", "raw", "-r", str(rate), "-p", str(pid), "-o", str(out)]
    if seconds is not None:
        cmd += ["-d", str(max(1, round(seconds)))]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    return Sampling(proc, out)


#: a category of samples: its name, the leaf frames (innermost) and the frames anywhere on
#: the stack that put a sample in it (prefixes of "function (file)"; the first rule wins)
Rule = tuple[str, tuple[str, ...], tuple[str, ...]]


def categorise(raw: str, rules: list[Rule]) -> dict[str, float]:
    """Each rule's share of the samples in percent (the first matching rule takes a
    sample; the rest is "other")."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        name = next(
            (
                name
                for name, leaves, anywhere in rules
                if frames[-1].startswith(leaves) or any(f.startswith(anywhere) for f in frames)
            ),
            "other",
        )
        counts[name] += int(count)
    total = sum(counts.values())
    order = [name for name, _, _ in rules] + ["other"]
    return {name: round(100 * counts[name] / total, 1) for name in order} if total else {}


async def finish(
    sampling: Sampling, timeout_s: float = 60, rules: list[Rule] | None = None
) -> dict[str, Any]:
    """Stop the sampler (SIGINT: py-spy then writes what it has) and summarise it (with
    ``rules``: also the share of each category, :func:`categorise`)."""
    if sampling.proc is not None:
        if sampling.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                sampling.proc.send_signal(signal.SIGINT)
        try:
            _, err = await asyncio.wait_for(sampling.proc.communicate(), timeout_s)
        except TimeoutError:
            sampling.proc.kill()
            await sampling.proc.wait()
            err = b"py-spy did not finish in time"
        if sampling.proc.returncode not in (0, -signal.SIGINT):
            sampling.error = err.decode(errors="replace").strip()[-300:]
    text = sampling.out.read_text() if sampling.out.exists() else ""
    sampling.out.unlink(missing_ok=True)
    out = summarise(text) | ({"error": sampling.error} if sampling.error else {})
    return out | ({"categories": categorise(text, rules)} if rules else {})


def summarise(raw: str, top: int = TOP) -> dict[str, Any]:
    """Top functions by self and total share of the samples of collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [LINE_NO.sub(")", f) for f in stack.split(";")]
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    share = lambda c: [(f, round(100 * k / samples, 1)) for f, k in c.most_common(top)]  # noqa: E731
    return {
        "samples": samples,
        "self_pct": share(own) if samples else [],
        "total_pct": share(total) if samples else [],
    }


def markdown(summary: dict[str, Any], title: str) -> list[str]:
    """A short table for RESULTS.md."""
    if summary.get("error") and not summary.get("samples"):
        return [f"Profile of {title}: not taken ({summary['error']})."]
    lines = [f"Profile of {title} ({summary['samples']:,} py-spy samples; % of samples):", "",
             "| function (self) | self % | function (on stack) | total % |", "|---|---|---|---|"]  # fmt: skip
    selfs = summary["self_pct"][:10]
    # frames on (nearly) every stack are the entry points (the event loop's run): no information
    totals = [t for t in summary["total_pct"] if t[1] < ENTRY_PCT][:10]
    for i in range(max(len(selfs), len(totals))):
        s = selfs[i] if i < len(selfs) else ("", "")
        t = totals[i] if i < len(totals) else ("", "")
        lines.append(f"| `{s[0]}` | {s[1]} | `{t[0]}` | {t[1]} |".replace("``", ""))
    lines += ["", "Self time in `EpollSelector.select` / `Runner.run` (the event loop) is the process waiting "
              "for I/O: py-spy cannot tell idle threads apart in this container."]  # fmt: skip
    return lines


async def _main(pid: int, seconds: float) -> None:
    sampling = await start(pid)
    await asyncio.sleep(seconds)
    summary = await finish(sampling)
    print("\n".join(markdown(summary, f"pid {pid}")))


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 10.0))
