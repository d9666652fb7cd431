"""PNG plots of a run, drawn with matplotlib's Agg backend (no display needed).

- ``kernels_speedup.png``: per kernel and method, the speedup over pure-Python serial
  (log scale) and the parallel speedup over the same implementation's serial run;
- ``overhead.png``: time per item against the per-item cost for each tool (log-log),
  each tool's crossover marked, and the speedup over serial;
- ``mandelbrot.png``: the native kernel's image;
- ``timeline_<strategy>.png``: the timeline section's median run of each chunking
  strategy, one lane per worker (``allcores.Insights.plot``).
"""

from __future__ import annotations

import os

import numpy as np

from allcores.bench.measure import Section


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def draw(sections: dict[str, Section], out_dir: str) -> list[str]:
    """Draw what the sections that ran allow; return the file names written."""
    written = []
    sections = {name: s for name, s in sections.items() if not s.extra.get("failed")}
    if "kernels" in sections:
        written.append(kernels_speedup(sections["kernels"], out_dir))
        image = sections["kernels"].artifacts.get("mandelbrot")
        if image is not None:
            written.append(mandelbrot(image, out_dir))
    if "overhead" in sections:
        written.append(overhead(sections["overhead"], out_dir))
    if "timeline" in sections:
        written += timelines(sections["timeline"], out_dir)
    return written


def kernels_speedup(section: Section, out_dir: str) -> str:
    plt = _pyplot()
    rows = [r for r in section.rows if r.get("correct") and r.get("median_s")]
    kernels = list(dict.fromkeys(r["kernel"] for r in section.rows))
    methods = list(dict.fromkeys(r["label"] for r in section.rows))
    workers = section.extra.get("workers", 0)
    by = {(r["kernel"], r["label"]): r for r in rows}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9), constrained_layout=True)
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(kernels))
    colors = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        values = [by[(k, method)]["speedup_vs_pure"] if (k, method) in by else 0
                  for k in kernels]
        top.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, label=method,
                color=colors(i % 10))
    top.set_yscale("log")
    top.set_xticks(x, kernels)
    top.set_ylabel("speedup over pure Python, serial (log)")
    top.set_title("Speedup over pure-Python serial (pure rows scaled from a slice)")
    top.axhline(1, color="black", linewidth=0.8)
    top.legend(fontsize=8, ncols=3)
    parallel = [m for m in methods
                if any(by.get((k, m), {}).get("efficiency") is not None for k in kernels)]
    width = 0.8 / max(1, len(parallel))
    for i, method in enumerate(parallel):
        values = []
        for k in kernels:
            row = by.get((k, method))
            values.append(row["efficiency"] * row["workers"]
                          if row and row.get("efficiency") is not None else 0)
        bottom.bar(x + (i - (len(parallel) - 1) / 2) * width, values, width, label=method,
                   color=colors(methods.index(method) % 10))
    bottom.axhline(workers, color="gray", linestyle="--", linewidth=1,
                   label=f"{workers} workers: ideal")
    bottom.axhline(1, color="black", linewidth=0.8)
    bottom.set_xticks(x, kernels)
    bottom.set_ylabel("speedup over serial, same implementation")
    bottom.set_title(f"Parallel speedup on {workers} workers (native rows: over native "
                     "serial; pure rows: over pure serial)")
    bottom.legend(fontsize=8, ncols=3)
    path = os.path.join(out_dir, "kernels_speedup.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.path.basename(path)


def overhead(section: Section, out_dir: str) -> str:
    plt = _pyplot()
    labels = section.extra.get("labels", {})
    crossovers = section.extra.get("crossover_s", {})
    # The crossover rows only (the issue #15 rows of the section carry a "part").
    section_rows = [r for r in section.rows if "part" not in r]
    tools = list(dict.fromkeys(r["tool"] for r in section_rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), constrained_layout=True)
    markers = "os^vD<>px*"
    palette = plt.get_cmap("tab10")
    for i, tool in enumerate(tools):
        rows = [r for r in section_rows
                if r["tool"] == tool and r.get("per_item_s") and r.get("correct")]
        if not rows:
            continue
        costs = [r["cost_s"] * 1e6 for r in rows]
        color = "black" if tool == "serial" else palette(i % 10)
        style = dict(marker=markers[i % len(markers)], label=labels.get(tool, tool),
                     linewidth=2.5 if tool == "serial" else 1.5, color=color)
        left.plot(costs, [r["per_item_s"] * 1e6 for r in rows], **style)
        right.plot(costs, [r.get("speedup", 1.0) for r in rows], **style)
        cross = crossovers.get(tool)
        if cross is not None:
            row = next(r for r in rows if r["cost_s"] == cross)
            left.plot([cross * 1e6], [row["per_item_s"] * 1e6], marker="o", markersize=14,
                      markerfacecolor="none", markeredgecolor=color, markeredgewidth=2)
            right.plot([cross * 1e6], [row["speedup"]], marker="o", markersize=14,
                       markerfacecolor="none", markeredgecolor=color, markeredgewidth=2)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("cost of one item (us, calibrated serially on this core)")
    left.set_ylabel("wall time per item (us)")
    left.set_title("Time per item (circled: where each tool starts beating serial)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    right.set_xscale("log")
    right.axhline(1, color="black", linewidth=0.8)
    right.axhline(section.extra.get("workers", 1), color="gray", linestyle="--",
                  linewidth=1)
    right.set_yscale("log")
    right.set_xlabel("cost of one item (us, calibrated serially on this core)")
    right.set_ylabel("speedup over serial (log)")
    right.set_title(f"Speedup over serial, {section.extra.get('workers', '?')} workers")
    right.grid(True, which="both", alpha=0.3)
    path = os.path.join(out_dir, "overhead.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.path.basename(path)


def mandelbrot(image: np.ndarray, out_dir: str) -> str:
    plt = _pyplot()
    step = max(1, max(image.shape) // 1600)   # a 6144-pixel image needs no more in a PNG
    image = image[::step, ::step]
    side = 8
    fig, axes = plt.subplots(figsize=(side, side * image.shape[0] / max(1, image.shape[1])),
                             constrained_layout=True)
    axes.imshow(np.log1p(image.astype(np.float64)), cmap="magma", origin="lower",
                extent=(-2.0, 1.0, -1.5, 1.5), interpolation="nearest")
    shown = f"; 1 pixel in {step} shown along each axis" if step > 1 else ""
    axes.set_title(f"allcores.kernels.mandelbrot, {image.shape[1] * step}x"
                   f"{image.shape[0] * step}, native\n(log of the escape count{shown})")
    axes.set_xlabel("Re c")
    axes.set_ylabel("Im c")
    path = os.path.join(out_dir, "mandelbrot.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.path.basename(path)


def timelines(section: Section, out_dir: str) -> list[str]:
    """One PNG per strategy, drawn from the run's recorded chunks by ``Insights.plot``
    (which raises ImportError without matplotlib, as ``_pyplot`` does)."""
    written = []
    for strategy, (insights, title) in section.artifacts.get("timelines", {}).items():
        path = os.path.join(out_dir, f"timeline_{strategy}.png")
        insights.plot(path, title=title)
        written.append(os.path.basename(path))
    return written
