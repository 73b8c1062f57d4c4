"""A CSV table as a dataset (rlnas.data.table): column kinds, the task, encoders fitted on train only,
and every bad table as one line. Pure numpy and csv: nothing here imports TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlnas import data
from rlnas.data import DataSpec
from rlnas.data.table import CATEGORICAL, NUMERIC, REGRESSION, TableInput
from rlnas.errors import DataError


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(str(c) for c in r) for r in [header, *rows]) + "\n")
    return path


@pytest.fixture
def people(tmp_path: Path) -> Path:
    """50 rows: a numeric, a text and a float column; a text class and a float target."""
    rng = np.random.default_rng(0)
    rows = [
        [int(rng.integers(20, 60)), rng.choice(["red", "green", "blue"]), f"{rng.normal():.3f}",
         rng.choice(["yes", "no"]), f"{rng.normal() * 10 + 100:.2f}", int(rng.integers(0, 3))]
        for _ in range(50)
    ]  # fmt: skip
    return write_csv(tmp_path / "people.csv", ["age", "colour", "score", "label", "price", "grade"], rows)


def load(path: Path, target: str, **kw) -> data.Dataset:
    return data.load(DataSpec(name=str(path), target=target, **kw))


def test_text_target_is_classification_with_its_class_names(people):
    ds = load(people, "label")
    assert ds.num_classes == 2 and ds.class_names == ("no", "yes")
    assert ds.y_train.dtype == np.int64 and set(ds.y_train) <= {0, 1}
    table = ds.raw_input
    assert isinstance(table, TableInput) and table.target == "label" and table.task == "classification"
    kinds = {c.name: c.kind for c in table.columns}
    assert kinds == {
        "age": NUMERIC,
        "colour": CATEGORICAL,
        "score": NUMERIC,
        "price": NUMERIC,
        "grade": NUMERIC,
    }
    assert ds.x_train.shape == (30, 5) and ds.x_train.dtype == np.float32
    assert (len(ds.x_val), len(ds.x_test)) == (10, 10)


def test_integer_target_is_classification_float_target_is_regression(people):
    grade = load(people, "grade")
    assert grade.num_classes == 3 and grade.class_names == ("0", "1", "2")
    price = load(people, "price")
    assert price.num_classes == 0 and price.class_names == ()
    assert price.raw_input.task == REGRESSION and price.y_train.dtype == np.float32
    assert price.task == REGRESSION and grade.task == "classification"


def test_encoders_are_fitted_on_the_train_split_only(people):
    ds = load(people, "label")
    columns = {c.name: c for c in ds.raw_input.columns}
    age = ds.x_train[:, 0]  # a numeric column's raw values are kept; its statistics are train's
    assert columns["age"].mean == pytest.approx(float(age.mean())) and columns[
        "age"
    ].variance == pytest.approx(float(age.var()), rel=1e-5)
    colour = columns["colour"]
    assert sorted(colour.vocabulary) == ["blue", "green", "red"] and colour.width == 4
    codes = ds.x_train[:, 1]  # index 1..k into the vocabulary, most frequent first
    counts = [int((codes == i).sum()) for i in range(1, 4)]
    assert counts == sorted(counts, reverse=True) and codes.min() >= 1


def test_a_value_unseen_in_training_gets_index_zero(tmp_path):
    rows = [[f"c{i % 3}", i % 2] for i in range(20)] + [["rare", 0]]
    path = write_csv(tmp_path / "t.csv", ["kind", "y"], rows)
    ds = load(path, "y", val_fraction=0.3, test_fraction=0.3)
    vocabulary = ds.raw_input.columns[0].vocabulary
    x_all = np.concatenate([ds.x_train, ds.x_val, ds.x_test])[:, 0]
    assert ("rare" in vocabulary) == (0 not in x_all)  # seen in train: indexed; else 0


def test_train_fraction_keeps_the_encoders_and_the_split(people):
    full, low = load(people, "label"), load(people, "label", train_fraction=0.5)
    assert full.raw_input == low.raw_input  # the replay (train_fraction 1) builds the same encoder
    assert len(low.x_train) == 15 and np.array_equal(low.x_val, full.x_val)
    assert np.array_equal(load(people, "label").x_test, full.x_test)  # seeded: the same every time


def test_describe_records_the_columns_as_json(people):
    record = data.describe(load(people, "label"))
    text = json.dumps(record)
    assert record["table"]["target"] == "label" and record["class_names"] == ["no", "yes"]
    assert "vocabulary" in text and record["train"] == 30


@pytest.mark.parametrize(
    ("header", "rows", "target", "match"),
    [
        (["a", "b", "y"], [[1, 2, 0], [3, 4, 1]], "z", r"has no column 'z'; its columns: a, b, y"),
        (["a", "label"], [[1, 0], [2, 1]], "lable", r"no column 'lable' \(did you mean 'label'\?\)"),
        (["a", "y"], [[1, 0], ["x", 1], [2, 0]], "y",
         r"column 'a' mixes numbers and text \(line 2: '1', line 3: 'x'\)"),
        (["a", "y"], [[1, 0.5], [2, "nan"], [3, 1.5]], "y", r"target: column 'y' is 'nan' at line 3"),
        (["a", "y"], [[1, 0.5], [2, "inf"], [3, 1.5]], "y", r"column 'y' is 'inf' at line 3"),
        (["a", "y"], [[1, "cat"], [2, "cat"]], "y", r"target 'y' has one class \('cat'\); need >= 2"),
        (["a", "y"], [[1, 0], ["", 1], [3, 0]], "y", r"column 'a' is empty at line 3.*fill or drop"),
        (["a", "a", "y"], [[1, 2, 0]], "y", r"two columns named 'a'"),
        (["y"], [[0], [1]], "y", r"need the target and >= 1 input column"),
        (["a", "y"], [], "y", r"has a header but no rows"),
        (["a", "y"], [[1, 0], [2]], "y", r"line 3 has 1 cells, the header 2"),
    ],
)  # fmt: skip
def test_a_bad_table_is_one_line(tmp_path, header, rows, target, match):
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(DataError, match=match) as info:
        load(path, target)
    assert "\n" not in str(info.value)


def test_a_table_needs_a_target_and_only_a_table_takes_one(people, tmp_path):
    with pytest.raises(DataError, match=r"needs --target COLUMN, the column to predict: one of age, colour"):
        data.check_spec(DataSpec(name=str(people)))
    with pytest.raises(DataError, match=r"target is only used with a \.csv table.*'mnist_5k'"):
        data.check_spec(DataSpec(name="mnist_5k", target="y"))
    with pytest.raises(DataError, match=r"table .*missing\.csv does not exist"):
        data.check_spec(DataSpec(name=str(tmp_path / "missing.csv"), target="y"))
    with pytest.raises(DataError, match=r"image_size is only used with a folder of images"):
        data.check_spec(DataSpec(name=str(people), target="label", image_size=(8, 8)))
    assert data.check_spec(DataSpec(name=str(people), target="label")) == "table"


def test_reading_a_table_imports_no_tensorflow(people):
    code = (
        "import sys; from rlnas import data; "
        f"data.load(data.DataSpec(name={str(people)!r}, target='label')); "
        "assert not [m for m in sys.modules if m.startswith(('tensorflow', 'keras'))]"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
