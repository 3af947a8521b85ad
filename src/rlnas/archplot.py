"""A picture of an architecture, drawn from what its space says it is
(``SearchSpace.arch_diagram``): a cell space's cells as graphs (nodes in layers by node order,
inputs first; one arrow per op, coloured and labelled by the op), a chain as a block diagram
(stem, the chosen op of each block, head, left to right, wrapping as a snake). Matplotlib's
patches and annotations on the Agg canvas; PNG written atomically. ``rlnas search`` writes the
best arch's picture as ``RUN/arch.png`` (and ``plots/arch-<search name>.png``)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import RlnasError
from .files import atomic_write
from .plots import _new_figure

# op name -> colour: the same op is the same colour in every picture (other names: by order)
_OP_COLOURS = {
    "skip_connect": "#7f7f7f", "skip": "#7f7f7f", "id": "#7f7f7f",
    "nor_conv_1x1": "#2ca02c", "nor_conv_3x3": "#d62728", "avg_pool_3x3": "#1f77b4",
    "max_pool_3x3": "#17becf", "sep_conv_3x3": "#d62728", "sep_conv_5x5": "#9467bd",
    "dil_conv_3x3": "#ff7f0e", "dil_conv_5x5": "#8c564b",
}
_OTHER_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39")
_NODE_RADIUS = 0.26  # data units (the axes keep an equal aspect, so arcs are true arcs)
CHAIN_ROW = 8        # boxes per row of a chain's diagram


def _colours(names: Sequence[str]) -> Dict[str, str]:
    others = iter(_OTHER_COLOURS * (1 + len(names) // len(_OTHER_COLOURS)))
    return {n: _OP_COLOURS.get(n) or next(others) for n in sorted(set(names)) if n}


def _cell_layout(nodes: Sequence[str], inputs: int) -> Dict[int, Tuple[float, float]]:
    """Nodes in layers by node order: the ``inputs`` input nodes share layer 0, spread
    vertically; every later node is a layer of its own, left to right."""
    pos = {}
    for i in range(len(nodes)):
        if i < inputs:
            pos[i] = (0.0, (inputs - 1) * 0.9 - i * 1.8)
        else:
            pos[i] = (1.8 * (i - inputs + 1), 0.0)
    return pos


def _bend(a: int, b: int, op: str, pos) -> float:
    """matplotlib's arc3 ``rad`` of an edge: 0 (straight) where no other node lies near the
    segment, else bent, wider for longer spans: edges of ops alternate sides by source node,
    the output's concatenation arrows (no op) all pass below."""
    (x0, y0), (x1, y1) = pos[a], pos[b]
    seg = np.array([x1 - x0, y1 - y0])
    for n, (x, y) in pos.items():
        if n in (a, b):
            continue
        t = float(np.clip(np.dot([x - x0, y - y0], seg) / float(seg @ seg), 0, 1))
        if np.hypot(x0 + t * seg[0] - x, y0 + t * seg[1] - y) < 1.4 * _NODE_RADIUS:
            break
    else:
        return 0.0
    size = 0.22 + 0.05 * abs(b - a)  # rad > 0 bends a left-to-right edge downwards
    if not op or y0 < y1 or (y0 == y1 and a % 2 == 0):
        return size
    return -size  # from above its target (or every other source): upwards


def _on_curve(p0, p1, rad: float, t: float) -> Tuple[float, float]:
    """The point at ``t`` of matplotlib's arc3 curve from ``p0`` to ``p1`` (a quadratic Bezier
    whose control point is the midpoint moved by ``rad`` x the edge, perpendicular), in data
    units: the axes keep an equal aspect, so display and data agree up to scale."""
    (x0, y0), (x1, y1) = p0, p1
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    u = 1 - t
    return u * u * x0 + 2 * u * t * cx + t * t * x1, u * u * y0 + 2 * u * t * cy + t * t * y1


# where along an edge its label may sit, tried in this order until it overlaps nothing drawn
_LABEL_AT = (0.5, 0.4, 0.6, 0.32, 0.68, 0.25, 0.75)


