"""Controller seconds per batch of 4 on the default search space (target: at most 0.5 s added).

Runs each setting for ``--batches`` ask/think/tell rounds against a synthetic reward (no child trains)
and reports, per batch, the first (the update's trace) left out: the seconds the workers wait for
(``tell`` + ``ask``: between the end of one batch and the start of the next) and the seconds of
``think`` (the reward model's imagined steps, which the search loop runs while the children train),
and what each setting adds to plain REINFORCE. The default LSTM controller unless ``--controller``.

    python benchmarks/controller_time.py --batches 25
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlnas.config import PLAIN_REINFORCE, make_config
from rlnas.space import default_space
from rlnas.strategies import make_strategy

SETTINGS = {
    "plain": PLAIN_REINFORCE,  # Zoph & Le
    "plain + novel_only": {**PLAIN_REINFORCE, "novel_only": True},
    "plain + risk_seeking": {**PLAIN_REINFORCE, "risk_seeking": 0.1},
    "default": {},  # reward model, 5 imagined steps, pool of 512, mixed batches
    "default + pqt_k=4": {"pqt_k": 4},
}


def seconds_per_batch(fields: dict, batches: int, controller: str) -> tuple[float, float]:
    """(mean seconds of tell + ask, mean seconds of think) per batch after the first."""
    space = default_space()
    strategy = make_strategy(make_config(controller=controller, **fields), space)
    rng = np.random.default_rng(0)
    waits, thinks = [], []
    for _ in range(batches):
        start = time.perf_counter()
        tokens = strategy.ask(4).tokens
        asked = time.perf_counter()
        strategy.think()  # the search loop calls it once the batch's children train
        thought = time.perf_counter()
        rewards = rng.random(4) * 0.1 + tokens[:, 0] * 0.01  # something to learn
        strategy.tell(tokens, rewards)
        waits.append(asked - start + time.perf_counter() - thought)
        thinks.append(thought - asked)
    return float(np.mean(waits[1:])), float(np.mean(thinks[1:]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=25)
    p.add_argument("--controller", default="lstm")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    result = {name: seconds_per_batch(f, args.batches, args.controller) for name, f in SETTINGS.items()}
    cores = os.cpu_count()
    print(f"{args.controller} controller, default space, batch 4, load average {load:.1f} on {cores} cores")
    plain = result["plain"][0]
    for name, (wait, think) in result.items():
        print(
            f"  {name:<28} workers wait {wait:.3f} s/batch (+{wait - plain:.3f} over plain);  "
            f"think (while children train) {think:.3f} s/batch"
        )
    if args.json:
        args.json.write_text(json.dumps({"controller": args.controller, "load": load, "seconds": result}))


if __name__ == "__main__":
    main()
