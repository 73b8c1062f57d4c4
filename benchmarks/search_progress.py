"""Does the default search learn? Validation accuracy per REINFORCE batch and the controller's policy shift.

What it measures
    The default search (bundled mnist_5k, default config: 96 children in batches of 4; ``--trials``
    changes the budget) for each controller learning rate in ``--lrs`` and each seed in ``--seeds``.
    Per batch: mean and max validation accuracy of its children and their mean entropy under the
    policy that sampled them (``losses/entropy`` of the REINFORCE step; it also depends on how many
    layers the batch drew, so it is noisy). Per run: first-batch mean vs the mean of the last two
    batches; best vs mean of all sampled; the policy's entropy at start and end; and how far the
    policy moved: the total-variation (TV) distance between the initial and final controller's
    marginals of ``num_layers`` and ``lr``. Both come from 1024 architectures sampled from the
    initial controller and from the final one (restored from the run's ``controller.npz``), both
    drawing the same random numbers. Also the share of each value among the first two vs the last
    two batches' architectures.

Why
    The LSTM controller's default learning rate (0.005) is meant to move the policy within a laptop
    budget; Zoph & Le's 6e-4 was set for 12,800 samples and should barely move the policy in 96.
    ``--lrs 0.0006,0.005,0.02`` shows this side by side.

How to read it
    A learning controller shows last-2 mean > first mean, falling policy entropy and a clearly
    non-zero TV distance (0 = the marginal did not move; 1 = all mass moved). Because both controllers sample
    with common random numbers, an unchanged policy gives exactly 0, so even 0.05 is a real shift.
    Entropy is per architecture, in nats, summed over its active decisions. With 4 children per
    batch, batch means are noisy: compare seeds (``--seeds 0,1``). Runs with the same seed start
    from the same controller and share their first batch, so learning rates are compared paired.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

import numpy as np
from _common import emit, parser, patched, quiet, table, temp_store

POLICY_SAMPLES = 1024
POLICY_SEED = 12345  # both controllers draw from the same uniforms, so an unmoved policy gives TV 0
WATCHED = ("num_layers", "lr")


def flat(xss: list[list[Any]]) -> list[Any]:
    return [x for xs in xss for x in xs]


def shares(archs: list[dict[str, Any]], name: str, values: tuple[Any, ...]) -> list[float]:
    counts = Counter(a.get(name) for a in archs)
    return [counts[v] / max(1, len(archs)) for v in values]


def policy(config: Any, space: Any, checkpoint: Any) -> tuple[list[dict[str, Any]], float]:
    """Architectures drawn from the run's initial controller (checkpoint None) or its final one,
    and the policy's entropy per architecture (Monte Carlo over the same draws)."""
    from rlnas.strategies.reinforce import make_controller

    controller = make_controller(config.reinforce, space, seed=config.seed)
    if checkpoint is not None:
        controller.restore(checkpoint)
    controller.rng = np.random.default_rng(POLICY_SEED)
    sample = controller.sample(POLICY_SAMPLES)
    masks = np.array([space.active_mask(t) for t in sample.tokens])
    entropy = float(np.mean(np.sum(sample.entropies * masks, axis=1)))
    return [space.decode(t) for t in sample.tokens], entropy


def policy_shift(
    space: Any, start: list[dict[str, Any]], end: list[dict[str, Any]], early: list[Any], late: list[Any]
) -> dict[str, dict[str, Any]]:
    """Per watched decision: its values' shares under the initial and the final policy, their TV
    distance, and the shares among the first two and the last two batches' architectures."""
    shift = {}
    for name in WATCHED:
        values = space[name].values
        p0, p1 = shares(start, name, values), shares(end, name, values)
        shift[name] = {
            "values": list(values),
            "policy_start": p0,
            "policy_end": p1,
            "tv_distance": 0.5 * sum(abs(a - b) for a, b in zip(p0, p1, strict=True)),
            "first_two_batches": shares(early, name, values),
            "last_two_batches": shares(late, name, values),
        }
    return shift


