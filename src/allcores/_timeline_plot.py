"""Drawing an :class:`allcores.timeline.Insights` as a PNG timeline with matplotlib.

A ``matplotlib.figure.Figure`` with the Agg canvas, never pyplot: no display, no global
figure state, safe from any thread and in programs that use pyplot themselves.
"""

from __future__ import annotations

import os

# Distinct colours for neighbouring chunks (tab20), so each bar stands apart from the
# next one on its lane; the same colour marks the chunk's receipt on the caller's lane.
CHUNK_COLOURS = "tab20"
# Above this many chunks, bars get no edge: edges would paint the whole lane black.
EDGED_CHUNKS_MAX = 400
# Hatching for runs lost with their worker.
LOST_COLOUR = "tab:red"


def draw_timeline(insights, path: str, *, title: str | None = None) -> str:
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as error:
        raise ImportError(
            "Insights.plot needs matplotlib: pip install 'allcores[plot]'") from error
    if not insights.records:
        raise ValueError("no chunks were recorded: nothing to plot")

    lanes = insights.lanes()
    caller_row = len(lanes)  # the caller's lane on top, then workers in order of start
    figure = Figure(figsize=(11, 1.6 + 0.45 * (len(lanes) + 1)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = colormaps[CHUNK_COLOURS]
    edge = "black" if len(insights.records) <= EDGED_CHUNKS_MAX else "none"
    t0 = insights.start
    row_of = {lane: len(lanes) - 1 - i for i, lane in enumerate(lanes)}

    # One bar per chunk, from its start to its end on its worker; the caller's lane
    # gets a tick where each chunk's results arrived.
    by_lane: dict[str, list] = {lane: [] for lane in lanes}
    for index, record in enumerate(insights.records):
        by_lane[record.worker].append((index, record))
    for lane, entries in by_lane.items():
        axes.broken_barh([(r.started - t0, r.seconds) for _, r in entries],
                         (row_of[lane] - 0.4, 0.8),
                         facecolors=[colours(i % colours.N) for i, _ in entries],
                         edgecolors=edge, linewidth=0.3)
    # Runs lost with their worker: hatched, on the lane of the worker that died.
    if insights.lost:
        lost_style = dict(facecolor="none", edgecolor=LOST_COLOUR, hatch="xxx", linewidth=0.8)
        for lane in lanes:
            lost = [(r.started - t0, r.seconds) for r in insights.lost if r.worker == lane]
            if lost:
                axes.broken_barh(lost, (row_of[lane] - 0.4, 0.8), **lost_style)
        axes.legend(handles=[Patch(label="lost with its worker (run again)", **lost_style)],
                    loc="upper right", fontsize=8)
    axes.vlines([r.received - t0 for r in insights.records],
                caller_row - 0.35, caller_row + 0.35,
                colors=[colours(i % colours.N) for i in range(len(insights.records))],
                linewidth=1.2)

    axes.set_yticks([*(row_of[lane] for lane in lanes), caller_row],
                    [*(_short(lane) for lane in lanes), "caller: received"])
    axes.set_ylim(-0.7, caller_row + 0.7)
    axes.set_xlim(0, max(insights.wall_s, 1e-6) * 1.01)
    axes.set_xlabel("seconds since the first chunk was handed over")
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    smallest, median, largest = insights.chunk_sizes()
    subtitle = (f"{insights.chunks:,} chunks of {smallest:,}-{largest:,} items "
                f"(median {median:,}) on {insights.workers} {insights.backend} workers; "
                f"wall {insights.wall_s:.3g} s, utilisation {insights.utilisation:.0%}")
    axes.set_title(subtitle if title is None else f"{title}\n{subtitle}", fontsize=10)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
    return path


def _short(lane: str) -> str:
    """Lane labels short enough for the axis: a Dask address keeps host and port."""
    return lane if len(lane) <= 28 else "..." + lane[-25:]
