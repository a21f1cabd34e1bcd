"""DOT text of a run: one node per step, coloured by state, edges from step parents.

Pure: it takes a :class:`Picture` (a run's state, the steps replayed by the current
execution, nested workflows, and the previous run of the same workflow) and returns
Graphviz DOT source. Laying it out (SVG) is the views' job.

Node names are step paths (``iac-deploy``, ``nested/i1``), so a front end can map a
clicked SVG node (its ``<title>``) back to a step. Big runs are condensed: chains and
fan-outs of steps in the same state become one node, so a 1,000-step run stays
readable and cheap to draw.

>>> from orbits_nb.core.state import RunState, StepState
>>> state = RunState("r1", workflow="m:Deploy", status="running")
>>> state.steps["a"] = StepState("a", name="a", action="m:A", status="succeeded")
>>> "fillcolor" in to_dot(Picture(state))
True
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from orbits_nb.core.dotfold import Item, condense, fold_fanouts
from orbits_nb.core.state import RUN_TERMINAL, RunState, StepState, short_error

START = "#start"
END = "#end"
CLUSTER_PREFIX = "cluster:"


@dataclass(frozen=True)
class Style:
    fill: str
    border: str
    text: str
    label: str


#: Display state -> colours. Shared by the SVG, the HTML table and the widgets.
STYLES: dict[str, Style] = {
    "expected": Style("#f8fafc", "#cbd5e1", "#94a3b8", "expected"),
    "pending": Style("#f1f5f9", "#94a3b8", "#475569", "pending"),
    "running": Style("#dbeafe", "#2563eb", "#1e3a8a", "running"),
    "waiting": Style("#fef3c7", "#d97706", "#78350f", "waiting"),
    "retrying": Style("#ffedd5", "#ea580c", "#7c2d12", "retrying"),
    "succeeded": Style("#dcfce7", "#16a34a", "#14532d", "succeeded"),
    "replayed": Style("#ccfbf1", "#0d9488", "#134e4a", "replayed"),
    "failed": Style("#fee2e2", "#dc2626", "#7f1d1d", "failed"),
    "cancelled": Style("#e5e7eb", "#6b7280", "#374151", "cancelled"),
}
#: Border of a step whose resource has drifted since it ran.
DRIFT_COLOR = "#c2410c"
FONT = "Helvetica,Arial,sans-serif"


@dataclass
class Picture:
    """What a diagram shows: a run, what its execution replayed, nested runs, history."""

    state: RunState
    replayed: frozenset[str] = frozenset()
    #: The previous run of the same workflow: its steps not reached yet are "expected".
    previous: RunState | None = None
    #: Step key -> the picture of the nested workflow run by that step.
    children: dict[str, Picture] = field(default_factory=dict)
    #: Steps whose resource has drifted since (latest drift check not in sync).
    drifted: frozenset[str] = frozenset()


def display_status(step: StepState, replayed: Collection[str] = ()) -> str:
    """The state a step is drawn in (``replayed`` is a succeeded step from history)."""
    if step.status == "succeeded" and step.key in replayed:
        return "replayed"
    return step.status if step.status in STYLES else "pending"


def quote(text: str) -> str:
    """A DOT double-quoted string; real newlines become centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def short_action(action: str) -> str:
    return action.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


@dataclass
class DotParts:
    """DOT split the way ``graphviz.Digraph`` takes it (attributes and body lines)."""

    name: str
    graph_attr: dict[str, str]
    node_attr: dict[str, str]
    edge_attr: dict[str, str]
    body: list[str]
    #: Condensed node name -> the step paths it stands for.
    groups: dict[str, list[str]] = field(default_factory=dict)

    def source(self) -> str:
        head = [f"digraph {quote(self.name)} {{"]
        for kind, attrs in (("graph", self.graph_attr), ("node", self.node_attr),
                            ("edge", self.edge_attr)):
            if attrs:
                head.append(f"\t{kind} [{_attrs(attrs)}]")
        return "\n".join([*head, *self.body, "}"]) + "\n"


def _attrs(attrs: dict[str, str]) -> str:
    return ", ".join(f"{k}={quote(v)}" for k, v in attrs.items())


def to_dot(picture: Picture, *, title: str | None = None, rankdir: str = "TB",
           max_nodes: int | None = 150) -> str:
    """DOT source of ``picture``; runs with more than ``max_nodes`` steps are condensed."""
    return dot_parts(picture, title=title, rankdir=rankdir, max_nodes=max_nodes).source()


