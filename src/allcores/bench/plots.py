"""PNG plots of a run, drawn with matplotlib's Agg backend (no display needed).

- ``kernels_speedup.png``: per kernel and method, the speedup over pure-Python serial
  (log scale) and the parallel speedup over the same implementation's serial run, with
  the ideal line; bars only (and legend entries only) for the rows that have a figure;
- ``overhead.png``: time per item against the per-item cost for each tool (log-log),
  and the speedup over serial, with the 1x and ideal lines; a ring where a tool starts
  beating serial, hollow markers where a tool was timed on fewer items;
- ``mandelbrot.png``: the native kernel's image;
- ``timeline_<strategy>.png``: the timeline section's median run of each chunking
  strategy, one lane per worker (``allcores.Insights.plot``).

Colours come from ``allcores._palette``: one colour-blind-safe palette, one colour per
tool in every plot. A section measured on a busy machine says so on its picture.
"""

from __future__ import annotations

import os

import numpy as np

from allcores import _palette
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


# Each kernels row's tool (its colour, as in every plot) and its hatching: pure-Python
# rows hatched "///", a one-thread run of a multi-threaded tool dotted.
KERNEL_METHOD_STYLE = {
    "pure-serial": ("serial", "///"),
    "pure-mp-imap": ("mp-imap", "///"),
    "pure-allcores-process": ("allcores-process", "///"),
    "native-serial": ("serial", ""),
    "c-serial": ("c", ""),
    "native-allcores-thread": ("allcores-thread", ""),
    "native-allcores-process": ("allcores-process", ""),
    "native-futures": ("futures", ""),
    "native-joblib": ("joblib", ""),
    "numba": ("numba", ""),
    "primesieve-serial": ("primesieve", "..."),
    "primesieve-threads": ("primesieve", ""),
}
# Markers of the overhead plot's tools (colours: allcores._palette.TOOL_COLOURS).
TOOL_MARKERS = {"serial": "o", "mp-imap": "s", "mp-map": "^", "futures": "v",
                "joblib": "D", "allcores-auto": "P", "allcores-process": ">",
                "allcores-thread": "X"}
# Where a section was measured on a busy machine, its plot says so in this colour.
BUSY_TEXT_COLOUR = _palette.TOL_MUTED["wine"]


def bar_style(method: str) -> dict:
    """matplotlib bar keywords for a kernels row: the tool's colour, filled, or as
    hatching on white for a hatched variant."""
    tool, hatch = KERNEL_METHOD_STYLE.get(method, (method, ""))
    colour = _palette.tool_colour(tool)
    if hatch:   # a paler shade of the tool's colour, hatched in black
        return {"color": _palette.tint(colour), "edgecolor": "black", "hatch": hatch,
                "linewidth": 0.4}
    return {"color": colour, "edgecolor": "black", "linewidth": 0.4}


def _grouped_bars(axes, kernels: list[str], values: dict[tuple[str, str], float],
                  methods: list[str], labels: dict[str, str]) -> list[str]:
    """Bars per kernel, only for the methods with a value for that kernel, packed and
    centred on the kernel's tick; returns the methods drawn (each labelled once, so
    that the legend lists exactly the series that have data)."""
    per_group = max((sum((k, m) in values for m in methods) for k in kernels), default=1)
    width = 0.85 / max(1, per_group)
    drawn: list[str] = []
    for x, kernel in enumerate(kernels):
        present = [m for m in methods if (kernel, m) in values]
        for i, method in enumerate(present):
            axes.bar(x + (i - (len(present) - 1) / 2) * width, values[(kernel, method)],
                     width, label=None if method in drawn else labels[method],
                     **bar_style(method))
            if method not in drawn:
                drawn.append(method)
    axes.set_xticks(range(len(kernels)), kernels)
    return drawn


def kernels_speedup(section: Section, out_dir: str) -> str:
    return _save(kernels_figure(section), out_dir, "kernels_speedup.png")


def overhead(section: Section, out_dir: str) -> str:
    return _save(overhead_figure(section), out_dir, "overhead.png")


def _save(fig, out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return name


def kernels_figure(section: Section):
    """The figure of ``kernels_speedup.png`` (not saved: tests read its legends)."""
    plt = _pyplot()
    rows = [r for r in section.rows if r.get("correct") and r.get("median_s")]
    kernels = list(dict.fromkeys(r["kernel"] for r in section.rows))
    methods = list(dict.fromkeys(r["method"] for r in section.rows))
    labels = {r["method"]: r["label"] for r in section.rows}
    workers = section.extra.get("workers", 0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 10), constrained_layout=True)

    speedups = {(r["kernel"], r["method"]): r["speedup_vs_pure"] for r in rows
                if r.get("speedup_vs_pure")}
    _grouped_bars(top, kernels, speedups, methods, labels)
    top.set_yscale("log")
    top.set_ylabel("speedup over pure Python, serial (log)")
    top.set_title("Speedup over pure-Python serial (pure rows: times scaled up from a "
                  "slice of the work)")
    top.axhline(1, color="black", linewidth=0.8, label="1x: as fast as pure Python, serial")
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))

    # Speedup over the same implementation's serial run: efficiency x workers.
    parallel = {(r["kernel"], r["method"]): r["efficiency"] * r["workers"] for r in rows
                if r.get("efficiency") is not None}
    _grouped_bars(bottom, kernels, parallel, methods, labels)
    bottom.axhline(workers, color=_palette.REFERENCE, linestyle="--", linewidth=1.2,
                   label=f"ideal: {workers}x on {workers} workers")
    bottom.axhline(1, color="black", linewidth=0.8, label="1x: no faster than serial")
    bottom.set_ylabel("speedup over serial, same implementation")
    bottom.set_title(f"Parallel speedup on {workers} workers (native rows and numba: over "
                     "native serial; pure rows: over pure serial; primesieve: over its "
                     "1 thread)")
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    bottom.set_ylim(0, max([workers * 1.35, *(v * 1.1 for v in parallel.values())]))
    _busy_note(fig, section)
    return fig


