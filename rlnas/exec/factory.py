"""The one place that chooses what trains a run's children: local worker processes or Ray tasks.

The search, the env, the CLI and the tuner all get their evaluators from :func:`make_evaluators`, so
the settings that say where children run (``executor``, ``workers``, ``gpus``, ``address``,
``cpus_per_child``) mean the same thing whichever face started the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rlnas.errors import ConfigError
from rlnas.exec.evaluator import Evaluator, WorkerConfig, worker_evaluators

if TYPE_CHECKING:
    from rlnas.space import SearchSpace


class ExecConfig(WorkerConfig, Protocol):
    """What :func:`make_evaluators` reads of a config (:class:`rlnas.config.SearchConfig` has it all)."""

    executor: str  # "local" or "ray"


def make_evaluators(
    config: ExecConfig,
    space: SearchSpace,
    *,
    model: str | Callable[..., Any] | None = None,
    count: int | None = None,
    run_dir: str | os.PathLike[str] = "",
    fit_kwargs: Mapping[str, Any] | None = None,
    start: bool = True,
) -> list[Evaluator]:
    """The evaluators of a run: ``config.workers`` worker processes (or the machine's default), or,
    with ``executor = "ray"``, one Ray evaluator per child that fits on the cluster at once.

    Args:
        model: what the children build (default: the space's model); a function is sent by value.
        count: this many evaluators instead (the env makes one, sized as one of the search's).
        run_dir: the run named in the worker processes' marker.
        fit_kwargs: keywords for every child's ``fit`` (a tuner's ``callbacks``); local workers only.
        start: start the worker processes now, so that their TensorFlow import and data load overlap
            the caller's own start-up (Ray starts its workers itself).

    Raises:
        ConfigError: fit keywords with Ray; Ray missing, or no child fits on its cluster.
    """
    model = space.model if model is None else model
    if config.executor == "ray":
        if fit_kwargs:
            raise ConfigError(
                f"fit keywords ({', '.join(fit_kwargs)}) do not reach Ray tasks; use executor='local'"
            )
        from rlnas.exec.ray_evaluator import make_ray_evaluators

        return list(make_ray_evaluators(config, space, model=model, count=count))
    local = worker_evaluators(config, model, count=count, run_dir=run_dir, fit_kwargs=fit_kwargs)
    if start:
        for evaluator in local:
            evaluator.start()
    return list(local)
