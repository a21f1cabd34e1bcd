"""Folding a big run's diagram: wide fan-outs, and same-state steps of big runs.

Part of :mod:`orbits_nb.core.dot` (pure): the items are the diagram's would-be nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orbits_nb.core.state import StepState

if TYPE_CHECKING:
    from orbits_nb.core.dot import Picture

GROUP_PREFIX = "#group:"

# States that may be folded into one node when a run is condensed.
_FOLDABLE = frozenset({"expected", "pending", "succeeded", "replayed", "cancelled"})
#: Wider fan-outs than this (steps started together after the same parents) are drawn
#: as one node with counts by state, however big the run: a rank of 200 boxes would
#: shrink the diagram to a thin strip.
FAN_MAX = 12
#: A folded fan-out is drawn in its most telling state.
_WORST = ("failed", "running", "retrying", "waiting", "cancelled", "pending", "expected",
          "succeeded", "replayed")

@dataclass(eq=False)
class Item:
    key: str
    path: str
    status: str
    parents: list[str]
    step: StepState
    ghost: bool = False
    child: Picture | None = None
    members: list[Item] = field(default_factory=list)
    #: A fan-out folded into one node (kept apart from chains, to keep the shape).
    fan: bool = False
    #: The step's resource drifted since it ran.
    drifted: bool = False
    #: The node's label when it is not the usual one (a folded fan-out's counts).
    label: str = ""

    @property
    def name(self) -> str:
        return GROUP_PREFIX + self.path if self.members else self.path


def fold_fanouts(items: list[Item], widest: int = FAN_MAX) -> list[Item]:
    """Fold each fan-out wider than ``widest`` into one node: ``200 x Deploy (180
    succeeded, 20 failed)``, in its most telling state (its members in ``groups``)."""
    by_parents: dict[tuple[str, ...], list[Item]] = {}
    for item in items:
        if item.child is None:
            by_parents.setdefault(tuple(item.parents), []).append(item)
    out: list[Item] = []
    folded: dict[int, Item] = {}
    for members in by_parents.values():
        if len(members) > widest:
            group = _fan_node(members)
            for member in members:
                folded[id(member)] = group
    for item in items:
        fan = folded.get(id(item))
        if fan is None:
            out.append(item)
        elif not any(it is fan for it in out):
            out.append(fan)
    return out


def _fan_node(members: list[Item]) -> Item:
    from orbits_nb.core.dot import short_action

    counts: dict[str, int] = {}
    for member in members:
        counts[member.status] = counts.get(member.status, 0) + 1
    status = next(s for s in _WORST if counts.get(s))
    actions = {short_action(m.step.action) for m in members}
    name = actions.pop() if len(actions) == 1 else "steps"
    tally = ", ".join(f"{n} {k}" for k, n in
                      sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    drifted = sum(m.drifted for m in members)
    label = f"{len(members)} x {name} ({tally})\n{members[0].key} … {members[-1].key}"
    if drifted:
        label += f"\n{drifted} drifted since"
    first = members[0]
    group = Item(first.key, first.path, status, first.parents, first.step,
                  ghost=all(m.ghost for m in members), fan=True, drifted=bool(drifted),
                  label=label)
    group.members = list(members)
    return group


def condense(items: list[Item]) -> list[Item]:
    """Fold fan-outs (same parents, same state) and chains of same-state steps."""
    groups: dict[tuple[tuple[str, ...], str], Item] = {}
    out: list[Item] = []
    for item in items:
        if item.status not in _FOLDABLE or item.child is not None or item.drifted:
            out.append(item)
            continue
        key = (tuple(item.parents), item.status)
        group = groups.get(key)
        if group is None:
            groups[key] = item
            out.append(item)
        else:
            _absorb(group, item)
            group.fan = True
    return _chains(out)


def _absorb(group: Item, item: Item) -> None:
    if not group.members:
        group.members.append(Item(group.key, group.path, group.status, group.parents,
                                   group.step, group.ghost))
    group.members.append(item)


def _chains(items: list[Item]) -> list[Item]:
    rep = {m.key: it for it in items for m in (it.members or [it])}
    children: dict[str, list[Item]] = {}
    for item in items:
        for parent in {rep[k].key for k in item.parents if k in rep}:
            children.setdefault(parent, []).append(item)
    out: list[Item] = []
    for item in items:
        parents = {rep[k].key for k in item.parents if k in rep}
        head = rep.get(next(iter(parents))) if len(parents) == 1 else None
        if (head is not None and any(h is head for h in out) and item.status in _FOLDABLE
                and item.child is None and head.status == item.status
                and head.child is None and not head.fan and not item.fan
                and len(children.get(head.key, [])) == 1):
            for member in item.members or [item]:
                _absorb(head, member)
            for member in item.members or [item]:
                rep[member.key] = head
            children[head.key] = children.get(item.key, [])
            continue
        out.append(item)
    return out
