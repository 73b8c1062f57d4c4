"""A search process for the SIGKILL tests: ``python -m tests.crash_target RUN_DIR``.

Starts the run, or resumes it when RUN_DIR already holds one, with a synthetic evaluator that takes
a few milliseconds per child so that a kill lands at any point of the loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlnas.config import SearchConfig
from rlnas.run.store import RunStore
from rlnas.search.loop import run_search
from rlnas.space import default_space
from tests.conftest import SyntheticEvaluator

CONFIG = SearchConfig(trials=32, archs_per_update=4, seed=11)


def main(run_dir: Path) -> None:
    resume = (run_dir / "config.json").is_file()
    store = RunStore(run_dir) if resume else RunStore.create(run_dir)
    if not resume:
        store.write_config(CONFIG, default_space())
    with store.locked():
        run_search(CONFIG, default_space(), store, evaluator=SyntheticEvaluator(delay=0.02), resume=resume)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
