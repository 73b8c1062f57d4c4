"""keras-tuner's getting-started tutorial with one line changed, as a script and as a notebook.

``tests/tutorial/getting_started.py`` is keras-tuner's tutorial as its users run it (a top-level
script, no main guard, one-hot labels and ``categorical_crossentropy``, ``executions_per_trial=2``).
The rlnas version changes ``keras_tuner.RandomSearch(`` to ``rlnas.ReinforceSearch(`` (and the
import); everything else is the tutorial's. What the harness changes is the data only (a shuffled
copy of the bundled MNIST subset instead of the download) and, for time, the sizes. Each trial's
score is then checked against plain Keras: the same architecture fitted on the same arrays with the
same seeds (one per execution) must reach the same validation accuracy.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests" / "tutorial" / "getting_started.py"
ONE_LINE = ("keras_tuner.RandomSearch(", "rlnas.ReinforceSearch(")
"""The line a keras-tuner user changes (with ``import keras_tuner`` -> ``import rlnas``)."""


def _swap(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new)


def tutorial(mnist: Path, *, n_val: int, max_trials: int, executions: int, epochs: int) -> str:
    """The rlnas version of the tutorial on ``mnist`` (a keras-format .npz), at the given sizes."""
    source = _swap(TEMPLATE.read_text(), *ONE_LINE)
    source = _swap(source, "import keras_tuner\n", "import rlnas\n")
    # The harness: the data and the sizes, never the tuner's code.
    load = f'(lambda f: ((f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])))(np.load({str(mnist)!r}))'
    source = _swap(source, "keras.datasets.mnist.load_data()", load)
    source = _swap(source, "10000", str(n_val))
    source = _swap(source, "max_trials=8", f"max_trials={max_trials}")
    source = _swap(source, "executions_per_trial=2", f"executions_per_trial={executions}")
    return _swap(source, "epochs=2", f"epochs={epochs}")


def shuffled_mnist(path: Path, n: int) -> Path:
    """``n`` shuffled digits of the bundled subset in keras.datasets.mnist's format (the bundle is
    sorted by class: a tutorial's ``x[-n:]`` of it would hold classes training never shows)."""
    with importlib.resources.files("rlnas").joinpath("bundled", "mnist_5k.npz").open("rb") as f:
        bundle = np.load(f)
        x, y = bundle["x"], bundle["y"]
    order = np.random.default_rng(0).permutation(len(y))[:n]
    cut = n - n // 10
    np.savez(
        path, x_train=x[order[:cut]], y_train=y[order[:cut]], x_test=x[order[cut:]], y_test=y[order[cut:]]
    )
    return path


def tutorial_arrays(mnist: Path, n_val: int) -> tuple[np.ndarray, ...]:
    """The tutorial's x_train, y_train, x_val, y_val, computed as it computes them."""
    import keras

    with np.load(mnist) as f:
        x, y = f["x_train"], f["y_train"]
    x = np.expand_dims(x, -1).astype("float32") / 255.0
    y = keras.utils.to_categorical(y, 10)
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


def plain_keras_accuracy(arch: dict, seeds: list[int], arrays: tuple[np.ndarray, ...], epochs: int) -> float:
    """The tutorial's model of ``arch`` fitted by plain Keras, once per seed: the mean val accuracy."""
    import keras

    from examples.keras_tuner_model import build_model  # the tutorial's function, verbatim
    from rlnas import HyperParameters

    x_train, y_train, x_val, y_val = arrays
    scores = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        model = build_model(HyperParameters(arch))
        model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
        scores.append(model.evaluate(x_val, y_val, verbose=0, return_dict=True)["accuracy"])
    return float(np.mean(scores))


def trials_of(project: Path) -> list[dict]:
    return [json.loads(line) for line in (project / "trials.jsonl").read_text().splitlines()]