def run(lr: float, seed: int, trials: int) -> dict[str, Any]:
    from rlnas.config import make_config
    from rlnas.policy import gradient as policy_gradient
    from rlnas.search.loop import run_search
    from rlnas.space import default_space

    config, space = make_config(trials=trials, seed=seed, controller_lr=lr), default_space()
    stats: list[Any] = []  # policy_gradient.UpdateStats of each batch, captured as the search makes them

    def capture(original: Any) -> Any:
        def update(*args: Any, **kwargs: Any) -> Any:
            stats.append(original(*args, **kwargs))
            return stats[-1]

        return update

    with temp_store() as store, patched(policy_gradient, "update", capture):
        result = run_search(config, space, store)
        (start, h0), (end, h1) = policy(config, space, None), policy(config, space, store.controller_path)
    trials_ = result.trials
    batches = [[t for t in trials_ if t.update == u] for u in sorted({t.update for t in trials_})]
    acc = [[t.metrics["val_accuracy"] for t in b] for b in batches]
    archs = [[t.architecture for t in b] for b in batches]
    shift = policy_shift(space, start, end, flat(archs[:2]), flat(archs[-2:]))
    return {
        "lr": lr,
        "seed": seed,
        "batch_mean": [statistics.fmean(a) for a in acc],
        "batch_max": [max(a) for a in acc],
        "batch_entropy": [s.entropy for s in stats],
        "policy_entropy": [h0, h1],
        "best": max(max(a) for a in acc),
        "mean_all": statistics.fmean(x for a in acc for x in a),
        "last2_mean": statistics.fmean(flat(acc[-2:])),
        "failed": sum(not t.ok for t in trials_),
        "seconds": result.seconds,
        "shift": shift,
    }


def _per_batch(runs: list[dict[str, Any]]) -> list[list[Any]]:
    """Per batch index, each run's mean / max validation accuracy / entropy ("-" past its end)."""
    n = max(len(r["batch_mean"]) for r in runs)

    def at(xs: list[float], i: int) -> str:
        return f"{xs[i]:.3f}" if i < len(xs) else "-"

    return [
        [
            i,
            *(
                f"{at(r['batch_mean'], i)} / {at(r['batch_max'], i)} / {at(r['batch_entropy'], i)}"
                for r in runs
            ),
        ]
        for i in range(n)
    ]


SUMMARY_HEADERS = [
    "run", "first batch mean", "last-2 mean", "gain", "best", "mean all", "policy entropy start → end",
    *(f"TV {name}" for name in WATCHED), "failed", "search s",
]  # fmt: skip


def _summary_rows(runs: list[dict[str, Any]], label: list[str]) -> list[list[Any]]:
    """One row a run: how far its batches' accuracy and its policy moved."""
    return [
        [
            lab,
            r["batch_mean"][0],
            r["last2_mean"],
            r["last2_mean"] - r["batch_mean"][0],
            r["best"],
            r["mean_all"],
            "{:.2f} → {:.2f}".format(*r["policy_entropy"]),
            *(r["shift"][name]["tv_distance"] for name in WATCHED),
            r["failed"],
            r["seconds"],
        ]
        for lab, r in zip(label, runs, strict=True)
    ]


def _shift_rows(runs: list[dict[str, Any]]) -> list[list[Any]]:
    """One row a watched value: its share early → late in each run, and under the policy."""
    return [
        [
            f"{name}={v:g}",
            *(
                f"{s['first_two_batches'][j]:.2f} → {s['last_two_batches'][j]:.2f}"
                f" (π {s['policy_start'][j]:.2f} → {s['policy_end'][j]:.2f})"
                for s in (r["shift"][name] for r in runs)
            ),
        ]
        for name in WATCHED
        for j, v in enumerate(runs[0]["shift"][name]["values"])
    ]


def markdown(runs: list[dict[str, Any]]) -> str:
    label = [f"lr={r['lr']:g} s{r['seed']}" for r in runs]
    return "\n\n".join(
        [
            "### Per REINFORCE batch: mean / max val accuracy / mean entropy of its archs (nats)",
            table(["batch", *label], _per_batch(runs)),
            "### Summary",
            table(SUMMARY_HEADERS, _summary_rows(runs, label)),
            "### Policy shift: share in first-2 → last-2 batches (π: initial → final policy, 1024 draws)",
            table(["value", *label], _shift_rows(runs)),
        ]
    )


def main() -> None:
    p = parser("search_progress", __doc__, "learning/search_progress.json")
    p.add_argument("--trials", type=int, default=None, help="children per search (default: the config's)")
    p.add_argument("--lrs", default=None, help="comma list of controller learning rates (default: config's)")
    p.add_argument("--seeds", default="0", help="comma list of seeds (default 0)")
    args = p.parse_args()
    quiet()
    from rlnas.config import SearchConfig

    default = SearchConfig()
    lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else [default.reinforce.policy_lr]
    seeds = [int(x) for x in args.seeds.split(",")]
    runs = [run(lr, seed, args.trials or default.trials) for lr in lrs for seed in seeds]
    emit(args.out, "search_progress", markdown(runs), {"runs": runs})


if __name__ == "__main__":
    main()
