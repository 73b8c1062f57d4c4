"""What a tf.data pipeline given to ``ReinforceSearch.search`` costs: written once per search, and the
share of a child's time that is data loading.

What it measures
    A 60,000-image training pipeline (Fashion-MNIST's train set when it is on the machine, else
    60,000 synthetic 28x28 uint8 images of 10 classes: the JSON says which) plus 10,000 for
    validation, given as ``tf.data`` pipelines of batches of 128 (uint8 -> float32 / 255 in a
    ``map``). The pipeline is a generator of batches that counts its passes, so the count of
    times the user's pipeline ran is exact. A search of ``--trials`` children (1 epoch each,
    ``--workers`` worker processes) runs on it; afterwards the run directory's files are counted.

    Then, in this process, one child of the searched architecture is trained three ways with the
    same seed: on the in-memory batches (``cache()``d and warmed: no loading at all), on the run's
    saved copy as every child reads it (``tf.data.Dataset.load``, lazily from disk), and the
    saved copy is iterated alone (no model) to time opening and reading it. The two fits alternate,
    three times each, and the fastest of each counts (the first fit of a process pays more).

Why
    The target: the dataset is written once per search and not once per child, and a child's data
    loading is at most 5% of its time.

How to read it
    ``pipeline passes``: how many times the user's pipeline was read (1: by the save). ``data
    files`` and ``data bytes``: what the run's ``data/`` holds after all the children (written
    once, before the first). ``loading share`` = (fit on the saved copy - fit in memory) / fit on
    the saved copy: what reading from disk adds to a child's fit. ``open + read alone``: opening
    the saved copy and reading one epoch of it without a model, as a share of that fit (an upper
    bound: in ``fit`` it overlaps the training through ``prefetch``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import emit, parser, quiet, table

N_TRAIN, N_VAL, BATCH = 60_000, 10_000, 128
REPEATS = 3


def images() -> tuple[str, tuple]:
    """(source, ((x_train, y_train), (x_val, y_val))) as uint8 images and integer labels."""
    import numpy as np

    from rlnas import data
    from rlnas.errors import DataError

    try:
        ds = data.load(data.DataSpec("fashion_mnist", val_fraction=0.1))
        x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
        y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
        x = (x * 255).round().astype(np.uint8)
        return "fashion_mnist", (
            (x[:N_TRAIN], y[:N_TRAIN]),
            (x[N_TRAIN : N_TRAIN + N_VAL], y[N_TRAIN : N_TRAIN + N_VAL]),
        )
    except DataError:
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, N_TRAIN + N_VAL)
        x = rng.integers(0, 60, (N_TRAIN + N_VAL, 28, 28), dtype=np.uint8)
        for c in range(10):  # a learnable class signal: a bright row per class
            x[y == c, 2 + 2 * c, :] = 200
        return "synthetic", ((x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:]))


def pipeline(x, y, passes: list[int]):
    """The user's pipeline: batches from a generator (counting its passes), scaled in a map."""
    import tensorflow as tf

    def batches():
        passes[0] += 1
        for i in range(0, len(x), BATCH):
            yield x[i : i + BATCH], y[i : i + BATCH]

    signature = (tf.TensorSpec((None, 28, 28), tf.uint8), tf.TensorSpec((None,), tf.int64))
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32) / 255, b)).prefetch(tf.data.AUTOTUNE)


def build(hp):
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [64, 128, 256]), activation="relu"),
            keras.layers.Dropout(hp.Choice("dropout", [0.0, 0.2])),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_seconds(arch: dict, seed: int, train) -> float:
    import keras

    from rlnas import HyperParameters

    keras.utils.set_random_seed(seed)
    model = build(HyperParameters(arch))
    t = time.perf_counter()
    model.fit(train, epochs=1, verbose=0)
    return time.perf_counter() - t


