"""Controller speed: eager vs compiled (tf.function) sampling and REINFORCE update, and when tracing pays.

What it measures
    The controller ``rlnas search`` builds (default space, 2 x 35 LSTM, tanh 2.5), once with
    ``compiled=False`` and once with ``compiled=True``. For each: the first ``sample`` and ``update`` at
    batch 8 (for the compiled one, the trace and graph optimisation, which happen on the first call),
    then the median of ``--repeats`` calls of each at batch 8 and 2 (2: a batch cut short by the budget;
    the compiled functions have a ``None`` batch dimension, so it must not retrace). Then what a
    tabular-bench run of N updates costs (build + first calls + N x (sample + update) at batch 8):
    eager, compiled with a fresh controller per run (one trace per run), and compiled reusing one
    controller through ``Controller.reset(seed)`` (one trace for all runs).

Why
    Eagerly, a REINFORCE update over the unrolled LSTM costs a quarter of a second in Python op
    dispatch: noise next to a child's training, but most of the time of a lookup-table benchmark,
    where 20 seeds x 25-100 updates evaluate children in microseconds.

How to read it
    ``trace`` is the one-off cost of the compiled controller's first calls above its steady cost.
    ``break-even`` = trace / (eager - compiled) per iteration (sample + update at batch 8): runs with
    more updates than this are faster compiled. ``max |eager - compiled|`` checks that both modes give
    the same weights and Adam state after the same updates (float tolerance, not bit-identical: the
    graph optimiser may fuse ops). Numbers are from a shared 2-core machine; compare ratios.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import emit, parser, quiet, table

BATCHES = (8, 2)
RUN_UPDATES = (12, 25, 100)


def seconds(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def make(compiled: bool, seed: int = 0) -> Any:
    from rlnas.settings import ReinforceSettings
    from rlnas.space import default_space
    from rlnas.strategies.reinforce import make_controller

    return make_controller(ReinforceSettings(), default_space(), seed=seed, compiled=compiled)


def one_update(controller: Any, baseline: Any, n: int) -> Callable[[], Any]:
    """A closure that samples n architectures and makes one update from made-up rewards."""
    from rlnas.policy.gradient import update

    def step() -> Any:
        s = controller.sample(n)
        mask = np.ones(s.tokens.shape, bool)
        update(controller, s.tokens, mask, s.tokens[:, 0] / 2.0, baseline, entropy_weight=1e-3, grad_clip=5.0)

    return step


def measure(compiled: bool, repeats: int) -> dict[str, Any]:
    """Build, first calls and steady milliseconds per sample and per update of one controller."""
    from rlnas.policy import gradient as policy_gradient
    from rlnas.policy.gradient import Baseline

    out: dict[str, Any] = {}
    out["build_s"] = seconds(lambda: out.setdefault("c", make(compiled)))
    c, b = out.pop("c"), Baseline()
    out["first_sample_s"] = seconds(lambda: c.sample(8))
    s = c.sample(8)
    mask = np.ones(s.tokens.shape, bool)

    def upd(tokens: np.ndarray) -> None:
        policy_gradient.update(
            c, tokens, mask[: len(tokens)], tokens[:, 0] / 2.0, b, entropy_weight=1e-3, grad_clip=5.0
        )

    out["first_update_s"] = seconds(lambda: upd(s.tokens))
    for n in BATCHES:
        out[f"sample_ms_{n}"] = 1e3 * statistics.median(
            seconds(lambda n=n: c.sample(n)) for _ in range(repeats)
        )
        out[f"update_ms_{n}"] = 1e3 * statistics.median(
            seconds(lambda n=n: upd(s.tokens[:n])) for _ in range(repeats)
        )
    if compiled:
        out["traces"] = [f.experimental_get_tracing_count() for f in c.compiled_steps.values()]
    return out


def run_cost(updates: int, mode: str) -> float:
    """Seconds of one benchmark run of ``updates`` updates at batch 8 (a fresh controller or a reset one)."""
    from rlnas.policy.gradient import Baseline

    if mode == "reset":
        c = SHARED.setdefault("c", make(True, seed=0))
        one_update(c, Baseline(), 8)()  # traced before the clock starts: the cost of earlier runs
        t = time.perf_counter()
        c.reset(1)
    else:
        t = time.perf_counter()
        c = make(mode == "compiled", seed=1)
    step = one_update(c, Baseline(), 8)
    for _ in range(updates):
        step()
    return time.perf_counter() - t


SHARED: dict[str, Any] = {}


def max_difference(updates: int = 5) -> float:
    """Largest |eager - compiled| over weights and Adam slots after the same sampled updates."""
    from rlnas.policy.gradient import Baseline

    pair = [make(False, seed=2), make(True, seed=2)]
    for c in pair:
        step = one_update(c, Baseline(), 8)
        for _ in range(updates):
            step()
    variables = [[*c.trainable_variables, *c.optimizer.variables] for c in pair]
    return max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(*variables, strict=True))


def _speed_rows(m: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Eager against compiled, per step and batch size, then the first calls and the build."""
    e, c = m["eager"], m["compiled"]
    rows = [
        [
            f"{what} (ms, batch {n})",
            e[f"{what}_ms_{n}"],
            c[f"{what}_ms_{n}"],
            e[f"{what}_ms_{n}"] / c[f"{what}_ms_{n}"],
        ]
        for what in ("sample", "update")
        for n in BATCHES
    ]
    rows += [
        [f"first {what} (s, batch 8)", e[f"first_{what}_s"], c[f"first_{what}_s"], None]
        for what in ("sample", "update")
    ]
    rows.append(["build (s)", e["build_s"], c["build_s"], None])
    return rows


