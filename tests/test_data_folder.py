"""A folder of class subfolders of images as a dataset (rlnas.data.folder): listing and every bad
folder as one line without TensorFlow; decoding by Keras once, then from the cache."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from rlnas import data
from rlnas.data import DataSpec, folder
from rlnas.data.folder import ImageInput, parse_image_size
from rlnas.errors import DataError

ROOT = Path(__file__).parent.parent


def _example():
    spec = importlib.util.spec_from_file_location(
        "make_image_folder", ROOT / "examples" / "make_image_folder.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_image_folder = _example()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Each test its own cache of decoded folders."""
    monkeypatch.setenv("RLNAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def digits(tmp_path) -> Path:
    """3 classes x 10 MNIST digits as 28x28 grayscale PNGs (the example's own writer)."""
    make_image_folder.write_folder(tmp_path / "digits", classes=3, per_class=10)
    return tmp_path / "digits"


def spec(path: Path, **kw) -> DataSpec:
    return DataSpec(name=str(path), **kw)


def test_listing_follows_keras_the_sorted_subfolders_and_image_files(digits):
    (digits / "notes.txt").write_text("ignored, as Keras ignores loose files")
    (digits / "1" / "readme.md").write_text("not an image")
    (digits / "2" / "more").mkdir()
    (digits / "2" / "more" / "x.PNG").write_bytes((digits / "2" / "2_0000.png").read_bytes())
    listing = folder.locate(spec(digits))
    assert listing.class_names == ("0", "1", "2")
    assert [len(f) for f in listing.files] == [10, 10, 11] and listing.count == 31
    assert data.check_spec(spec(digits)) == "folder"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: None, r"holds nothing: no class subfolders"),
        (lambda d: (d / "a.png").write_bytes(b"x"), r"holds 1 files but no class subfolders"),
        (lambda d: _images(d / "only", 3), r"has one class \('only'\); need >= 2 class subfolders"),
        (lambda d: [_text(d / c) for c in "ab"], r"holds no images \(\.bmp, \.gif, \.jpeg, \.jpg, \.png\)"),
        (lambda d: (_images(d / "a", 2), (d / "b").mkdir()), r"class subfolder 'b' holds no images"),
    ],
)
def test_a_bad_folder_is_one_line_before_any_image_is_read(tmp_path, make, match):
    d = tmp_path / "data"
    d.mkdir()
    make(d)
    with pytest.raises(DataError, match=match) as info:
        data.check_spec(spec(d))
    assert "\n" not in str(info.value)


def _images(d: Path, n: int) -> None:
    d.mkdir(parents=True)
    for i in range(n):
        (d / f"{i}.png").write_bytes(make_image_folder.png(np.full((4, 4), i, np.uint8)))


def _text(d: Path) -> None:
    d.mkdir()
    (d / "a.txt").write_text("no image")


def test_a_path_that_does_not_exist_is_one_line(tmp_path):
    with pytest.raises(DataError, match=r"dataset .*nowhere does not exist; give a folder"):
        data.check_spec(spec(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("text", "size"),
    [("28x28", (28, 28)), ("32X16", (32, 16)), ("8", (8, 8)), (12, (12, 12)), ([4, 6], (4, 6))],
)
def test_image_size_reads_height_x_width(text, size):
    assert parse_image_size(text) == size


@pytest.mark.parametrize("text", ["0x4", "axb", "4x4x4", -3, [4], True])
def test_a_bad_image_size_is_one_line(text):
    with pytest.raises(DataError, match=r"image_size=.* is invalid; give HEIGHTxWIDTH"):
        parse_image_size(text)


def test_image_settings_belong_to_a_folder(digits):
    with pytest.raises(DataError, match=r"color_mode='cmyk' is invalid; use one of grayscale, rgb, rgba"):
        spec(digits, color_mode="cmyk")
    with pytest.raises(DataError, match=r"color_mode is only used with a folder of images.*'mnist_5k'"):
        data.check_spec(DataSpec(name="mnist_5k", color_mode="rgb"))
    with pytest.raises(DataError, match=r"target is only used with a \.csv table"):
        data.check_spec(spec(digits, target="y"))


def test_a_folder_decodes_once_into_the_same_pixels_then_loads_from_the_cache(digits, cache, monkeypatch):
    ds = data.load(spec(digits, image_size=(28, 28), color_mode="grayscale"))
    assert ds.class_names == ("0", "1", "2") and ds.num_classes == 3
    assert ds.raw_input == ImageInput((28, 28), "grayscale")
    assert ds.x_train.shape[1:] == (28, 28, 1) and (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (
        18,
        6,
        6,
    )
    with np.load(ROOT / "rlnas" / "bundled" / "mnist_5k.npz") as bundled:  # the PNGs' own pixels, scaled
        first_zero = bundled["x"][np.flatnonzero(bundled["y"] == 0)[0]]
    x_all = np.concatenate([ds.x_train, ds.x_val, ds.x_test])[..., 0]
    assert any(np.allclose(x, first_zero / 255) for x in x_all)
    assert len(list((cache / "images").glob("*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folder, "decode", no_decoding)
    again = data.load(spec(digits, image_size=(28, 28), color_mode="grayscale"))
    assert np.array_equal(again.x_train, ds.x_train) and np.array_equal(again.y_test, ds.y_test)
    png = digits / "0" / "0_0000.png"
    os.utime(png, ns=(png.stat().st_atime_ns, png.stat().st_mtime_ns + 10**9))  # a changed folder
    with pytest.raises(AssertionError, match="decoded again"):
        data.load(spec(digits, image_size=(28, 28), color_mode="grayscale"))


def test_rgb_resizes_and_a_corrupt_image_is_one_line(digits):
    ds = data.load(spec(digits, image_size=(8, 10)))  # rgb is the default
    assert ds.x_train.shape[1:] == (8, 10, 3) and ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    (digits / "1" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"cannot decode the images of folder") as info:
        data.load(spec(digits, image_size=(8, 10)))
    assert "\n" not in str(info.value)


def test_a_cache_that_cannot_be_written_is_one_line(digits, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RLNAS_CACHE_DIR", str(blocker))
    with pytest.raises(DataError, match=r"cannot cache the decoded images .*set RLNAS_CACHE_DIR") as info:
        data.load(spec(digits, image_size=(8, 8)))
    assert "\n" not in str(info.value)
