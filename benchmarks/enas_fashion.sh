#!/usr/bin/env bash
# ENAS on the Fashion-MNIST conv space: search CPU time, replay CPU time, replayed test accuracy.
#
#   BUDGET="--enas-epochs 1 --enas-candidates 20" bash benchmarks/enas_fashion.sh   # from the repository root
#
# The from-scratch reference (benchmarks/results/fashion_mnist/search_and_replay.md): REINFORCE on
# examples/conv_fashion.toml's space, 43 + ~2 CPU-min of search, top-1 replayed 15 epochs with the
# cosine schedule on train + validation, scored once on test: 0.9311. The target here: within 0.5
# points of it (>= 0.9261) with at most a tenth of its search CPU (<= 4.5 CPU-min, supernet included).
#
#   1. `rlnas search --strategy enas` on that space, full Fashion-MNIST, default splits (48,000 train /
#      12,000 val; the official 10,000 test never seen), the supernet on the whole train split, no
#      replay (--replay-top 0), under /usr/bin/time -v: user + system CPU of the process and of every
#      process it waited for;
#   2. `rlnas replay RUN --epochs 15` (cosine, the run's replay_schedule), under /usr/bin/time -v;
#   3. writes $OUT/enas_fashion.json and .md: both CPU and wall times, the load average around them,
#      the picked architecture, its test accuracy, the commands.
#
# Env: BUDGET (the supernet's budget flags, passed to `rlnas search`: size them so that step 1
# stays <= 4.5 CPU-min; scoring the candidates on 12,000 validation images counts too), EXTRA (more
# search flags, e.g. ENAS settings), PYTHON=python3, REPLAY_EPOCHS=15, TRAIN_FRACTION=1.0,
# STRATEGY=enas (another strategy checks the script), OUT=benchmarks/results/weight_sharing, RUNS
# (default: a temporary folder, removed), SMOKE=1 (mnist_5k, 1 replay epoch, results under /tmp:
# checks the script, measures nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
BUDGET=${BUDGET:?set BUDGET to the supernet budget flags of rlnas search, e.g. BUDGET="--enas-epochs 1"}
EXTRA=${EXTRA:-}
STRATEGY=${STRATEGY:-enas}
REPLAY_EPOCHS=${REPLAY_EPOCHS:-15}
TRAIN_FRACTION=${TRAIN_FRACTION:-1.0}
OUT=${OUT:-benchmarks/results/weight_sharing}
DATASET=fashion_mnist
NAME=enas_fashion
if [[ ${SMOKE:-0} == 1 ]]; then
  DATASET=mnist_5k REPLAY_EPOCHS=1 OUT=$(mktemp -d /tmp/enas-fashion-smoke.XXXX) NAME=enas_fashion_smoke
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ -z ${RUNS:-} ]]; then
  RUNS=$(mktemp -d /tmp/enas-fashion-runs.XXXX)
  trap 'rm -rf "$RUNS"' EXIT
fi
mkdir -p "$OUT"
LOGS=$(mktemp -d /tmp/enas-fashion-logs.XXXX)

# shellcheck disable=SC2086  # BUDGET and EXTRA are lists of flags
search=("$PYTHON" -m rlnas.cli search --strategy "$STRATEGY" --config examples/conv_fashion.toml
  --dataset "$DATASET" --train-fraction "$TRAIN_FRACTION" --replay-top 0
  --replay-epochs "$REPLAY_EPOCHS" --replay-schedule cosine
  --name "$NAME" --runs-dir "$RUNS" --overwrite $BUDGET $EXTRA)
replay=("$PYTHON" -m rlnas.cli replay "$RUNS/$NAME" --epochs "$REPLAY_EPOCHS")

run() { # LABEL CMD...: run under /usr/bin/time -v, keep its output and the load before and after
  local label=$1
  shift
  cut -d' ' -f1 /proc/loadavg >"$LOGS/$label.load"
  echo "+ $*" >&2
  /usr/bin/time -v -o "$LOGS/$label.time" "$@" 2>&1 | tee "$LOGS/$label.log"
  cut -d' ' -f1 /proc/loadavg >>"$LOGS/$label.load"
}

run search "${search[@]}"
run replay "${replay[@]}"

"$PYTHON" - "$LOGS" "$RUNS/$NAME" "$OUT" "$STRATEGY" "${search[*]}" "${replay[*]}" <<'EOF'
import json, re, sys
from pathlib import Path

logs, run, out = (Path(a) for a in sys.argv[1:4])
strategy, search_cmd, replay_cmd = sys.argv[4:]

def times(label):
    text = (logs / f"{label}.time").read_text()
    field = lambda name: re.search(rf"{re.escape(name)}: (.+)", text).group(1).strip()
    h, m, s = ([0, 0] + field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"))[-3:]
    return {
        "cpu_seconds": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "wall_seconds": int(h) * 3600 + int(m) * 60 + float(s),
        "max_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
        "load_before_after": [float(v) for v in (logs / f"{label}.load").read_text().split()],
        "exit_status": int(field("Exit status")),
    }

s, r = times("search"), times("replay")
best = json.loads((run / "replay.json").read_text())[0]
test = best.get("test_accuracy")
tail = lambda label: (logs / f"{label}.log").read_text().splitlines()[-15:]
result = {
    "search": s | {"command": search_cmd, "output_tail": tail("search")},
    "replay": r | {"command": replay_cmd, "output_tail": tail("replay")},
    "replayed": best,
}
lines = [
    f"# {strategy} on the Fashion-MNIST conv space (examples/conv_fashion.toml)",
    "",
    "| search CPU | search wall | replay CPU | replay wall | search + replay CPU | test accuracy | target |",
    "|---|---|---|---|---|---|---|",
    f"| {s['cpu_seconds'] / 60:.2f} CPU-min | {s['wall_seconds'] / 60:.1f} min | {r['cpu_seconds'] / 60:.1f} CPU-min "
    f"| {r['wall_seconds'] / 60:.1f} min | {(s['cpu_seconds'] + r['cpu_seconds']) / 60:.1f} CPU-min | {test:.4f} "
    f"| >= 0.9261 with <= 4.5 CPU-min of search |",
    "",
    f"load average (1 min) before/after: search {s['load_before_after']}, replay {r['load_before_after']}",
    f"max RSS: search {s['max_rss_mb']:.0f} MB, replay {r['max_rss_mb']:.0f} MB",
    "",
    f"search: `{search_cmd}`",
    f"replay: `{replay_cmd}`",
    "",
    f"replayed: {json.dumps(best)}",
]
(out / "enas_fashion.json").write_text(json.dumps(result, indent=2) + "\n")
(out / "enas_fashion.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\n(written to {out}/enas_fashion.json and .md)", file=sys.stderr)
EOF