def _summary(m: dict[str, dict[str, Any]], diff: float) -> dict[str, Any]:
    """What tracing costs, what it saves per update, and after how many updates it pays."""
    e, c = m["eager"], m["compiled"]
    trace, later = (
        sum(x[f"first_{w}_s"] - x[f"{w}_ms_8"] / 1e3 for w in ("sample", "update"))
        for x in (c, m["compiled again"])
    )
    saving = (e["sample_ms_8"] + e["update_ms_8"] - c["sample_ms_8"] - c["update_ms_8"]) / 1e3
    return {
        "trace_s": trace,
        "saving_per_update_s": saving,
        "break_even_updates": trace / saving,
        "later_trace_s": later,
        "later_break_even_updates": later / saving,
        "max_abs_difference": diff,
        "compiled_traces": c["traces"],
    }


def report(m: dict[str, dict[str, Any]], runs: dict[str, dict[int, float]], diff: float) -> tuple[str, dict]:
    summary = _summary(m, diff)
    trace, saving, later = summary["trace_s"], summary["saving_per_update_s"], summary["later_trace_s"]
    md = "### Controller speed, default space (eager vs compiled)\n\n"
    md += table(["measure", "eager", "compiled", "speed-up"], _speed_rows(m))
    md += "\n\n" + table(
        ["summary", "value"],
        [
            ["trace cost (s): first calls minus steady", trace],
            ["saving per update (s): sample + update at batch 8", saving],
            ["break-even (updates)", trace / saving],
            ["trace cost of a second controller in the same process (s)", later],
            ["break-even of a second controller (updates)", later / saving],
            ["traces of the update after batches 8 and 2", summary["compiled_traces"]],
            ["max abs(eager - compiled), weights + Adam, 5 updates", diff],
        ],
    )
    md += "\n\n### One benchmark run of N updates at batch 8 (s, build included)\n\n"
    md += table(
        ["updates", "eager", "compiled, fresh controller", "compiled, Controller.reset(seed)"],
        [[n, runs["eager"][n], runs["compiled"][n], runs["reset"][n]] for n in RUN_UPDATES],
    )
    return md, summary


def main() -> None:
    p = parser("controller_speed", __doc__, "controller/compiled_vs_eager.json")
    p.add_argument("--repeats", type=int, default=20, help="calls timed per measure (median; default 20)")
    args = p.parse_args()
    quiet()
    load = [os.getloadavg()[0]]
    m = {mode: measure(mode != "eager", args.repeats) for mode in ("eager", "compiled", "compiled again")}
    runs = {mode: {n: run_cost(n, mode) for n in RUN_UPDATES} for mode in ("eager", "compiled", "reset")}
    md, summary = report(m, runs, max_difference())
    load.append(os.getloadavg()[0])
    md += f"\n\n1-minute load average at start and end: {load[0]:.1f}, {load[1]:.1f} ({os.cpu_count()} CPUs)."
    summary["load_average"] = load
    emit(args.out, "controller_speed", md, {"modes": m, "runs": runs, **summary})
    args.out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