def _draw_cell(ax, cell: Dict, colours: Dict[str, str]) -> List:
    """The cell's nodes and arrows on ``ax``; returns the edge labels to place
    (``_place_labels``) once the figure's layout is final: (ax, text, colour, p0, p1, rad)."""
    from matplotlib.patches import Circle, FancyArrowPatch
    nodes, edges = cell["nodes"], [(int(a), int(b), str(op)) for a, b, op in cell["edges"]]
    inputs = int(cell.get("inputs", 1))
    pos = _cell_layout(nodes, inputs)
    out = len(nodes) - 1
    labels = []
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    for a, b, op in edges:
        rad = _bend(a, b, op, pos)
        for t in (0.25, 0.5, 0.75):  # the axes hold every arc
            x, y = _on_curve(pos[a], pos[b], rad, t)
            xs.append(x)
            ys.append(y)
        colour = colours.get(op, "#9a9a9a")
        ax.add_patch(FancyArrowPatch(
            pos[a], pos[b], connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
            mutation_scale=14, lw=2.0 if op else 1.2, color=colour,
            linestyle="-" if op else (0, (4, 3)), shrinkA=15, shrinkB=15, zorder=2))
        if op:
            labels.append((ax, op, colour, pos[a], pos[b], rad))
    for i, name in enumerate(nodes):
        x, y = pos[i]
        ax.add_patch(Circle((x, y), _NODE_RADIUS, fc="#fde9b6" if i == out or i < inputs
                            else "#e8eef7", ec="black", lw=1.2, zorder=3))
        inside, _, below = name.partition("\n")  # a second line goes under the node
        ax.text(x, y, inside, ha="center", va="center", fontsize=9, zorder=5)
        if below:
            ax.text(x, y - _NODE_RADIUS - 0.08, below, ha="center", va="top", fontsize=8,
                    color="#444444", zorder=5)
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(cell.get("title", ""), fontsize=10)
    return labels


def _place_labels(fig, labels) -> None:
    """Each edge label at the first point along its edge (``_LABEL_AT``) where its box overlaps
    no label placed before it nor a node (else at the edge's middle)."""
    from matplotlib.patches import Circle
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:  # the equal aspect is applied when drawn: apply it before measuring
        ax.apply_aspect()
    taken = [c.get_window_extent(renderer) for ax in fig.axes for c in ax.patches
             if isinstance(c, Circle)]
    for ax, op, colour, p0, p1, rad in labels:
        text = ax.text(*_on_curve(p0, p1, rad, _LABEL_AT[0]), op, ha="center", va="center",
                       fontsize=8, zorder=4, bbox=dict(boxstyle="round,pad=0.25", fc="white",
                                                       ec=colour, lw=1.2))
        for t in _LABEL_AT:
            text.set_position(_on_curve(p0, p1, rad, t))
            box = text.get_window_extent(renderer).expanded(1.15, 1.6)
            if not any(box.overlaps(other) for other in taken):
                break
        else:  # nowhere free: the middle
            text.set_position(_on_curve(p0, p1, rad, _LABEL_AT[0]))
            box = text.get_window_extent(renderer).expanded(1.15, 1.6)
        taken.append(box)


