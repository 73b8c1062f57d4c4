"""Write scikit-learn's bundled diabetes table as a CSV, for a regression search from the command line.

    python examples/diabetes_csv.py diabetes.csv
    rlnas search --data diabetes.csv --target target --objective val_mae

The table ships inside scikit-learn (no download): 442 patients, ten numeric measurements and the
disease progression a year later (``target``, a float: regression). It is written unscaled, as a
user's own table would be; the children normalise it themselves. ``sex`` is coded 1 and 2 in the
source and written as the text ``sex1`` / ``sex2``, so that the table has a categorical column too.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def write_csv(path: Path) -> int:
    """Write the table; returns its number of rows."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    names = list(bunch.feature_names)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([*names, "target"])
        for row, target in zip(bunch.data, bunch.target, strict=True):
            cells = [
                f"sex{int(v)}" if name == "sex" else f"{v:g}" for name, v in zip(names, row, strict=True)
            ]
            out.writerow([*cells, f"{target:.1f}"])
    return len(bunch.target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the CSV file to write")
    args = parser.parse_args()
    print(f"wrote {write_csv(args.out)} rows to {args.out}")


if __name__ == "__main__":
    main()
