"""CPU cost and peak memory of the conv supernet on the Fashion-MNIST space (examples/conv_fashion.toml).

Measures, on 28x28x1 inputs at batch 128: the CPU time of ``--steps`` shared-weight train steps
through paths sampled uniformly (one token per decision, uniform over its values), the CPU time of
scoring one path on 10,000 images, the peak RSS of the process, and, for comparison, one epoch of a
stand-alone child of the same space (Keras, Adam) on 12,000 images (the space's 20% of Fashion-MNIST's
training set). Inputs are MNIST images from the bundled sample, tiled: the cost does not depend on
the pixels.

    python benchmarks/supernet_speed.py --out /tmp/supernet_speed.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="train steps to time")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--child", action=argparse.BooleanOptionalAction, default=True, help="time a child epoch too"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    from rlnas.policy.supernet import estimate_bytes, make_supernet
    from rlnas.space.toml import space_from_dict

    space = space_from_dict(tomllib.loads((ROOT / "examples/conv_fashion.toml").read_text())["space"])
    data = np.load(ROOT / "rlnas/bundled/mnist_5k.npz")
    x = np.tile(data["x"].astype(np.float32) / 255, (3, 1, 1))[:, :, :, None]
    y = np.tile(data["y"].astype(np.int64), 3)
    rng = np.random.default_rng(0)
    net = make_supernet(space, (28, 28, 1), 10, seed=0, batch_size=args.batch_size)
    paths = [np.array([rng.integers(d.size) for d in space.decisions]) for _ in range(args.steps + 1)]
    net.train_step(x[: args.batch_size], y[: args.batch_size], paths[0])  # trace once, outside the timing
    start, wall = time.process_time(), time.perf_counter()
    for tokens in paths[1:]:
        i = rng.integers(0, len(x) - args.batch_size)
        net.train_step(x[i : i + args.batch_size], y[i : i + args.batch_size], tokens)
    result = {
        "space": "examples/conv_fashion.toml",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "train_cpu_s": round(time.process_time() - start, 2),
        "train_wall_s": round(time.perf_counter() - wall, 2),
        "estimate_mb": round(estimate_bytes(space, (28, 28, 1), 10, args.batch_size) / 2**20, 1),
        "param_mb": round(net.param_bytes() / 2**20, 1),
    }
    net.accuracy(x[:512], y[:512], paths[0])  # trace the scoring graph
    start = time.process_time()
    result["score_10k_cpu_s"] = round(
        time.process_time() - start + _score(net, x[:10000], y[:10000], paths[0]), 2
    )
    result["peak_rss_mb_supernet"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.child:
        result |= _child_epoch(space, x[:12000], y[:12000], args.batch_size, rng)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def _score(net, x, y, tokens) -> float:
    start = time.process_time()
    net.accuracy(x, y, tokens)
    return time.process_time() - start


def _child_epoch(space, x, y, batch_size, rng) -> dict:
    """One epoch of a stand-alone child drawn from the space (the same draw every run)."""
    import keras

    from rlnas.models import conv

    arch = space.decode([int(rng.integers(d.size)) for d in space.decisions])
    model = conv.build(arch, (28, 28, 1), 10)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)  # trace
    start = time.process_time()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return {
        "child_arch": {k: v for k, v in arch.items()},
        "child_epoch_12k_cpu_s": round(time.process_time() - start, 2),
    }


if __name__ == "__main__":
    main()
