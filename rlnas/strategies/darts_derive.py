"""From DARTS's edge weights back to the cell space's tokens: the derived cell, the next-best ones,
samples for the policy charts, and the decisions DARTS does not search.

DARTS keeps, per node, the two strongest incoming edges (an edge's strength is its largest operation
weight; the paper excludes a ``none`` operation, which this space does not have) and on each its
strongest operation. Here a node's two inputs are slots with their own allowed sources and
operations (``node<b>_in0``/``op0``, ``node<b>_in1``/``op1``), so a node's choice is the pair of
(source, op) per slot with the largest ``log w[s0, op0] + log w[s1, op1]``, the two sources distinct
when the space allows it: with the standard space that is exactly DARTS's top-2 edges with their
argmax operations. The same score ranks whole cells (a sum over nodes), which gives the next-best
derivations that :meth:`DartsStrategy.candidates` also scores.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlnas.models.cell import DEFAULTS
from rlnas.policy.darts_cell import Edge
from rlnas.policy.supernet.base import fixed_values as training_only
from rlnas.space import SearchSpace

Option = tuple[float, tuple[int, int, int, int]]
"""A node's choice: (score, (in0, in1, op0, op1) tokens)."""


def fixed_values(space: SearchSpace) -> dict[str, Any]:
    """The value a derived cell gets for each decision DARTS does not search.

    ``filters`` and ``num_cells``: the space's largest (DARTS searches a small network and retrains a
    larger one); ``lr``: the value nearest 1e-3 (log scale); ``dropout``: off (False or 0) where the
    space allows it; ``reductions``: the child's default 1 where allowed. Anything else: the first value.
    """
    fixed: dict[str, Any] = training_only(space)  # lr and dropout: the supernets' own rule
    for d in space.decisions:
        if d.name.startswith("node") or d.name in fixed:
            continue
        values = list(d.values)
        if d.name in ("filters", "num_cells"):
            fixed[d.name] = max(values)
        elif d.name == "reductions":
            fixed[d.name] = DEFAULTS["reductions"] if DEFAULTS["reductions"] in values else values[0]
        else:
            fixed[d.name] = values[0]
    return fixed


def node_options(
    space: SearchSpace, weights: np.ndarray, edges: Sequence[Edge], ops: Sequence[str], b: int
) -> list[Option]:
    """Every choice of node ``b``, best first (distinct sources unless the space allows none)."""
    log_w = np.log(np.maximum(weights, 1e-30))
    slots = [[space[f"node{b}_{part}{k}"] for part in ("in", "op")] for k in (0, 1)]
    scored: list[tuple[float, tuple[int, int, int, int], bool]] = []
    for t0, s0 in enumerate(slots[0][0].values):
        for t1, s1 in enumerate(slots[1][0].values):
            e0, e1 = edges.index(Edge(b, str(s0))), edges.index(Edge(b, str(s1)))
            for o0, op0 in enumerate(slots[0][1].values):
                for o1, op1 in enumerate(slots[1][1].values):
                    score = log_w[e0, ops.index(str(op0))] + log_w[e1, ops.index(str(op1))]
                    scored.append((float(score), (t0, t1, o0, o1), s0 != s1))
    if any(distinct for *_, distinct in scored):
        scored = [row for row in scored if row[2]]
    scored.sort(key=lambda row: -row[0])  # stable: ties keep the space's order
    seen: set[tuple] = set()
    options = []
    for score, (t0, t1, o0, o1), _ in scored:
        # the same two (source, op) branches in the other slots is the same cell: keep the first
        key = tuple(
            sorted(
                [
                    (str(slots[0][0].values[t0]), str(slots[0][1].values[o0])),
                    (str(slots[1][0].values[t1]), str(slots[1][1].values[o1])),
                ]
            )
        )
        if key not in seen:
            seen.add(key)
            options.append((score, (t0, t1, o0, o1)))
    return options


def ranked(
    space: SearchSpace, weights: np.ndarray, edges: Sequence[Edge], ops: Sequence[str], k: int
) -> list[list[int]]:
    """The ``k`` best cells by total score (best first), as full token rows with :func:`fixed_values`."""
    nodes = sorted({e.node for e in edges})
    options = [node_options(space, weights, edges, ops, b) for b in nodes]
    start = (0,) * len(options)
    heap = [(-_total(options, start), start)]
    seen = {start}
    rows: list[list[int]] = []
    while heap and len(rows) < k:
        _, picks = heapq.heappop(heap)
        rows.append(_tokens(space, [options[i][p][1] for i, p in enumerate(picks)]))
        for i in range(len(picks)):
            nxt = (*picks[:i], picks[i] + 1, *picks[i + 1 :])
            if nxt[i] < len(options[i]) and nxt not in seen:
                seen.add(nxt)
                heapq.heappush(heap, (-_total(options, nxt), nxt))
    return rows


def _total(options: list[list[Option]], picks: tuple[int, ...]) -> float:
    return sum(options[i][p][0] for i, p in enumerate(picks))


def _tokens(space: SearchSpace, per_node: Sequence[tuple[int, int, int, int]]) -> list[int]:
    chosen = {
        f"node{b}_{part}": t
        for b, node in enumerate(per_node)
        for part, t in zip(("in0", "in1", "op0", "op1"), node, strict=True)
    }
    fixed = fixed_values(space)
    return [chosen[d.name] if d.name in chosen else d.index(fixed[d.name]) for d in space.decisions]


def sample(
    space: SearchSpace,
    weights: np.ndarray,
    edges: Sequence[Edge],
    ops: Sequence[str],
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` rows drawn from the edge weights, each slot on its own: a source with probability
    proportional to its strength (its largest weight among the slot's operations), then an operation
    in proportion to that edge's weights; the decisions DARTS does not search at their fixed values."""
    fixed = fixed_values(space)
    rows = np.zeros((n, len(space)), np.int64)
    for j, d in enumerate(space.decisions):
        if not d.name.startswith("node"):
            rows[:, j] = d.index(fixed[d.name])
    col = {name: j for j, name in enumerate(space.names)}
    for b in sorted({e.node for e in edges}):
        for k in (0, 1):
            sources, op_names = space[f"node{b}_in{k}"].values, space[f"node{b}_op{k}"].values
            table = np.array(
                [
                    [weights[edges.index(Edge(b, str(s))), ops.index(str(o))] for o in op_names]
                    for s in sources
                ]
            )
            strength = table.max(axis=1)
            src = rng.choice(len(sources), size=n, p=strength / strength.sum())
            rows[:, col[f"node{b}_in{k}"]] = src
            for i, s in enumerate(src):
                rows[i, col[f"node{b}_op{k}"]] = rng.choice(len(op_names), p=table[s] / table[s].sum())
    return rows
