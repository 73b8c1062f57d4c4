"""Real searches on the bundled data: minutes each, so marked slow (``python -m pytest -m slow``)."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.config import SearchConfig
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.search.replay import replay
from rlnas.space import default_space

pytestmark = pytest.mark.slow


def test_default_search_shifts_toward_better_architectures_and_replays(tmp_path):
    config = SearchConfig(trials=96, seed=0)
    store = RunStore.create(tmp_path / "run")
    store.write_config(config, default_space())
    result = run_search(config, default_space(), store)
    acc = np.array([t.metrics["val_accuracy"] for t in result.trials])
    assert (acc[-16:].mean()) > acc[:16].mean() + 0.02
    assert result.best.metrics["val_accuracy"] > 0.9
    (best,) = replay(store, top=1)
    assert best.status == "ok" and best.test_accuracy > 0.9