def overhead_figure(section: Section):
    """The figure of ``overhead.png`` (not saved: tests read its legends)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    labels = section.extra.get("labels", {})
    crossovers = section.extra.get("crossover_s", {})
    workers = section.extra.get("workers", 1)
    # The crossover rows only (the issue #15 rows of the section carry a "part").
    section_rows = [r for r in section.rows if "part" not in r]
    tools = list(dict.fromkeys(r["tool"] for r in section_rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6.5), constrained_layout=True)
    capped_seen = crossed_seen = False
    for tool in tools:
        rows = [r for r in section_rows
                if r["tool"] == tool and r.get("per_item_s") and r.get("correct")]
        if not rows:
            continue   # a tool with no data gets no line and no legend entry
        costs = [r["cost_s"] * 1e6 for r in rows]
        colour = _palette.tool_colour(tool)
        style = dict(marker=TOOL_MARKERS.get(tool, "o"), color=colour,
                     linewidth=2.5 if tool == "serial" else 1.5, markersize=7)
        panels = [(left, [r["per_item_s"] * 1e6 for r in rows])]
        if tool != "serial":   # serial's speedup is the 1x line
            panels.append((right, [r.get("speedup", 1.0) for r in rows]))
        for axes, values in panels:
            axes.plot(costs, values, label=labels.get(tool, tool), **style)
            # Reduced-count points (timed on fewer items): hollow markers.
            capped = [(c, v) for c, v, r in zip(costs, values, rows) if r.get("capped")]
            if capped:
                capped_seen = True
                axes.plot(*zip(*capped), linestyle="none", marker=style["marker"],
                          markersize=7, markerfacecolor="white", markeredgecolor=colour,
                          markeredgewidth=1.5)
            cross = crossovers.get(tool)
            if cross is not None:
                crossed_seen = True
                value = next(v for c, v in zip(costs, values) if c == cross * 1e6)
                axes.plot([cross * 1e6], [value], marker="o", markersize=16,
                          markerfacecolor="none", markeredgecolor=colour,
                          markeredgewidth=2)
    for axes in (left, right):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("cost of one item (us, calibrated serially on this core)")
        axes.grid(True, which="both", alpha=0.3)
    left.set_ylabel("wall time per item (us)")
    left.set_title("Time per item")
    right.axhline(1, color="black", linewidth=1.5, label="1x: serial's speed")
    right.axhline(workers, color=_palette.REFERENCE, linestyle="--", linewidth=1.2,
                  label=f"ideal: {workers}x on {workers} workers")
    right.set_ylabel("speedup over serial (log)")
    right.set_title(f"Speedup over serial, {workers} workers")
    # What the markers mean, in both legends (grey: they apply to every tool).
    marks = []
    if crossed_seen:
        marks.append(Line2D([], [], linestyle="none", marker="o", markersize=14,
                            markerfacecolor="none", markeredgecolor=_palette.GREY,
                            markeredgewidth=2,
                            label="ring: from here on the tool beats serial"))
    if capped_seen:
        marks.append(Line2D([], [], linestyle="none", marker="o", markersize=7,
                            markerfacecolor="white", markeredgecolor=_palette.GREY,
                            markeredgewidth=1.5,
                            label="hollow: timed on fewer items (far slower than serial)"))
    for axes in (left, right):
        handles, _ = axes.get_legend_handles_labels()
        axes.legend(handles=handles + marks, fontsize=8, loc="best")
    _busy_note(fig, section)
    return fig


def _busy_note(fig, section: Section) -> None:
    """Say on the picture itself when its section was measured on a busy machine."""
    seen = section.extra.get("machine_load") or {}
    if seen.get("busy"):
        fig.suptitle("measured while the machine was busy: " + "; ".join(seen["reasons"]),
                     color=BUSY_TEXT_COLOUR, fontsize=9, wrap=True)


def mandelbrot(image: np.ndarray, out_dir: str) -> str:
    plt = _pyplot()
    step = max(1, max(image.shape) // 1600)   # a 6144-pixel image needs no more in a PNG
    image = image[::step, ::step]
    side = 8
    fig, axes = plt.subplots(figsize=(side, side * image.shape[0] / max(1, image.shape[1])),
                             constrained_layout=True)
    axes.imshow(np.log1p(image.astype(np.float64)), cmap=_palette.IMAGE, origin="lower",
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
    busy = (section.extra.get("machine_load") or {}).get("busy")
    for strategy, (insights, title) in section.artifacts.get("timelines", {}).items():
        path = os.path.join(out_dir, f"timeline_{strategy}.png")
        insights.plot(path, title=title + (" (measured while the machine was busy: see "
                                           "report.md)" if busy else ""))
        written.append(os.path.basename(path))
    return written
