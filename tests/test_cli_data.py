"""``rlnas search --data DIR`` and ``--data table.csv --target COLUMN`` from the command line: every bad
folder or table is one line before anything is written; the examples run end to end from a fresh
copy of the tracked files, to a replayed ``.keras`` model that a fresh process loads and feeds raw
images or raw rows, scoring what replay scored on the held-out test split."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas.cli import main
from rlnas.data import DataSpec, split_rows

ROOT = Path(__file__).parent.parent


def _error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("rlnas: error: ") and err.count("\n") == 1, err
    return err


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _folder(root: Path, classes: dict[str, int], name: str = "images.png") -> str:
    from examples.make_image_folder import png

    for label, count in classes.items():
        (root / "dir" / label).mkdir(parents=True)
        for i in range(count):
            (root / "dir" / label / f"{i}-{name}").write_bytes(png(np.full((4, 4), 9 * i, np.uint8)))
    return str(root / "dir")


TABLE = "a,y\n1,0\n"
BAD = {
    "empty-folder": (
        lambda p: (p / "dir").mkdir() or str(p / "dir"), [], r"holds nothing: no class subfolders",
    ),
    "one-class": (lambda p: _folder(p, {"cat": 3}), [], r"has one class \('cat'\); need >= 2"),
    "no-such-path": (lambda p: str(p / "nowhere"), [], r"nowhere does not exist; give a folder"),
    "non-images": (lambda p: _folder(p, {"a": 2, "b": 2}, "x.txt"), [], r"holds no images \(\.bmp"),
    "no-target-column": (
        lambda p: _csv(p / "t.csv", "a,label\n1,x\n2,y\n"), ["--target", "lable"],
        r"no column 'lable' \(did you mean 'label'\?\)",
    ),
    "csv-without-target": (lambda p: _csv(p / "t.csv", TABLE), [], r"needs --target COLUMN.*one of a, y"),
    "target-without-csv": (
        lambda p: "mnist_5k", ["--target", "y"], r"target is only used with a \.csv table",
    ),
    "mixed-types": (
        lambda p: _csv(p / "t.csv", "a,y\n1,0\nx,1\n2,0\n"), ["--target", "y"],
        r"column 'a' mixes numbers and text \(line 2: '1', line 3: 'x'\)",
    ),
    "nan-target": (
        lambda p: _csv(p / "t.csv", "a,y\n1,0.5\n2,nan\n3,1.5\n"), ["--target", "y"],
        r"column 'y' is 'nan' at line 3",
    ),
    "one-class-table": (
        lambda p: _csv(p / "t.csv", "a,y\n1,cat\n2,cat\n"), ["--target", "y"], r"target 'y' has one class",
    ),
    "image-size-with-table": (
        lambda p: _csv(p / "t.csv", TABLE), ["--target", "y", "--image-size", "8x8"],
        r"image_size is only used with a folder of images",
    ),
    "bad-image-size": (
        lambda p: _folder(p, {"a": 1, "b": 1}), ["--image-size", "8by8"], r"image_size='8by8'",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("make", "more", "message"), BAD.values(), ids=BAD.keys())
def test_bad_folder_or_table_is_one_line_before_anything_is_written(
    capsys, tmp_path, monkeypatch, make, more, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    err = _error(capsys, "search", "--data", make(tmp_path), *more)
    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists()


def test_a_table_is_searched_by_the_mlp_only(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i},{i % 2}\n" for i in range(20))
    (tmp_path / "c.toml").write_text('[space]\nmodel = "conv"\n')
    err = _error(
        capsys,
        "search",
        "--config",
        "c.toml",
        "--data",
        _csv(tmp_path / "t.csv", "a,y\n" + rows),
        "--target",
        "y",
    )
    assert "a table's columns are read by the built-in mlp model, not 'conv'" in err
    assert not (tmp_path / "runs").exists()


def test_data_and_dataset_are_one_setting_as_in_the_config_file(tmp_path, monkeypatch):
    from rlnas.cli import build_parser
    from rlnas.cli._common import flag_values

    args = build_parser().parse_args(["search", "--data", "photos", "--image-size", "28x28"])
    assert flag_values(args) == {"dataset": "photos", "image_size": "28x28"}
    from rlnas.config import load_config

    (tmp_path / "c.toml").write_text('[search]\ndataset = "t.csv"\ntarget = "y"\n')
    config, _, _ = load_config(tmp_path / "c.toml")
    assert config.data_spec() == DataSpec(name="t.csv", target="y")


# -- the examples, end to end ----------------------------------------------------------------------
def fresh_copy(tmp_path: Path) -> Path:
    """The tracked files of rlnas/, envs/ and examples/ alone (no caches, no runs): what a clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "rlnas", "envs", "examples"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    clone = tmp_path / "clone"
    for name in filter(None, listed.split("\0")):
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    return clone


def _run(clone: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(clone), "RLNAS_CACHE_DIR": str(cwd / "cache")}
    done = subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


SEARCH = (
    "--trials",
    "2",
    "--archs-per-update",
    "2",
    "--epochs",
    "1",
    "--replay-epochs",
    "1",
    "--workers",
    "1",
)


