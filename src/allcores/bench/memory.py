"""Section "memory": does ``imap`` stream, or does it hold the input and the results?

Peak RSS growth of the caller while it consumes ``imap`` over a long generator,
allcores vs ``multiprocessing.Pool.imap`` (which keeps every result its workers have
finished until the consumer takes it: with a consumer slower than the workers, results
pile up). Each tool runs in a fresh interpreter, so that one does not inherit the
other's peak. The consumer is slower than the workers (it spins a
few microseconds per item), as a real consumer that writes results somewhere is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from allcores.bench.measure import Config, Progress, Section, Table

QUESTION = ("How much memory does the caller need to stream a long generator through "
            "imap to a slow consumer?")

TOOLS = [("multiprocessing", "multiprocessing.Pool.imap"), ("allcores", "allcores.Pool.imap")]

# Prints the peak RSS growth (MiB) of the caller while it consumes imap (chunksize 256).
PROBE = textwrap.dedent("""
    import json, sys, time
    from allcores.bench import workloads
    tool, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def rss_mib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024

    if tool == "allcores":
        import allcores
        pool = allcores.Pool(workers)
    else:
        import multiprocessing
        pool = multiprocessing.Pool(workers)
    list(pool.imap(workloads.identity, range(1000)))  # warm up: workers started
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak (VmHWM) to the current RSS
    before = rss_mib("VmRSS")
    start = time.perf_counter()
    total = 0
    for value in pool.imap(workloads.identity, iter(range(n)), 256):
        total += value
        spin_until = time.perf_counter() + 2e-6
        while time.perf_counter() < spin_until:
            pass
    seconds = time.perf_counter() - start
    growth = rss_mib("VmHWM") - before
    print(json.dumps({"growth_mib": growth, "seconds": seconds,
                      "ok": total == n * (n - 1) // 2}))
    pool.terminate()
""")


def steps(config: Config) -> int:
    return len(TOOLS)


def available() -> bool:
    return os.path.exists("/proc/self/clear_refs")


def run(config: Config, progress: Progress) -> Section:
    started = time.perf_counter()
    n = max(10_000, int((10**6 if config.quick else 10**7) * config.scale))
    rows = []
    for tool, label in TOOLS:
        progress.step(f"memory: {label} over a {n:,}-item generator")
        row = {"tool": tool, "label": label, "items": n}
        if not available():
            row.update(correct=None, status="skipped: the probe reads Linux's /proc")
            rows.append(row)
            continue
        proc = subprocess.run([sys.executable, "-c", PROBE, tool, str(n), str(config.workers)],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            row.update(correct=False, status=f"failed: {last}")
            rows.append(row)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(correct=bool(result["ok"]), status="ok" if result["ok"] else "WRONG",
                   growth_mib=result["growth_mib"], seconds=result["seconds"])
        rows.append(row)
    table = Table(
        "memory: peak RSS growth of the caller, imap over a generator, chunksize 256",
        ["tool", "items", "peak RSS growth", "time", "answer"],
        [[r["label"], f"{r['items']:,}",
          f"{r['growth_mib']:.1f} MiB" if "growth_mib" in r else r["status"],
          f"{r['seconds']:.2f} s" if "seconds" in r else "-",
          "ok" if r.get("correct") else r["status"]] for r in rows],
        [f"{config.workers} workers; the consumer spins 2 us per item; each tool in a "
         "fresh interpreter."])
    section = Section(name="memory", question=QUESTION, rows=rows, tables=[table],
                      extra={"items": n, "workers": config.workers},
                      seconds=time.perf_counter() - started)
    section.reading = reading(section)
    return section


def reading(section: Section) -> list[str]:
    by = {r["tool"]: r for r in section.rows if r.get("correct") and "growth_mib" in r}
    if "allcores" not in by or "multiprocessing" not in by:
        return ["The memory comparison did not complete (see the table)."]
    mine, theirs = by["allcores"]["growth_mib"], by["multiprocessing"]["growth_mib"]
    text = (f"Streaming {by['allcores']['items']:,} items: allcores grew by {mine:.1f} MiB, "
            f"multiprocessing.Pool.imap by {theirs:.1f} MiB")
    if mine > 0.5:
        text += f" ({theirs / mine:.0f}x as much)."
    else:
        text += "."
    return [text]
