"""TensorBoard output with fixed tag groups, as CleanRL does: ``charts/*`` for what the search found,
``losses/*`` for the controller's optimisation, ``policy/*`` for what it believes; all against one step,
the number of architectures sampled so far.

Besides the scalars: the HParams dashboard (the space's decisions with their domains, written once, and one
session per child under ``children/<index>``, the layout TensorBoard's hparams plugin reads; ``<index>`` is
the trial number every view shows), a custom-scalars layout (one multi-line chart per decision of the
policy, and the search's charts grouped) and a ``leaderboard`` text of the best children.

Each session is a run of its own, as the hparams plugin requires; ``rlnas tensorboard``
(:mod:`rlnas.cli.tensorboard`) keeps those runs out of the other dashboards.

A write TensorFlow's event writer cannot make (a full disk, EIO, a read-only remount) stops the search
as the journal's and the checkpoint's do: one RunError naming the file and the cause. TensorFlow
reports it at the flush that follows every write here, as an ``OpError``; the events already in the
file stay readable (each record is framed and checksummed, and TensorBoard skips a cut last one), and a
resumed search writes a new event file. Stopping rather than going on without TensorBoard: on a full
disk the journal's next line fails anyway, and a stop now leaves the last checkpoint the newest state.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.errors import RunError
from rlnas.models.objectives import Objective, parse_objective
from rlnas.run.durable import write_failed
from rlnas.run.trial import Trial, objective_name, objective_value, rank
from rlnas.space import SearchSpace
from rlnas.text import format_arch, format_markdown_table, format_value

METRICS = ("val_accuracy", "params", "fit_seconds")
"""Child metrics shown in the HParams dashboard (scalars of each child's session, at step 1)."""

INDEXED = re.compile(r"(.+)_(\d+)")
"""Per-layer decisions (``units_0``, ``units_1``, ...): HParams gets one more column per family
(``units``: the active layers' values in order), because the dashboard shows only 5 columns at first
(in name order): the default space's 7 decisions fit in 5 families (each decision keeps its column)."""

INT_WIDTH = 8
"""Integer values go to HParams as text, right-aligned to this width: a number there is a float shown
with 5 digits ("416.00"), while text sorts as text; padded, text sorts in numeric order, and the
dashboard's HTML drops the leading spaces ("416")."""

SEARCH_CHARTS = {
    "reward": [r"charts/reward_(mean|max)", r"charts/best_.*"],
    "failed and repeated children (fraction of a batch)": [r"charts/failed_fraction", r"charts/cache_hits"],
    "children per minute": [r"charts/children_per_minute"],
    "controller losses": [r"losses/.*"],
}
"""The custom-scalars charts of the search (a chart per entry: the tags matching any of its patterns)."""

AXIS_PREFIX = "policy_axis/"
"""Flat lines at 0 and 1 drawn in every policy chart, so that its axis spans 0 to 1 (see
:func:`policy_axis`)."""
OUTLIER_SHARE = 0.05
"""TensorBoard's "ignore outliers in chart scaling" (on by default) scales a chart to the 5th to
95th percentile of all its points: a value that wins the policy is above that, and ran off the chart."""


def policy_marginals(space: SearchSpace, tokens: np.ndarray) -> dict[str, float]:
    """Empirical ``policy/<decision>/<value>`` probabilities from sampled token sequences.

    The controller is autoregressive, so a decision's marginal is estimated from samples; each decision
    is counted only over the samples where it is active (its probabilities sum to 1, or are all 0 when
    no sample activates it).
    """
    tokens = np.asarray(tokens)
    masks = np.array([space.active_mask(t) for t in tokens], bool)
    out: dict[str, float] = {}
    for i, d in enumerate(space.decisions):
        active = tokens[masks[:, i], i]
        counts = np.bincount(active, minlength=d.size) / max(len(active), 1)
        out |= {f"policy/{d.name}/{format_value(v)}": float(c) for v, c in zip(d.values, counts, strict=True)}
    return out


def policy_axis(space: SearchSpace) -> dict[str, float]:
    """The ``policy_axis/*`` lines: as many at 0 and at 1 as keep each end of every policy chart
    above TensorBoard's outlier cut (:data:`OUTLIER_SHARE`), so that a chart's axis is always 0 to 1.

    A chart's probabilities stay inside 0 and 1; with at least twice the cut's share of the chart's
    lines at each end, the 5th and the 95th percentiles are exactly 0 and 1 from the first few steps
    on (the values between are drawn as they are; smoothing keeps a flat line flat).
    """
    values = max((d.size for d in space.decisions), default=1)
    per_end = math.ceil(2 * OUTLIER_SHARE * values / (1 - 4 * OUTLIER_SHARE))
    names = ["" if j == 0 else f"_{j + 1}" for j in range(per_end)]
    return {f"{AXIS_PREFIX}{end}{n}": float(y) for end, y in (("bottom", 0), ("top", 1)) for n in names}


def hparam_value(value: Any) -> bool | float | str:
    """A decision's value as the HParams dashboard should show it (see :data:`INT_WIDTH`)."""
    if isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return str(value).rjust(INT_WIDTH)
    return str(value)


def families(names: Sequence[str]) -> dict[str, list[str]]:
    """The per-layer decision families among ``names`` (see :data:`INDEXED`), members in index order;
    a family whose name is itself a decision's is left out."""
    out: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        if (m := INDEXED.fullmatch(name)) and m[1] not in names:
            out.setdefault(m[1], []).append((int(m[2]), name))
    return {base: [n for _, n in sorted(members)] for base, members in out.items()}


def session_hparams(trial: Trial) -> dict[str, bool | float | str]:
    """One child's HParams: its active decisions, and each per-layer family's values as one text."""
    arch = trial.architecture
    values = {k: hparam_value(v) for k, v in arch.items()}
    joined = {f: " ".join(str(values[n]) for n in members) for f, members in families(list(arch)).items()}
    return values | joined


def custom_scalars_layout(space: SearchSpace) -> Any:
    """The custom-scalars layout: the search's charts, then one chart per decision with a line per value
    (``policy/<decision>/<value>``), instead of a card per value, on an axis from 0 to 1."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    def chart(title: str, patterns: list[str]) -> Any:
        return layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=patterns))

    search = [chart(title, patterns) for title, patterns in SEARCH_CHARTS.items()]
    axis = rf"{re.escape(AXIS_PREFIX)}.*"  # 0 to 1: see policy_axis
    policy = [chart(d.name, [rf"policy/{re.escape(d.name)}/.*", axis]) for d in space.decisions]
    return layout_pb2.Layout(
        category=[
            layout_pb2.Category(title="search", chart=search),
            layout_pb2.Category(title="policy: probability of each value, per decision", chart=policy),
        ]
    )


def hparams_metrics(objective: Objective | str | None) -> tuple[str, ...]:
    """The metrics of the HParams table: the objective's own (``val_mae``) first, then :data:`METRICS`."""
    o = objective if isinstance(objective, Objective) else parse_objective(objective or "val_accuracy")
    first = (o.metric,) if o.kind == "metric" and o.metric not in METRICS else ()
    return (*first, *METRICS)


def best_tag(objective: Objective | str | None = None) -> str:
    """``charts/best_<objective>``: the best value so far under the objective's own name
    (``charts/best_val_accuracy`` by default, ``charts/best_val_loss`` for ``val_loss:min``,
    ``charts/best_mnas`` for a size-penalised objective, whose value is the reward)."""
    o = objective if isinstance(objective, Objective) else parse_objective(objective or "val_accuracy")
    return f"charts/best_{o.metric if o.kind == 'metric' else o.kind}"


def leaderboard_markdown(
    trials: Sequence[Trial], objective: Objective | str | None = None, top: int = 10
) -> str:
    """A Markdown table of the ``top`` architectures, ranked as ``rlnas show`` ranks them, with the
    objective's own value under its own name."""
    rows = [
        [
            str(i),
            f"{objective_value(t, objective):.4f}",
            f"{t.metrics['params']:,}",
            str(t.index),
            f"`{format_arch(t.architecture)}`",
        ]
        for i, t in enumerate(rank(trials, objective, top), start=1)
    ]
    header = ("rank", objective_name(objective), "params", "trial", "architecture")
    return format_markdown_table(header, rows) if rows else "no successful child yet"


def batch_scalars(
    batch: Sequence[Trial],
    stats: Mapping[str, float],
    trials: Sequence[Trial],
    objective: Objective | str | None = None,
) -> dict[str, float]:
    """The ``charts/*`` scalars of one told batch (its trials in position order), with the best of
    ``trials`` so far under the objective's own name; the strategy's ``stats`` are added as they are."""
    rewards = [t.reward for t in batch]
    last = max(batch, key=lambda t: t.elapsed)
    top = rank(trials, objective, 1)
    return {
        "charts/reward_mean": float(np.mean(rewards)),
        "charts/reward_max": float(np.max(rewards)),
        best_tag(objective): objective_value(top[0], objective) if top else 0.0,
        "charts/failed_fraction": sum(not t.ok for t in batch) / len(batch),
        "charts/cache_hits": sum(t.cached for t in batch) / len(batch),
        "charts/children_per_minute": (last.index + 1) / max(last.elapsed, 1e-9) * 60,
        **stats,
    }


class Monitor:
    """Writes scalars and text to ``logdir``; TensorFlow is imported only when a Monitor is made."""

    def __init__(self, logdir: str | Path) -> None:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        self._tf = tf
        self._hp = hp
        self.logdir = Path(logdir)
        with self._writing():
            self._writer = tf.summary.create_file_writer(str(logdir))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """TensorFlow's write errors (``OpError``: "<file>; No space left on device") and Python's
        (``OSError``) as the one-line RunError of every refused write."""
        try:
            yield
        except OSError as exc:
            raise write_failed(exc.filename or self.logdir, exc) from None
        except self._tf.errors.OpError as exc:
            first = exc.message.splitlines()[0].split("}} ")[-1]  # "<file>; <cause>" after the op's name
            where, _, cause = first.rpartition("; ")
            raise RunError(
                f"cannot write {where or str(self.logdir)!r}: {cause}; what was written before is intact: "
                "free space (or fix the disk), then continue with `rlnas search --resume`"
            ) from None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """All ``values`` as one event: the same scalar records ``tf.summary.scalar`` writes, but one
        op for the batch instead of one per tag (the policy's marginals are dozens of tags; one op
        each cost ~1 ms, a fifth of the search loop's own time with instant children)."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb

        summary = Summary(value=[v for tag, x in values.items() for v in scalar_pb(tag, float(x)).value])
        with self._writing():
            with self._writer.as_default(step=step):
                self._tf.summary.experimental.write_raw_pb(summary.SerializeToString())
            self._writer.flush()

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        with self._writing():
            with self._writer.as_default(step=step):
                self._tf.summary.text(tag, markdown)
            self._writer.flush()

    def policy(self, step: int, space: SearchSpace, tokens: np.ndarray) -> None:
        """``policy/<decision>/<value>`` scalars: the marginals of ``tokens`` sampled from the policy,
        with the lines that hold the policy charts' axis at 0 to 1 (:func:`policy_axis`)."""
        self.scalars(step, policy_marginals(space, tokens) | policy_axis(space))

    def leaderboard(
        self, step: int, trials: Sequence[Trial], objective: Objective | str | None = None
    ) -> None:
        self.text("leaderboard", leaderboard_markdown(trials, objective), step)

    def hparams_config(self, space: SearchSpace, objective: Objective | str | None = None) -> None:
        """The dashboards' configuration, written once: the HParams experiment (every decision with its
        domain, the architecture as text, the child metrics: the objective's own metric first, e.g.
        ``val_mae``, then :data:`METRICS`) and the custom-scalars layout."""
        self.metrics = hparams_metrics(objective)
        from tensorboard.plugins.custom_scalar import summary as custom_scalar

        hp = self._hp
        hparams = [
            hp.HParam(d.name, hp.Discrete([hparam_value(v) for v in d.values])) for d in space.decisions
        ]
        for family, members in families(space.names).items():
            hparams.append(hp.HParam(family, description=f"{', '.join(members)} (the active ones)"))
        with self._writing():
            with self._writer.as_default(step=0):
                hp.hparams_config(hparams=hparams, metrics=[hp.Metric(m) for m in self.metrics])
                layout = custom_scalar.pb(custom_scalars_layout(space))
                self._tf.summary.experimental.write_raw_pb(layout.SerializeToString())
            self._writer.flush()

    def child(self, t: Trial) -> None:
        """One HParams session for a finished child: its architecture (active decisions) and metrics.

        Failed children get their session too, without metrics, so that every trial is listed.
        """
        with self._writing():
            writer = self._tf.summary.create_file_writer(str(self.logdir / "children" / f"{t.index:05d}"))
            try:
                with writer.as_default(step=1):
                    self._hp.hparams(session_hparams(t), trial_id=f"{t.index:05d}")
                    if t.ok:
                        reported = t.reported()
                        for m in getattr(self, "metrics", METRICS):
                            value = reported.get(m)
                            if isinstance(value, int | float) and math.isfinite(
                                value
                            ):  # no accuracy: regression
                                self._tf.summary.scalar(m, float(value))
                writer.flush()  # the error, if any, here rather than lost in close
            finally:
                with contextlib.suppress(self._tf.errors.OpError):
                    writer.close()

    def close(self) -> None:
        """Every write above flushed at once: nothing is pending, and a failure of this last flush
        was reported by the write that made it (a close error would hide that first one)."""
        with contextlib.suppress(self._tf.errors.OpError):
            self._writer.close()