def _replayed(run: Path) -> tuple[Path, float]:
    (row,) = json.loads((run / "replay.json").read_text())
    return Path(row["model_path"]), row["test_accuracy"]


@pytest.mark.slow
def test_image_folder_example_to_a_replayed_model_that_takes_raw_images(tmp_path):
    clone = fresh_copy(tmp_path)
    _run(clone, str(clone / "examples" / "make_image_folder.py"), "digits", "--per-class", "15", cwd=tmp_path)
    _run(
        clone, "-m", "rlnas.cli", "search", "--data", "digits", "--image-size", "28x28", "--color-mode",
        "grayscale", *SEARCH, "--name", "f", cwd=tmp_path,
    )  # fmt: skip
    run = tmp_path / "runs" / "f"
    record = json.loads((run / "data.json").read_text())
    assert record["class_names"] == ["0", "1", "2"] and record["image"]["color_mode"] == "grayscale"
    model, test_accuracy = _replayed(run)
    test_rows = split_rows(45, DataSpec(name="digits"))[0].tolist()  # Keras reads class by class
    check = (
        "import keras, numpy as np\n"
        "ds = keras.utils.image_dataset_from_directory('digits', color_mode='grayscale', image_size=(28, 28),"
        " shuffle=False, batch_size=None)\n"
        "x = np.stack([x for x, _ in ds]); y = np.array([y for _, y in ds])\n"
        f"rows = {test_rows}\n"
        f"p = keras.models.load_model({str(model)!r}).predict(x[rows], verbose=0)\n"
        "print(p.shape, float((p.argmax(1) == y[rows]).mean()))\n"
    )
    out = _run(clone, "-c", check, cwd=tmp_path).stdout.split()
    assert out[-3:-1] == ["(9,", "3)"] and float(out[-1]) == pytest.approx(test_accuracy)


@pytest.mark.slow
def test_table_to_a_replayed_model_that_takes_raw_rows(tmp_path):
    clone = fresh_copy(tmp_path)
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], 120)
    size = rng.normal(size=120).round(3)
    label = np.where((colour == "red") | (size > 1), "big", "small")
    rows = "".join(f"{c},{s},{lab}\n" for c, s, lab in zip(colour, size, label, strict=True))
    (tmp_path / "t.csv").write_text("colour,size,label\n" + rows)
    _run(
        clone,
        "-m",
        "rlnas.cli",
        "search",
        "--data",
        "t.csv",
        "--target",
        "label",
        *SEARCH,
        "--name",
        "t",
        cwd=tmp_path,
    )
    run = tmp_path / "runs" / "t"
    assert json.loads((run / "data.json").read_text())["table"]["columns"][0]["kind"] == "categorical"
    model, test_accuracy = _replayed(run)
    test_rows = split_rows(120, DataSpec(name="t.csv"))[0]
    check = (
        "import keras, numpy as np, csv\n"
        "rows = list(csv.DictReader(open('t.csv')))\n"
        f"test = [rows[i] for i in {test_rows.tolist()}]\n"
        "raw = {'colour': np.array([r['colour'] for r in test], dtype=object),"
        " 'size': np.array([float(r['size']) for r in test])}\n"
        f"p = keras.models.load_model({str(model)!r}).predict(raw, verbose=0)\n"
        "y = np.array([['big', 'small'].index(r['label']) for r in test])\n"
        "print(float((p.argmax(1) == y).mean()))\n"
    )
    assert float(_run(clone, "-c", check, cwd=tmp_path).stdout) == pytest.approx(test_accuracy)


@pytest.mark.slow
def test_diabetes_example_is_a_regression_search_from_the_cli(tmp_path):
    pytest.importorskip("sklearn")
    clone = fresh_copy(tmp_path)
    _run(clone, str(clone / "examples" / "diabetes_csv.py"), "diabetes.csv", cwd=tmp_path)
    search = _run(
        clone, "-m", "rlnas.cli", "search", "--data", "diabetes.csv", "--target", "target", "--objective",
        "val_mae", *SEARCH, "--name", "d", cwd=tmp_path,
    )  # fmt: skip
    run = tmp_path / "runs" / "d"
    assert json.loads((run / "data.json").read_text())["table"]["task"] == "regression"
    model, _ = _replayed(run)
    check = (
        "import keras, numpy as np, csv\n"
        "rows = list(csv.DictReader(open('diabetes.csv')))[:5]\n"
        "raw = {k: np.array([r[k] for r in rows], dtype=object) if k == 'sex' else"
        " np.array([float(r[k]) for r in rows]) for k in rows[0] if k != 'target'}\n"
        f"print(keras.models.load_model({str(model)!r}).predict(raw, verbose=0).shape)\n"
    )
    assert _run(clone, "-c", check, cwd=tmp_path).stdout.strip() in ("(5, 1)", "(5,)")
    (row,) = json.loads((run / "replay.json").read_text())
    assert row["metric"] == "mae" and row["test_score"] > 0 and "test_mae" in search.stdout
