"""What a run found, for people: a flat export of its trials and a report of plots and a summary.

Reads only the run directory (``config.json``, ``trials.jsonl``, ``replay.json``); never imports
TensorFlow. The pure computations (best so far, per-batch means and shares, the Pareto front) come
first and are tested on their own; the plotting (matplotlib, Agg backend) and the writers follow.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from rlnas.config import space_from_dict
from rlnas.errors import RlnasError, RunError
from rlnas.models.child import Status
from rlnas.models.objectives import parse_objective
from rlnas.run.monitor import leaderboard_markdown
from rlnas.run.store import RunStore
from rlnas.run.trial import Trial, objective_name, objective_value, rank, scores, short
from rlnas.space import SearchSpace
from rlnas.text import format_arch, format_markdown_table, format_value

EXPORT_COLUMNS = (
    "index",
    "update",
    "key",
    "status",
    "reward",
    "val_accuracy",
    "val_loss",
    "params",
    "fit_seconds",
    "eval_seconds",
    "child_seconds",
    "cached",
    "cached_from",
    "error",
)
"""The trial fields of an export, before one column per decision of the space. ``index`` is the trial
number every view shows; ``cached_from`` is the ``index`` of the trial a repeat took its result from."""
_TRIAL_FIELDS = frozenset(f.name for f in fields(Trial))


# -- pure computations ---------------------------------------------------------------------------
def best_so_far(values: Sequence[float | None]) -> list[float | None]:
    """Running maximum; ``None`` entries (failed children) are skipped, ``None`` until the first value."""
    out: list[float | None] = []
    best: float | None = None
    for v in values:
        if v is not None and (best is None or v > best):
            best = v
        out.append(best)
    return out


def batch_means(trials: Sequence[Trial]) -> tuple[list[int], list[float]]:
    """The REINFORCE batches (``update``) in order and the mean reward of each."""
    sums: dict[int, list[float]] = {}
    for t in trials:
        sums.setdefault(t.update, []).append(t.reward)
    updates = sorted(sums)
    return updates, [sum(sums[u]) / len(sums[u]) for u in updates]


def batch_shares(
    trials: Sequence[Trial], space: SearchSpace
) -> tuple[list[int], dict[str, list[list[float]]]]:
    """How often each value of each decision was sampled, per REINFORCE batch.

    Returns:
        The batches (``update``) in order, and for each decision a row per batch with the share of
        each of its values (in space order) among the batch's architectures that have the decision
        (the policy's distribution given that the decision exists). A batch in which no architecture
        has the decision gets NaN shares.
    """
    updates = sorted({t.update for t in trials})
    row_of = {u: i for i, u in enumerate(updates)}
    counts = {d.name: [[0] * len(d.values) for _ in updates] for d in space.decisions}
    for t in trials:
        for d in space.decisions:
            if d.name in t.architecture:
                counts[d.name][row_of[t.update]][_value_index(d.values, t.architecture[d.name])] += 1
    shares = {
        name: [[c / sum(row) if sum(row) else math.nan for c in row] for row in rows]
        for name, rows in counts.items()
    }
    return updates, shares


def _value_index(values: Sequence[Any], value: Any) -> int:
    # type-strict: True == 1 in Python, but a bool decision and an int decision must not mix
    for i, v in enumerate(values):
        if type(v) is type(value) and v == value:
            return i
    raise RunError(f"value {value!r} is not in the run's space ({', '.join(map(format_value, values))})")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(params, accuracy)`` points (fewer params, higher accuracy).

    Returned by increasing params; of exact duplicates only the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    for i in order:
        if not front or points[i][1] > points[front[-1]][1]:
            front.append(i)
    return front


def logged_metrics(trials: Sequence[Trial]) -> list[str]:
    """The metrics the children's models logged beyond :data:`EXPORT_COLUMNS` (``val_mae``,
    ``val_auc``, ``mae``), in the order they first appear: an export has a column for each."""
    seen: dict[str, None] = {}
    for t in trials:
        for name in t.metrics:
            if name not in EXPORT_COLUMNS and name not in ("train_loss", "epochs_run"):
                seen.setdefault(name, None)
    return list(seen)


def flatten(trial: Trial, names: Sequence[str], metrics: Sequence[str] = ()) -> dict[str, Any]:
    """One export row: the trial fields, the logged ``metrics``, then one column per decision
    (None when inactive or not logged)."""
    reported = trial.reported()
    row = {c: getattr(trial, c) if c in _TRIAL_FIELDS else reported.get(c) for c in EXPORT_COLUMNS}
    row["status"] = trial.status.value
    row |= {m: reported.get(m) for m in metrics}
    return row | {n: trial.architecture.get(n) for n in names}


# -- reading a run -------------------------------------------------------------------------------
def load_run(store: RunStore) -> tuple[SearchSpace, list[Trial]]:
    """The run's space and its trials; RunError when config.json is not an rlnas run's."""
    stored = store.read_json("config.json")
    try:
        space = space_from_dict(stored["space"])
    except (KeyError, TypeError, RlnasError) as exc:
        raise RunError(f"run {str(store.path)!r} has no usable space in config.json: {exc}") from None
    return space, store.trials()


# -- export --------------------------------------------------------------------------------------
def export_text(store: RunStore, fmt: str) -> str:
    """Every trial of the run as CSV or JSON (a list of flat objects)."""
    space, trials = load_run(store)
    metrics = logged_metrics(trials)
    rows = [flatten(t, space.names, metrics) for t in trials]
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*EXPORT_COLUMNS, *metrics, *space.names], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)  # None is written as an empty cell
    return buf.getvalue()


# -- the report ----------------------------------------------------------------------------------
def write_report(store: RunStore) -> list[Path]:
    """Plots and ``report.md`` under ``RUN/report/``; returns the paths written."""
    space, trials = load_run(store)
    if not trials:
        raise RunError(f"run {str(store.path)!r} has no trials yet; nothing to report")
    out = store.path / "report"
    out.mkdir(exist_ok=True)
    replayed = _replay_results(store)
    plots = [("rewards.png", _plot_rewards, (trials,)), ("policy.png", _plot_policy, (trials, space))]
    objective = store.read_json("config.json").get("search", {}).get("objective")
    plots += [("pareto.png", _plot_pareto, (trials, objective))]
    if replayed:
        plots.append(("replay.png", _plot_replay, (replayed,)))
    written = [_save(plot(*data), out / name) for name, plot, data in plots]
    md = out / "report.md"
    md.write_text(_summary(store, space, trials, replayed, [p.name for p in written]), encoding="utf-8")
    return [*written, md]


def _replay_results(store: RunStore) -> list[dict[str, Any]]:
    return store.read_json("replay.json") if (store.path / "replay.json").is_file() else []


def _summary(
    store: RunStore,
    space: SearchSpace,
    trials: list[Trial],
    replayed: list[dict[str, Any]],
    images: list[str],
) -> str:
    ok = [t for t in trials if t.ok]
    objective = store.read_json("config.json").get("search", {}).get("objective")
    lines = [
        f"# Run `{store.name}`",
        "",
        f"- {len(trials)} trials in {len({t.update for t in trials})} REINFORCE batches; "
        f"{len(trials) - len(ok)} failed; {len({t.key for t in trials})} distinct architectures "
        f"of {space.size():,}",
    ]
    for b in rank(trials, objective, 1):
        lines.append(
            f"- best: {objective_name(objective)} {objective_value(b, objective):.4f}, "
            f"{b.metrics['params']:,} params (trial {b.index}): `{format_arch(b.architecture)}`"
        )
    lines += ["", *[f"![{Path(name).stem}]({name})" for name in images], "", "## Top 10", ""]
    lines.append(leaderboard_markdown(trials, objective))
    if replayed:
        rows = [
            [
                str(r["rank"]),
                f"{scores(r)[1]:.4f}",
                f"{scores(r)[2]:.4f}" if Status(r["status"]) is Status.OK else "failed",
                f"{r['params']:,}",
                f"`{format_arch(r['architecture'])}`",
            ]
            for r in replayed
        ]
        lines += ["", "## Replay (retrained on train+validation, scored once on test)", ""]
        metric = short(scores(replayed[0])[0])
        header = ("rank", f"val_{metric} (search)", f"test_{metric}", "params", "architecture")
        lines.append(format_markdown_table(header, rows))
    return "\n".join(lines) + "\n"


# -- plots (matplotlib's Agg backend: no display needed) ----------------------------------------
def _figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_rewards(trials: list[Trial]) -> Any:
    fig, ax = _figure(figsize=(8, 4.5))
    x = [t.index + 1 for t in trials]
    ok = [t.ok for t in trials]
    for good, style in ((True, {"s": 14, "alpha": 0.6}), (False, {"marker": "x", "color": "tab:red"})):
        picked = [(a, t.reward) for a, o, t in zip(x, ok, trials, strict=True) if o == good]
        if picked:
            label = "reward per child" if good else "failed child"
            ax.scatter([a for a, _ in picked], [r for _, r in picked], label=label, **style)
    best = best_so_far([t.reward if o else None for t, o in zip(trials, ok, strict=True)])
    ax.step(x, [math.nan if b is None else b for b in best], where="post", color="black", label="best so far")
    updates, means = batch_means(trials)
    ends = [max(t.index + 1 for t in trials if t.update == u) for u in updates]
    ax.plot(ends, means, "o-", color="tab:orange", ms=4, label="batch mean")
    ax.set(xlabel="architectures sampled", ylabel="reward", title="Reward during the search")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _plot_policy(trials: list[Trial], space: SearchSpace) -> Any:
    """One stacked-share panel per decision, each with its own legend: every value is named (up to 20
    distinct colours, beyond that a colour ramp whose legend still names each value)."""
    import matplotlib.ticker

    updates, shares = batch_shares(trials, space)
    cols = min(2, len(space.decisions))
    rows = math.ceil(len(space.decisions) / cols)
    fig, axes = _figure(rows, cols, figsize=(6.4 * cols, 3.0 * rows), squeeze=False)
    for ax, d in zip(axes.flat, space.decisions, strict=False):
        colours = _value_colours(len(d.values))
        bottom = [0.0] * len(updates)
        for j, v in enumerate(d.values):
            height = [0.0 if math.isnan(r[j]) else r[j] for r in shares[d.name]]
            ax.bar(updates, height, bottom=bottom, width=1.0, color=colours[j], label=format_value(v))
            bottom = [b + h for b, h in zip(bottom, height, strict=True)]
        ax.set(title=d.name, ylim=(0, 1), xlabel="REINFORCE batch", ylabel="share")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        # top value first, as the bars stack; two columns keep 16 values as tall as the panel
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1),
                  ncol=1 if len(d.values) <= 8 else 2, title=d.name, title_fontsize="x-small",
                  handlelength=1.0, columnspacing=0.8, borderaxespad=0)  # fmt: skip
    for ax in list(axes.flat)[len(space.decisions) :]:
        ax.set_visible(False)
    fig.suptitle("Sampled values per batch (the policy's shift)")
    return fig


def _value_colours(n: int) -> list[Any]:
    """``n`` colours that a legend can tell apart: tab10/tab20 up to 20 values, a ramp beyond."""
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        # tab20 pairs a dark and a light shade; dark ones first, then the light, keeps neighbours apart
        order = [*range(0, 20, 2), *range(1, 20, 2)]
        return [matplotlib.colormaps["tab20"](order[i]) for i in range(n)]
    return [matplotlib.colormaps["viridis"](i / (n - 1)) for i in range(n)]


def _plot_pareto(trials: list[Trial], objective: str | None = None) -> Any:
    """Size against the objective's own value, in its own units; a minimised one (a loss) on an
    inverted axis, so that up is always better and the front is the same upper-left staircase."""
    fig, ax = _figure(figsize=(7, 4.5))
    ok = [t for t in trials if t.ok]
    name = objective_name(objective)
    sign = -1.0 if _minimised(objective) else 1.0
    points = [(t.metrics["params"], objective_value(t, objective)) for t in ok]
    ax.scatter([p for p, _ in points], [a for _, a in points], s=14, alpha=0.5, label="children")
    front = [points[i] for i in pareto_front([(p, sign * v) for p, v in points])]
    if front:
        ax.step([p for p, _ in front], [a for _, a in front], "o-", where="post", color="tab:red",
                ms=5, label="Pareto front")  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter("")  # the minor labels of a log axis overlap
    shown = name.replace("val_accuracy", "validation accuracy")
    if sign < 0:
        ax.invert_yaxis()
        shown += " (lower is better: axis inverted)"
    ax.set(xlabel="parameters", ylabel=shown, title=f"Size vs {name}")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _minimised(objective: str | None) -> bool:
    o = parse_objective(objective or "val_accuracy")
    return o.kind == "metric" and o.direction == "min"


def _plot_replay(replayed: list[dict[str, Any]]) -> Any:
    fig, ax = _figure(figsize=(5, 5))
    ok = [r for r in replayed if Status(r["status"]) is Status.OK]
    metric = scores(ok[0])[0] if ok else "accuracy"
    xs, ys = [scores(r)[1] for r in ok], [scores(r)[2] for r in ok]
    ax.scatter(xs, ys, color="tab:green")
    for r, x, y in zip(ok, xs, ys, strict=True):
        ax.annotate(f"#{r['rank']}", (x, y), xytext=(4, 4), textcoords="offset points", fontsize="small")
    if ok:
        pad = 0.02 * max(1.0, max(xs + ys) - min(xs + ys))
        lo, hi = min(xs + ys) - pad, max(xs + ys) + pad
        ax.plot([lo, hi], [lo, hi], "--", color="gray", label="test = validation")
        ax.set(xlim=(lo, hi), ylim=(lo, hi))
        ax.legend(loc="lower right", fontsize="small")
    ax.set(xlabel=f"search-time validation {metric}", ylabel=f"retrained test {metric}", title="Replay")
    ax.grid(alpha=0.3)
    return fig
