"""A folder of class subfolders of images -> arrays for a Dataset (``rlnas search --data DIR``).

The folder is read as ``keras.utils.image_dataset_from_directory`` reads it, by that function
itself: the classes are the sorted subfolder names, the images are the files ending in .bmp, .gif,
.jpeg, .jpg or .png anywhere below a class subfolder, each resized (bilinear) to ``image_size`` in
``color_mode``. Files directly in the folder are ignored, as Keras ignores them.

The decoded images are held in memory as uint8 arrays, so the children use the arrays path that
workers, Ray, the cache and replay already share. Decoding needs TensorFlow and takes about a
millisecond an image, so it is done once per folder contents: the arrays are cached in
``$RLNAS_CACHE_DIR`` (default ``~/.cache/rlnas``) under a digest of every image's path, size and
modification time and the image settings. The search's check decodes; its workers, replay and a
resumed run read the cache (a changed folder is decoded again). A cache that cannot be written is
an error, not a decode per worker. Listing the folder, which every
error here needs, never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.errors import DataError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""What ``keras.utils.image_dataset_from_directory`` reads; other files are skipped."""
DEFAULT_IMAGE_SIZE = (64, 64)
"""Keras's own default is 256x256; a child trains on every pixel, so a search starts smaller."""
DEFAULT_COLOR_MODE = "rgb"
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
_CACHE_VERSION = "1"


@dataclass(frozen=True)
class ImageInput:
    """What a raw sample is: an image of ``image_size`` in ``color_mode``, pixel values 0-255 as
    ``image_dataset_from_directory`` yields them (the Dataset holds them scaled to [0, 1])."""

    image_size: tuple[int, int]
    color_mode: str


@dataclass(frozen=True)
class Listing:
    """The folder as Keras will read it: class names and each class's image files (sorted)."""

    directory: Path
    class_names: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]

    @property
    def count(self) -> int:
        return sum(len(f) for f in self.files)


def parse_image_size(text: str | int | list | tuple) -> tuple[int, int]:
    """``"28x28"``, ``"28"``, ``28`` or ``[28, 28]`` -> (28, 28); anything else is a one-line DataError."""
    if isinstance(text, int) and not isinstance(text, bool):
        parts = [text, text]
    elif isinstance(text, list | tuple):
        parts = list(text)
    else:
        parts = str(text).lower().replace("*", "x").split("x")
        parts = parts * 2 if len(parts) == 1 else parts
        try:
            parts = [int(p) for p in parts]
        except ValueError:
            parts = []
    if len(parts) != 2 or not all(type(p) is int and p > 0 for p in parts):
        raise DataError(f"image_size={text!r} is invalid; give HEIGHTxWIDTH in pixels, e.g. 28x28")
    return parts[0], parts[1]


def _images_below(directory: Path) -> tuple[Path, ...]:
    """Image files anywhere below ``directory``, sorted, as Keras's directory walk finds them."""
    found = []
    for root, dirs, names in os.walk(directory, followlinks=False):
        dirs.sort()
        found += [Path(root) / n for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)]
    return tuple(found)


def locate(spec: Any) -> Listing:
    """List the folder ``spec.name`` and check it can be a classification dataset (no image read).

    Raises:
        DataError: no class subfolders, one class, a class without images, or no images at all.
    """
    directory = Path(spec.name).expanduser()
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    where = f"folder {spec.name}"
    if not classes:
        loose = sum(1 for p in directory.iterdir() if p.is_file())
        what = f"{loose} files but no" if loose else "nothing: no"
        raise DataError(f"{where} holds {what} class subfolders; put each class's images in a subfolder")
    files = tuple(_images_below(directory / c) for c in classes)
    total = sum(len(f) for f in files)
    if total == 0:
        extensions = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"{where} holds no images ({extensions}) in its subfolders {', '.join(classes[:5])}")
    if len(classes) < 2:
        raise DataError(f"{where} has one class ({classes[0]!r}); need >= 2 class subfolders")
    empty = [c for c, f in zip(classes, files, strict=True) if not f]
    if empty:
        raise DataError(f"{where}: class subfolder {empty[0]!r} holds no images; add some or remove it")
    return Listing(directory, tuple(classes), files)


def image_settings(spec: Any) -> ImageInput:
    """The spec's image size and colour mode, the defaults filled in."""
    return ImageInput(spec.image_size or DEFAULT_IMAGE_SIZE, spec.color_mode or DEFAULT_COLOR_MODE)


def cache_dir() -> Path:
    """Where decoded folders are kept: $RLNAS_CACHE_DIR, else $XDG_CACHE_HOME/rlnas, else ~/.cache/rlnas."""
    if os.environ.get("RLNAS_CACHE_DIR"):
        return Path(os.environ["RLNAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlnas"


def fingerprint(listing: Listing, image: ImageInput) -> str:
    """A digest of what the decoded arrays depend on: every file's path, size and mtime, the settings."""
    h = hashlib.sha256(f"{_CACHE_VERSION} {image.image_size} {image.color_mode}".encode())
    for name, files in zip(listing.class_names, listing.files, strict=True):
        h.update(f"\0class {name}".encode())
        for f in files:
            st = f.stat()
            h.update(f"\0{f.relative_to(listing.directory)} {st.st_size} {st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def decode(listing: Listing, image: ImageInput) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 (n, H, W, C), y int64) read by ``keras.utils.image_dataset_from_directory``.

    Raises:
        DataError: a file that TensorFlow cannot decode (its first line of reason).
    """
    import keras

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its "Found N files" line is ours to say
            ds = keras.utils.image_dataset_from_directory(
                str(listing.directory),
                labels="inferred",
                label_mode="int",
                class_names=list(listing.class_names),
                color_mode=image.color_mode,
                batch_size=256,
                image_size=image.image_size,
                shuffle=False,
            )
            xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    except Exception as exc:  # TensorFlow's decode errors are long; the first line says which
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise DataError(f"cannot decode the images of folder {listing.directory} ({reason})") from None
    x = np.clip(np.rint(np.concatenate(xs)), 0, 255).astype(np.uint8)
    return x, np.concatenate(ys).astype(np.int64)


def decoded(listing: Listing, image: ImageInput) -> tuple[np.ndarray, np.ndarray]:
    """The folder's arrays from the cache, or decoded now and cached.

    Raises:
        DataError: the cache cannot be written. Every worker would decode the folder again (and a
            worker forked from a template must not start TensorFlow's runtime), so that is refused.
    """
    path = cache_dir() / "images" / f"{fingerprint(listing, image)}.npz"
    with contextlib.suppress(OSError, ValueError, KeyError), np.load(path, allow_pickle=False) as cached:
        return cached["x"], cached["y"]
    x, y = decode(listing, image)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, x=x, y=y)
        os.replace(tmp, path)  # atomic: a worker reading at the same time sees all of it or nothing
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DataError(
            f"cannot cache the decoded images of folder {listing.directory} in {path.parent} "
            f"({exc.strerror or exc}); set RLNAS_CACHE_DIR to a writable folder"
        ) from None
    return x, y


def read(listing: Listing, spec: Any) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], ImageInput]:
    """(x uint8, y, class names, image format) of the listed folder; :func:`rlnas.data.load` splits them."""
    image = image_settings(spec)
    x, y = decoded(listing, image)
    if len(x) != listing.count:
        raise DataError(f"folder {spec.name}: Keras read {len(x)} images but {listing.count} are listed")
    return x, y, listing.class_names, image
