"""``rlnas/NASTabular-v0``: the NAS env with every child's result looked up in a table, instantly.

Same decisions, spaces and episode as :class:`envs.nas_env.NasEnv` (it *is* one, with a table in
place of training), so an agent tuned here runs unchanged on the real env. Tables come from
``rlnas tabulate`` (format: :mod:`rlnas.tables.lookup`).

## Rewards
The table's validation accuracy of the architecture on the last step (``failed_reward`` for an
architecture whose training failed when the table was built); 0 on every other step.

## Arguments
table: path of the CSV table. It must hold every architecture of ``space``, with values the space
    knows; otherwise ``rlnas.errors.ConfigError`` says which architecture or value is wrong.
space: a ``SearchSpace`` or its ``to_dict()`` form (default: the MLP space).
failed_reward: reward of an architecture that failed.

Deterministic (no wall-clock values in ``info``), so it passes ``gymnasium``'s ``check_env`` as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envs.nas_env import NasEnv
from rlnas.models import standard_space
from rlnas.space import SearchSpace, default_space
from rlnas.space.toml import space_from_dict
from rlnas.tables.lookup import Table, TableEvaluator, load_table


class TabularNasEnv(NasEnv):
    def __init__(
        self,
        table: str | Path | Table,
        space: SearchSpace | Mapping[str, Any] | None = None,
        *,
        failed_reward: float = 0.0,
    ) -> None:
        if space is None:
            space = table.space if isinstance(table, Table) else default_space()
        elif not isinstance(space, SearchSpace):
            space = space_from_dict(space, standard_space=standard_space)
        self.table = table if isinstance(table, Table) else load_table(table, space)
        super().__init__(space, evaluator=TableEvaluator(self.table), failed_reward=failed_reward)
