"""The real ``rlnas`` command line with synthetic children, for the tests of faults between processes:
``python -m tests.fault_target [--delay S] [--go FILE] -- ARGS...``.

Everything but the children is the real thing (argument checks, the run's lock, the journal,
checkpoints, TensorBoard, the exit status); children are :class:`tests.conftest.SyntheticEvaluator`
taking ``--delay`` seconds each, so that a test can act while the search runs. With ``--go FILE``
the process gets ready (imports done), writes ``FILE.<pid>.ready`` and waits for ``FILE`` to exist:
processes started together then race for the run within milliseconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import rlnas.exec.factory
from rlnas.cli import main
from tests.conftest import SyntheticEvaluator


def _wait_for(go: Path) -> None:
    Path(f"{go}.{os.getpid()}.ready").touch()
    while not go.exists():
        time.sleep(0.001)


if __name__ == "__main__":
    split = sys.argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--go", type=Path)
    own = parser.parse_args(sys.argv[1:split])
    rlnas.exec.factory.make_evaluators = lambda config, space, **_: [SyntheticEvaluator(delay=own.delay)]
    if own.go is not None:
        _wait_for(own.go)
    sys.exit(main(sys.argv[split + 1 :]))