def run_script(source: str, cwd: Path) -> subprocess.CompletedProcess:
    (cwd / "tutorial.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "tutorial.py"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def check_scores(project: Path, arrays: tuple, epochs: int, executions: int) -> list[tuple[float, float]]:
    """Every trial ok, above 0.5 and within 0.02 of plain Keras; (rlnas, plain Keras) per trial."""
    from rlnas.exec.executions import execution_seed

    pairs = []
    for t in trials_of(project):
        assert t["status"] == "ok", t["error"]
        seeds = [execution_seed(t["seed"], i) for i in range(executions)]
        plain = plain_keras_accuracy(t["architecture"], seeds, arrays, epochs)
        pairs.append((t["val_accuracy"], plain))
        assert t["val_accuracy"] > 0.5 and t["val_accuracy"] == pytest.approx(plain, abs=0.02), (t, plain)
        if executions > 1:
            assert len(t["execution_val_accuracy"]) == executions
            assert np.mean(t["execution_val_accuracy"]) == pytest.approx(t["val_accuracy"])
    return pairs


def test_the_rlnas_tutorial_differs_from_keras_tuners_in_the_tuner_line_and_the_import() -> None:
    import difflib

    source = tutorial(Path("mnist.npz"), n_val=10000, max_trials=8, executions=2, epochs=2)
    data = '(lambda f: ((f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])))(np.load(\'mnist.npz\'))'
    kt_source = TEMPLATE.read_text().replace("keras.datasets.mnist.load_data()", data)
    diff = difflib.ndiff(kt_source.splitlines(), source.splitlines())
    changed = [line for line in diff if line[:2] in ("- ", "+ ")]
    assert changed == [
        "- import keras_tuner",
        "+ import rlnas",
        "- tuner = keras_tuner.RandomSearch(",
        "+ tuner = rlnas.ReinforceSearch(",
    ]
    assert "__main__" not in source


@pytest.mark.slow  # a tutorial end to end: TensorFlow in a subprocess and its workers, a minute or two
def test_the_tutorial_script_runs_with_one_line_changed(tmp_path: Path) -> None:
    """The small version: 2 trials of 1 epoch on 540 digits, one execution each."""
    mnist = shuffled_mnist(tmp_path / "mnist.npz", 600)
    source = tutorial(mnist, n_val=140, max_trials=2, executions=1, epochs=1)
    done = run_script(source, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Search space summary" in out and "Results summary" in out and "units_2" in out
    assert out.count("Score: ") == 2 and "Traceback" not in done.stderr
    check_scores(tmp_path / "my_dir" / "helloworld", tutorial_arrays(mnist, 140), epochs=1, executions=1)


@pytest.mark.slow
def test_the_tutorial_script_with_two_executions_per_trial_scores_as_plain_keras(tmp_path: Path) -> None:
    mnist = shuffled_mnist(tmp_path / "mnist.npz", 5000)
    source = tutorial(mnist, n_val=1000, max_trials=4, executions=2, epochs=1)
    done = run_script(source, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    pairs = check_scores(tmp_path / "my_dir" / "helloworld", tutorial_arrays(mnist, 1000), 1, 2)
    print("rlnas vs plain keras:", [(round(a, 4), round(b, 4)) for a, b in pairs])


@pytest.mark.slow
def test_the_tutorial_as_a_notebook_trains_its_function_in_workers(tmp_path: Path, monkeypatch) -> None:
    import nbclient
    import nbformat

    mnist = shuffled_mnist(tmp_path / "mnist.npz", 1000)
    source = tutorial(mnist, n_val=200, max_trials=2, executions=2, epochs=1)
    cells = [c.strip() for c in source.replace("\n\n\ntuner = ", "\n# %%\ntuner = ").split("# %%")]
    cells.append("print('in_process', tuner.in_process)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    client = nbclient.NotebookClient(notebook, timeout=None, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    out = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "in_process False" in out and "Results summary" in out  # children trained in workers
    check_scores(tmp_path / "my_dir" / "helloworld", tutorial_arrays(mnist, 200), epochs=1, executions=2)