def dot_parts(picture: Picture, *, title: str | None = None, rankdir: str = "TB",
              max_nodes: int | None = 150) -> DotParts:
    """Like :func:`to_dot`, as parts for ``graphviz.Digraph(**vars(parts))``."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir={rankdir!r}: use 'TB', 'LR', 'BT' or 'RL'")
    if max_nodes is not None and max_nodes < 1:
        raise ValueError(f"max_nodes={max_nodes!r} must be at least 1 (or None)")
    graph = {"rankdir": rankdir, "bgcolor": "transparent", "nodesep": "0.25",
             "ranksep": "0.3", "pad": "0.1", "fontname": FONT, "fontsize": "11"}
    if title:
        graph.update(label=title, labelloc="t", labeljust="l")
    node = {"shape": "box", "style": "rounded,filled", "fontname": FONT, "fontsize": "10",
            "margin": "0.14,0.05", "height": "0.3", "penwidth": "1.2"}
    edge = {"color": "#94a3b8", "arrowsize": "0.6", "penwidth": "1.1", "fontname": FONT}
    builder = _Builder(max_nodes)
    body = [f"\t{quote(START)} [label=\"\", shape=circle, style=filled, "
            'fillcolor="#334155", color="#334155", width=0.14, height=0.14, '
            'tooltip="start"]']
    entries, exits, leaves = builder.run(picture, "", body, 1)
    body += [f"\t{quote(START)} -> {quote(n)}" for n in entries]
    state = picture.state
    if state.status in RUN_TERMINAL:
        style = STYLES.get(state.status, STYLES["pending"])
        body.append(f"\t{quote(END)} [label=\"\", shape=doublecircle, style=filled, "
                    f"fillcolor={quote(style.border)}, color={quote(style.border)}, "
                    f"width=0.12, height=0.12, tooltip={quote('run ' + state.status)}]")
        body += [f"\t{quote(n)} -> {quote(END)}" for n in leaves]
    elif not exits and not entries:
        body.append('\t"#empty" [label="no steps yet", shape=plaintext, style="", '
                    'fontcolor="#64748b"]')
        body.append(f'\t{quote(START)} -> "#empty" [style=dashed]')
    body += builder.edges
    return DotParts(state.run_id, graph, node, edge, body, builder.groups)


class _Builder:
    def __init__(self, max_nodes: int | None) -> None:
        self.max_nodes = max_nodes
        self.edges: list[str] = []
        self.groups: dict[str, list[str]] = {}
        self._seen: set[tuple[str, str]] = set()

    def run(self, picture: Picture, prefix: str, out: list[str],
            depth: int) -> tuple[list[str], list[str], list[str]]:
        """Emit the nodes of one run; return its entry nodes, exits and real leaves."""
        items = fold_fanouts(_items(picture, prefix))
        if self.max_nodes is not None and len(items) > self.max_nodes:
            items = condense(items)
        rep = {member.key: item for item in items for member in (item.members or [item])}
        successors: set[str] = set()
        entries_of: dict[str, list[str]] = {}
        exits_of: dict[str, list[str]] = {}
        pad = "\t" * depth
        for item in items:
            if item.child is not None and not item.ghost:
                entries_of[item.key], exits_of[item.key] = self._cluster(item, out, depth)
            else:
                out.append(pad + _node_line(item))
                entries_of[item.key] = exits_of[item.key] = [item.name]
                if item.members:
                    self.groups[item.name] = [m.path for m in item.members]
        roots: list[str] = []
        for item in items:
            parents = []
            for key in item.parents:
                parent = rep.get(key)
                if parent is not None and parent is not item and parent not in parents:
                    parents.append(parent)
            if not parents:
                roots += entries_of[item.key]
            for parent in parents:
                successors.add(parent.key)
                self._link(parent, item, exits_of[parent.key], entries_of[item.key])
        exits = [n for it in items if it.key not in successors for n in exits_of[it.key]]
        leaves = [n for it in items if it.key not in successors and not it.ghost
                  for n in exits_of[it.key]]
        return roots, exits, leaves

    def _cluster(self, item: Item, out: list[str], depth: int) -> tuple[list[str], list[str]]:
        assert item.child is not None
        pad = "\t" * depth
        style = STYLES[item.status]
        label = f"{item.key} · {short_action(item.step.action)} · {style.label}"
        out.append(f"{pad}subgraph {quote(CLUSTER_PREFIX + item.path)} {{")
        out.append(f"{pad}\tlabel={quote(label)}; style=\"rounded,filled\"; "
                   f"fillcolor=\"#f8fafc\"; color={quote(style.border)}; "
                   f"fontcolor={quote(style.text)}; fontsize=10; penwidth=1.4; "
                   f"tooltip={quote(_tooltip(item))}; class={quote('step st-' + item.status)}")
        entries, exits, _ = self.run(item.child, item.path + "/", out, depth + 1)
        if not entries:
            placeholder = f"#empty:{item.path}"
            out.append(f"{pad}\t{quote(placeholder)} [label=\"starting…\", shape=plaintext, "
                       'style="", fontcolor="#64748b"]')
            entries = exits = [placeholder]
        out.append(pad + "}")
        return entries, exits

    def _link(self, parent: Item, child: Item, tails: list[str], heads: list[str]) -> None:
        attrs = ""
        if parent.status == "failed":
            attrs = ' [color="#dc2626", style=dashed, fontcolor="#dc2626", ' \
                    'label=" on failure", fontsize=9]'
        elif child.ghost or parent.ghost:
            attrs = ' [color="#cbd5e1", style=dashed]'
        for tail in tails:
            for head in heads:
                if (tail, head) not in self._seen:
                    self._seen.add((tail, head))
                    self.edges.append(f"\t{quote(tail)} -> {quote(head)}{attrs}")


def _items(picture: Picture, prefix: str) -> list[Item]:
    state = picture.state
    parents = _parents(state)
    items = [Item(step.key, prefix + step.key, display_status(step, picture.replayed),
                   parents[step.key], step, child=picture.children.get(step.key),
                   drifted=step.key in picture.drifted)
             for step in state.ordered_steps()]
    previous = picture.previous
    if previous is not None and state.status != "succeeded":
        start = len(items)
        before = _parents(previous)
        for step in previous.ordered_steps():
            if step.key not in state.steps:
                ghost = StepState(step.key, name=step.name, pos=start + step.pos,
                                  action=step.action, parents=before[step.key])
                items.append(Item(step.key, prefix + step.key, "expected",
                                   before[step.key], ghost, ghost=True))
    return items


def _parents(state: RunState) -> dict[str, list[str]]:
    """Each step's drawn parents.

    The engine gives the completed steps to the first step that starts after them;
    steps started alongside it (``asyncio.gather``) record none, and share its parents.
    """
    out: dict[str, list[str]] = {}
    last: list[str] = []
    for step in state.ordered_steps():
        last = list(step.parents) if step.parents or not step.concurrent else last
        out[step.key] = last
    return out


def _node_line(item: Item) -> str:
    style = STYLES[item.status]
    step = item.step
    if item.label:
        label = item.label
    elif item.members:
        first, last = item.members[0].key, item.members[-1].key
        label = f"{len(item.members)} steps {style.label}\n{first} … {last}"
    else:
        label = f"{item.key}\n{short_action(step.action)} · {_detail(item)}"
    attrs = {"label": label, "fillcolor": style.fill, "color": style.border,
             "fontcolor": style.text, "tooltip": _tooltip(item),
             "class": f"step st-{item.status}"}
    if item.ghost:
        attrs["style"] = "rounded,dashed,filled"
    if item.status in ("running", "waiting", "retrying", "failed"):
        attrs["penwidth"] = "2"
    if item.drifted:
        attrs.update(label=label if item.label else label + "\ndrifted since",
                     color=DRIFT_COLOR, penwidth="2.5",
                     style="rounded,filled,bold", peripheries="2",
                     tooltip=attrs["tooltip"] + "\nits resource has drifted since "
                     "(orbits_nb.drift() for the diff)",
                     **{"class": f"step st-{item.status} drifted"})
    return f"{quote(item.name)} [{_attrs(attrs)}]"


def _detail(item: Item) -> str:
    step = item.step
    if item.status in ("succeeded", "failed", "cancelled") and step.finished_at:
        detail = seconds(step.duration)
        return detail + (f" · {step.attempts} tries" if step.attempts > 1 else "")
    if item.status in ("running", "retrying") and step.attempts > 1:
        return f"{item.status} · try {step.attempts}"
    if item.status == "waiting" and short_action(step.action) == "Approval":
        return "awaiting approval"
    return STYLES[item.status].label


def _tooltip(item: Item) -> str:
    if item.members:
        names = ", ".join(m.key for m in item.members[:12])
        more = f" and {len(item.members) - 12} more" if len(item.members) > 12 else ""
        head = (item.label.split("\n", 1)[0] if item.label
                else f"{len(item.members)} steps {item.status}")
        return f"{head}: {names}{more}"
    step = item.step
    lines = [f"{item.key} ({short_action(step.action)})", STYLES[item.status].label]
    if item.ghost:
        lines[1] = "expected: recorded in the previous run, not reached yet"
    if step.finished_at and step.duration is not None:
        lines[1] += f" in {seconds(step.duration)}"
    if step.attempts > 1:
        lines[1] += f", {step.attempts} attempts"
    if step.error:
        lines.append(short_error(step.error)[:300])
    return "\n".join(lines)
