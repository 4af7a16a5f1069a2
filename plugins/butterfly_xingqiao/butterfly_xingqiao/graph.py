"""A job's DAG as SVG, laid out here: layers by longest path, order by barycentres.

No ``dot``, no subprocess: a small layered (Sugiyama-style) layout is enough for the
graphs workflows make — fan-outs, fan-ins and chains:

1. each task's layer is one more than its deepest upstream task's;
2. inside a layer, tasks are ordered by the mean position of their neighbours in the
   previous layer, then in the next one (a few sweeps), which untangles most crossings;
3. with ``direction="auto"`` the longer side of the drawing runs top to bottom (a long
   chain is drawn downwards, a wide fan-out as columns), so it reads on a phone too.

Every text is XML-escaped; the output has no script and no external reference.
"""

from __future__ import annotations

from html import escape
from typing import Any

#: fill and stroke by task state (the legend shows them in this order)
COLOURS = {
    "waiting": ("#f1f3f5", "#adb5bd"),
    "pending": ("#fff3bf", "#f59f00"),
    "started": ("#d0ebff", "#1c7ed6"),
    "finished": ("#d3f9d8", "#2b8a3e"),
    "failed": ("#ffe3e3", "#c92a2a"),
    "canceled": ("#e9ecef", "#868e96"),
}
NODE_W, NODE_H = 150, 46
GAP_ALONG, GAP_ACROSS = 56, 14
MARGIN, LEGEND_H = 16, 30
MIN_WIDTH = 520
SWEEPS = 4


def layers_of(tasks: list[dict[str, Any]]) -> list[list[int]]:
    """Task indexes grouped by layer (longest path from a root), in a crossing-reduced order."""
    upstream = {task["task_index"]: list(task.get("upstream") or []) for task in tasks}
    downstream: dict[int, list[int]] = {index: [] for index in upstream}
    for index, parents in upstream.items():
        for parent in parents:
            downstream.setdefault(parent, []).append(index)
    depth: dict[int, int] = {}
    ready = sorted(index for index, parents in upstream.items() if not parents)
    remaining = {index: len(parents) for index, parents in upstream.items()}
    while ready:
        index = ready.pop(0)
        depth[index] = max((depth[parent] + 1 for parent in upstream[index]), default=0)
        for child in downstream.get(index, []):
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    for index in upstream:  # NOTE: a cycle cannot be stored; draw any leftover in the last layer
        depth.setdefault(index, max(depth.values(), default=-1) + 1)
    layers: list[list[int]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for index in sorted(depth):
        layers[depth[index]].append(index)
    for sweep in range(SWEEPS):
        forward = sweep % 2 == 0
        links = upstream if forward else downstream
        order = range(1, len(layers)) if forward else range(len(layers) - 2, -1, -1)
        for number in order:
            neighbours = layers[number - 1] if forward else layers[number + 1]
            layers[number] = _by_barycentre(
                layers[number], {index: rank for rank, index in enumerate(neighbours)}, links
            )
    return layers


def _by_barycentre(layer: list[int], position: dict[int, int], links: dict[int, list[int]]) -> list[int]:
    """``layer`` sorted by the mean position of each task's neighbours (unlinked ones keep their place)."""
    current = {index: rank for rank, index in enumerate(layer)}

    def centre(index: int) -> float:
        ranks = [position[other] for other in links.get(index, []) if other in position]
        return sum(ranks) / len(ranks) if ranks else float(current[index])

    return sorted(layer, key=centre)


def render_svg(tasks: list[dict[str, Any]], *, title: str = "", direction: str = "auto", fit: bool = False) -> str:
    """The SVG of a job's tasks (rows of :func:`butterfly_xingqiao.jobs.task_dict`).

    :param tasks: the tasks, with ``task_index``, ``task_label``, ``task_cmd``, ``task_status``,
        ``upstream``, ``attempts``, ``cost`` and ``error``
    :param title: a caption drawn above the legend
    :param direction: ``LR`` (left to right), ``TB`` (top to bottom) or ``auto``
    :param fit: for a page: no ``height`` (it follows the width, which the page may
        shrink to fit a phone) and a light background of its own (readable on a dark page)
    :return: a standalone SVG document
    """
    layers = layers_of(tasks)
    widest = max((len(layer) for layer in layers), default=0)
    if direction not in ("LR", "TB"):
        direction = "TB" if len(layers) >= widest else "LR"
    along_step = (NODE_W if direction == "LR" else NODE_H) + GAP_ALONG
    across_step = (NODE_H if direction == "LR" else NODE_W) + GAP_ACROSS
    across_size = widest * across_step - GAP_ACROSS if widest else 0
    position: dict[int, tuple[float, float]] = {}
    for number, layer in enumerate(layers):
        span = len(layer) * across_step - GAP_ACROSS
        start = (across_size - span) / 2
        for rank, index in enumerate(layer):
            along, across = number * along_step, start + rank * across_step
            x, y = (along, across) if direction == "LR" else (across, along)
            position[index] = (MARGIN + x, MARGIN + LEGEND_H + y)
    along_size = len(layers) * along_step - GAP_ALONG if layers else 0
    width = (along_size if direction == "LR" else across_size) + 2 * MARGIN
    height = (across_size if direction == "LR" else along_size) + 2 * MARGIN + LEGEND_H
    shift = max(0.0, (MIN_WIDTH - width) / 2)  # NOTE: room for the legend; the drawing stays centred
    width = max(width, MIN_WIDTH)
    position = {index: (x + shift, y) for index, (x, y) in position.items()}
    by_index = {task["task_index"]: task for task in tasks}
    size = f'width="{width:.0f}"' if fit else f'width="{width:.0f}" height="{height:.0f}"'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" {size} '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui,sans-serif" role="img">',
        f"<title>{escape(title or 'job graph')}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#868e96"/></marker></defs>',
        f'<rect width="{width:.0f}" height="{height:.0f}" rx="8" fill="#ffffff"/>' if fit else "",
        _legend(title),
    ]
    for task in tasks:
        for parent in task.get("upstream") or []:
            if parent in position:
                parts.append(_edge(position[parent], position[task["task_index"]], direction, by_index[parent]))
    for task in tasks:
        parts.append(_node(task, *position[task["task_index"]]))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(title: str) -> str:
    items = [f'<text x="{MARGIN}" y="{MARGIN + 4}" font-size="13" font-weight="600">{escape(title)}</text>']
    x = MARGIN
    for state, (fill, stroke) in COLOURS.items():
        items.append(
            f'<rect x="{x}" y="{MARGIN + 12}" width="12" height="12" rx="3" fill="{fill}" stroke="{stroke}"/>'
            f'<text x="{x + 16}" y="{MARGIN + 22}" font-size="11" fill="#495057">{state}</text>'
        )
        x += 22 + 7 * len(state)
    return f'<g class="legend">{"".join(items)}</g>'


