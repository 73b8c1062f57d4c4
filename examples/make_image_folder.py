"""Write a folder of class subfolders of PNG images from rlnas's bundled MNIST subset.

    python examples/make_image_folder.py digits --classes 3 --per-class 40
    rlnas search --data digits --image-size 28x28 --color-mode grayscale --trials 8

Each class is a subfolder named after its digit ("0", "1", ...), as
``keras.utils.image_dataset_from_directory`` expects. The PNGs are written with the standard library
alone (zlib), so the example needs nothing beyond rlnas.
"""

from __future__ import annotations

import argparse
import importlib.resources
import struct
import zlib
from pathlib import Path

import numpy as np


def png(image: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of a (height, width) uint8 array."""
    height, width = image.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + image[r].tobytes() for r in range(height))  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write_folder(out: Path, classes: int, per_class: int) -> int:
    """Write ``per_class`` images of each of the first ``classes`` digits; returns how many."""
    with (importlib.resources.files("rlnas") / "bundled" / "mnist_5k.npz").open("rb") as fh:
        data = np.load(fh)
        x, y = data["x"], data["y"]
    for digit in range(classes):
        folder = out / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(y == digit)[:per_class]):
            (folder / f"{digit}_{i:04d}.png").write_bytes(png(x[index]))
    return classes * per_class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (its class subfolders are created)")
    parser.add_argument("--classes", type=int, default=3, help="digits 0..N-1 (default 3)")
    parser.add_argument("--per-class", type=int, default=40, help="images of each digit (default 40)")
    args = parser.parse_args()
    n = write_folder(args.out, args.classes, args.per_class)
    print(f"wrote {n} images in {args.classes} class subfolders of {args.out}")


if __name__ == "__main__":
    main()