def main() -> None:
    p = parser("tfdata_cost", __doc__, "tfdata/cost.json")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    quiet()
    import tensorflow as tf

    from rlnas import ReinforceSearch
    from rlnas.data import saved

    source, ((x, y), (xv, yv)) = images()
    passes, val_passes = [0], [0]
    with tempfile.TemporaryDirectory(prefix="rlnas-tfdata-") as tmp:
        tuner = ReinforceSearch(
            build,
            max_trials=args.trials,
            archs_per_update=2,
            workers=args.workers,
            directory=tmp,
            project_name="run",
            seed=0,
        )
        t0, started = time.perf_counter(), time.time()
        tuner.search(
            pipeline(x, y, passes), validation_data=pipeline(xv, yv, val_passes), epochs=1, verbose=0
        )
        wall = time.perf_counter() - t0
        run = Path(tmp) / "run"
        files = [f for f in (run / "data").rglob("*") if f.is_file()]
        written = max(f.stat().st_mtime for f in files) - started  # the last write into data/
        trials = tuner._trials
        best = max((t for t in trials if t.ok), key=lambda t: t.metrics["val_accuracy"])
        child = sum(t.child_seconds for t in trials) / len(trials)
        child_fit = sum(t.fit_seconds for t in trials) / len(trials)

        dataset = saved.read(run / "data")
        in_memory = tf.data.Dataset.from_tensor_slices((x.astype("float32") / 255, y)).batch(BATCH).cache()
        for _ in in_memory:  # warm the cache: no loading left in this fit
            pass
        fits: dict[str, list[float]] = {"memory": [], "disk": []}
        for _ in range(REPEATS):  # alternated, the fastest of each: the first fit of a process pays more
            fits["memory"].append(fit_seconds(best.architecture, best.seed, in_memory))
            fits["disk"].append(fit_seconds(best.architecture, best.seed, dataset.split("train")))
        memory, on_disk = min(fits["memory"]), min(fits["disk"])
        t = time.perf_counter()
        for _ in dataset.split("train"):
            pass
        read_alone = time.perf_counter() - t
        results = {
            "source": source,
            "train_images": N_TRAIN,
            "val_images": N_VAL,
            "trials": len(trials),
            "workers": args.workers,
            "search_wall_seconds": wall,
            "pipeline_passes": {"train": passes[0], "val": val_passes[0]},
            "data_files": len(files),
            "data_bytes": sum(f.stat().st_size for f in files),
            "data_last_written_seconds_after_start": written,
            "mean_child_seconds": child,
            "mean_child_fit_seconds": child_fit,
            "fits_seconds": fits,
            "fit_in_memory_seconds": memory,
            "fit_saved_copy_seconds": on_disk,
            "loading_share": (on_disk - memory) / on_disk,
            "open_and_read_alone_seconds": read_alone,
            "open_and_read_share": read_alone / on_disk,
        }
    rows = [
        ["images", f"{source}: {N_TRAIN:,} train + {N_VAL:,} val, 28x28, batches of {BATCH}"],
        ["search", f"{len(trials)} children, 1 epoch, {args.workers} worker(s), {wall:.1f} s"],
        ["pipeline passes (train, val)", f"{passes[0]}, {val_passes[0]}"],
        ["data files / bytes in the run", f"{len(files)} / {results['data_bytes'] / 2**20:.1f} MiB"],
        ["last write into data/", f"{written:.1f} s after the search started, of {wall:.1f} s"],
        ["a child (mean): whole / fit", f"{child:.2f} s / {child_fit:.2f} s"],
        ["fit, in memory (cached), fastest of 3", f"{memory:.2f} s"],
        ["fit, on the saved copy, fastest of 3", f"{on_disk:.2f} s"],
        ["loading share of the fit", f"{100 * results['loading_share']:.1f}%"],
        [
            "open + read one epoch alone",
            f"{read_alone:.2f} s ({100 * results['open_and_read_share']:.1f}% of the fit)",
        ],
    ]
    emit(args.out, "tfdata_cost", table(["measure", "value"], rows), results)
    args.out.with_suffix(".md").write_text(table(["measure", "value"], rows) + "\n")


if __name__ == "__main__":
    main()