def _edge(start: tuple[float, float], end: tuple[float, float], direction: str, parent: dict[str, Any]) -> str:
    (x1, y1), (x2, y2) = start, end
    if direction == "LR":
        x1, y1, x2, y2 = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        bend = (x2 - x1) / 2
        path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    else:
        x1, y1, x2, y2 = x1 + NODE_W / 2, y1 + NODE_H, x2 + NODE_W / 2, y2
        bend = (y2 - y1) / 2
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
    colour = "#495057" if parent.get("task_status") == "finished" else "#ced4da"
    return f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.4" marker-end="url(#arrow)"/>'


def _node(task: dict[str, Any], x: float, y: float) -> str:
    state = task.get("task_status", "waiting")
    fill, stroke = COLOURS.get(state, COLOURS["waiting"])
    label = str(task.get("task_label", "?"))
    short = label if len(label) <= 20 else label[:19] + "…"
    detail = state
    if task.get("attempts", 0) > 1:
        detail += f" · try {task['attempts']}"
    if task.get("cost") is not None:
        detail += f" · {task['cost']:.2f}s"
    tooltip = f"{label} {task.get('task_cmd', '')}\n{state}"
    if task.get("error"):
        tooltip += f"\n{str(task['error'])[:300]}"
    dash = ' stroke-dasharray="4 3"' if state == "waiting" else ""
    width = 2.2 if state in ("started", "failed") else 1.4
    return (
        f'<g class="task {escape(state)}" data-task="{task.get("task_index")}">'
        f"<title>{escape(tooltip)}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{width}"{dash}/>'
        f'<text x="{x + 10:.1f}" y="{y + 19:.1f}" font-size="13" font-weight="600" fill="#212529">'
        f"{escape(short)}</text>"
        f'<text x="{x + 10:.1f}" y="{y + 36:.1f}" font-size="11" fill="#495057">{escape(detail)}</text>'
        "</g>"
    )