def _per_row(boxes: int) -> int:
    """Boxes per row of a chain: at most CHAIN_ROW, the rows as even as they can be."""
    return -(-boxes // -(-boxes // CHAIN_ROW))


def _draw_chain(ax, diagram: Dict, colours: Dict[str, str]) -> Tuple[float, float]:
    """Boxes left to right, ``_per_row`` a row, every other row right to left (a snake), an
    arrow between consecutive boxes; returns the drawing's (width, height) in data units."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    boxes = ([(diagram["stem"], None, "#fde9b6", False)]
             + [(f"{b['op']}\n{b['detail']}", str(i + 1), colours.get(b["op"], "#cccccc"),
                 bool(b.get("skip"))) for i, b in enumerate(diagram["blocks"])]
             + [(diagram["head"], None, "#fde9b6", False)])
    w, h, gap_x, gap_y = 1.5, 0.9, 0.6, 0.9
    per_row = _per_row(len(boxes))
    rows = -(-len(boxes) // per_row)
    centres = []
    for k in range(len(boxes)):
        row, col = divmod(k, per_row)
        if row % 2:
            col = per_row - 1 - col
        centres.append((col * (w + gap_x) + w / 2, -row * (h + gap_y) - h / 2))
    for k, ((text, index, colour, is_skip), (cx, cy)) in enumerate(zip(boxes, centres)):
        ax.add_patch(FancyBboxPatch(
            (cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
            fc="white" if is_skip else to_rgba(colour, 1.0 if index is None else 0.35),
            ec="#555555" if is_skip else "black", lw=1.2,
            linestyle=(0, (4, 3)) if is_skip else "-", zorder=2))
        ax.text(cx, cy, text, ha="center", va="center", fontsize=8, zorder=4,
                color="#555555" if is_skip else "black")
        if index is not None:
            ax.text(cx - w / 2 + 0.08, cy + h / 2 - 0.08, index, ha="left", va="top",
                    fontsize=6, color="#333333", zorder=4)
        if k:
            (px, py), (qx, qy) = centres[k - 1], (cx, cy)
            if py == qy:  # same row: side to side
                d = 1 if qx > px else -1
                a, b = (px + d * w / 2, py), (qx - d * w / 2, qy)
            else:         # the next row: straight down
                a, b = (px, py - h / 2), (qx, qy + h / 2)
            ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, lw=1.2,
                                         color="black", shrinkA=1, shrinkB=1, zorder=1))
    width, height = per_row * (w + gap_x) - gap_x, rows * (h + gap_y) - gap_y
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-height - 0.2, 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    return width, height


def _wrap(title: str, width_in: float) -> str:
    """``title`` wrapped to a figure ``width_in`` inches wide (8-point text)."""
    return "\n".join(textwrap.fill(line, int(width_in * 14)) for line in title.splitlines())


def arch_figure(diagram: Dict, title: str):
    """The matplotlib Figure of ``diagram`` (``SearchSpace.arch_diagram``) under ``title``."""
    if not isinstance(diagram, dict) or diagram.get("kind") not in ("cells", "chain"):
        raise RlnasError(f"not an architecture diagram: {diagram!r:.80}")
    if diagram["kind"] == "cells":
        cells = diagram["cells"]
        names = [op for c in cells for _, _, op in c["edges"]]
        colours = _colours(names)
        fig = _new_figure((1.0, 1.0))
        axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
        labels = [lab for ax, cell in zip(axes, cells) for lab in _draw_cell(ax, cell, colours)]
        width = max(np.ptp(ax.get_xlim()) for ax in axes)
        height = sum(np.ptp(ax.get_ylim()) + 0.5 for ax in axes)  # + the cell's title
        size = max(7.5, 0.8 * width)
        wrapped = _wrap(title, size)
        fig.set_size_inches(size, 0.8 * height + 0.17 * (wrapped.count("\n") + 1) + 0.2)
    else:
        colours = _colours([b["op"] for b in diagram["blocks"]])
        size = max(6.0, 1.3 * _per_row(len(diagram["blocks"]) + 2) + 0.5)
        wrapped = _wrap(title, size)
        fig = _new_figure((size, 1.0))
        ax = fig.add_subplot(1, 1, 1)
        width, height = _draw_chain(ax, diagram, colours)
        fig.set_size_inches(size, (size - 0.3) * (height + 0.4) / (width + 0.4)
                            + 0.5 + 0.18 * (wrapped.count("\n") + 1))
    fig.suptitle(wrapped, fontsize=8)
    fig.tight_layout()
    if diagram["kind"] == "cells":  # where labels fit depends on the final layout
        _place_labels(fig, labels)
    return fig


def arch_plot(diagram: Dict, path, title: str) -> Path:
    """``diagram`` drawn under ``title`` as a PNG at ``path`` (written atomically)."""
    fig = arch_figure(diagram, title)
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")


def arch_title(space, row: Dict, scorer: str, what: str) -> str:
    """The title of a found arch's picture: what it is, its arch string, score and costs."""
    arch = row["arch"]
    shown = arch if len(arch) <= 240 else arch[:237] + "..."
    return (f"{space.name}: {what}\n{shown}\n{scorer} {row[scorer]:.4g}, "
            f"{row['params_m']:.3f} M params, {row['flops_m']:.2f} M FLOPs")


def write_arch_picture(space, arch, path, title: str) -> Optional[Path]:
    """The picture of ``arch`` at ``path``, or None where its space draws none."""
    diagram = space.arch_diagram(arch)
    if diagram is None:
        return None
    return arch_plot(diagram, path, title)

