"""The default search against ``--strategy random`` on real children: mnist_5k, 96 children.

Runs ``rlnas search`` as a user does (a subprocess each, ``--replay-top 0``: the comparison is the
search's own, on validation) once per seed and strategy, and reads each run's journal: the best
validation accuracy among its trials (a repeat answered from the cache counts once, as the search
counts it), the children actually trained and the wall time. Reports the mean best of each strategy
with its 95% interval and the paired difference (same seed, same data split, same child seeds).

    python benchmarks/real_children.py --seeds 5
    python benchmarks/real_children.py --first-seed 5 --seeds 5 \\
        --prior benchmarks/results/real_children/default_vs_random.json

``--prior`` puts an earlier report's runs (its seeds 0 to ``--first-seed`` - 1) before this run's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, parser, table

from rlnas.stats import mean_ci


def run(strategy: str | None, seed: int, trials: int, workdir: Path, extra: list[str]) -> dict:
    name = f"{strategy or 'default'}-{seed}"
    cmd = [sys.executable, "-m", "rlnas.cli", "search", "--trials", str(trials), "--seed", str(seed)]
    cmd += ["--replay-top", "0", "--quiet", "--runs-dir", str(workdir), "--name", name, *extra]
    if strategy:
        cmd += ["--strategy", strategy]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (workdir / name / "trials.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r.get("status") == "ok"]
    return {
        "best": max(r["reward"] for r in ok),
        "trained": sum(r.get("cached_from") is None for r in ok),
        "trials": len(rows),
        "seconds": wall,
    }


def main(argv: list[str] | None = None) -> None:
    p = parser("real_children", __doc__, "real_children/default_vs_random.json")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=96)
    p.add_argument("--extra", nargs="*", default=[], help="more rlnas search flags for both strategies")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--prior", type=Path, help="an earlier --out JSON holding seeds 0 to --first-seed - 1")
    args = p.parse_args(argv)
    results: dict[str, list[dict]] = {"default": [], "random": []}
    if args.prior:
        before = json.loads(args.prior.read_text())["results"]
        if before["args"]["extra"] != args.extra or before["args"]["trials"] != args.trials:
            p.error("--prior was run with other --trials or --extra")
        results = {k: list(v[: args.first_seed]) for k, v in before["runs"].items()}
        if any(len(v) != args.first_seed for v in results.values()):
            p.error(f"--prior holds fewer than --first-seed {args.first_seed} seeds")
    with tempfile.TemporaryDirectory() as tmp:
        # interleaved, so that a change of the machine's load hits both
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for strategy in ("default", "random"):
                r = run(None if strategy == "default" else strategy, seed, args.trials, Path(tmp), args.extra)
                results[strategy].append(r | {"seed": seed})
                print(
                    f"{strategy} seed {seed}: best {r['best']:.4f}, {r['trained']} trained, "
                    f"{r['seconds']:.0f} s"
                )
    best = {k: [r["best"] for r in v] for k, v in results.items()}
    diff = [a - b for a, b in zip(best["default"], best["random"], strict=True)]
    rows = [
        [k, "{:.4f} [{:.4f}, {:.4f}]".format(*mean_ci(v)), sum(r["trained"] for r in results[k]) / len(v)]
        for k, v in best.items()
    ]
    rows.append(["default - random (paired)", "{:+.4f} [{:+.4f}, {:+.4f}]".format(*mean_ci(diff)), ""])
    n = len(best["default"])
    md = table(["strategy", f"best val accuracy ({n} seeds, 95% CI)", "children trained"], rows)
    md += "\n\nper seed (default / random): " + ", ".join(
        f"{a:.4f} / {b:.4f}" for a, b in zip(best["default"], best["random"], strict=True)
    )
    settings = vars(args) | {"out": str(args.out), "prior": str(args.prior) if args.prior else None}
    emit(args.out, "real_children", md, {"runs": results, "args": settings})


if __name__ == "__main__":
    main()
