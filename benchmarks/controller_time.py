"""Controller seconds per batch of 4 on the default search space (issue #19: at most 0.5 s added).

Runs each setting for ``--batches`` ask/tell rounds against a synthetic reward (no child trains) and
reports the mean seconds of ask + tell per batch, the first batch (the update's trace) left out, and
what the setting adds to plain REINFORCE. The default LSTM controller unless ``--controller``.

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

from rlnas.config import SearchConfig
from rlnas.space import default_space
from rlnas.strategies import make_strategy

SETTINGS = {
    "plain": {},
    "novel_only": {"novel_only": True},
    "risk_seeking": {"risk_seeking": 0.1},
    "model_steps=5": {"novel_only": True, "model_steps": 5, "explore_mix": 0.25, "model_trees": 8},
    "model_steps=5,pool=512": {
        "novel_only": True,
        "model_steps": 5,
        "explore_mix": 0.25,
        "model_trees": 8,
        "model_pool": 512,
    },
}


def seconds_per_batch(fields: dict, batches: int, controller: str) -> float:
    space = default_space()
    strategy = make_strategy(SearchConfig(controller=controller, **fields), space)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        tokens = strategy.ask(4).tokens
        rewards = rng.random(4) * 0.1 + tokens[:, 0] * 0.01  # something to learn
        strategy.tell(tokens, rewards)
        times.append(time.perf_counter() - start)
    return float(np.mean(times[1:]))


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
    for name, s in result.items():
        print(f"  {name:<24} {s:.3f} s/batch   (+{s - result['plain']:.3f} s over plain)")
    if args.json:
        args.json.write_text(json.dumps({"controller": args.controller, "load": load, "seconds": result}))


if __name__ == "__main__":
    main()
