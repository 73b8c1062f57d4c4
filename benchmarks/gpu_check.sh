#!/usr/bin/env bash
# GPU check (#18): the local workers on the GPUs against the same searches on the CPU, in under ~8 min.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# Runs, each as `rlnas search` with --replay-top 0 and a time cap:
#   1. the quick-start search (default MLP space, bundled mnist_5k) on the CPU, then on the GPU with 1
#      and with 2 workers;
#   2. a conv search (examples/conv_fashion.toml) on Fashion-MNIST, or on the bundled mnist_5k when
#      Fashion-MNIST is not on the machine, for a fixed number of children, on the CPU and the GPU.
# Prints children trained per minute for each, the peak GPU memory of every process of a GPU run
# (nvidia-smi; the search process itself must hold none), and the failed children (must be 0).
# Without a GPU it runs the CPU half and says so. Budgets are env vars (small ones make a smoke test):
#   QUICK_TRIALS=32  CONV_TRIALS=8  CONV_EPOCHS=1  MAX_MINUTES=0.9 (per search)  OUT=gpu-check-runs
#   PYTHON=python3   INSTALL=auto (pip install -e . and tensorflow[and-cuda] when missing; 0: never)
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK_TRIALS=${QUICK_TRIALS:-32}
CONV_TRIALS=${CONV_TRIALS:-8}
CONV_EPOCHS=${CONV_EPOCHS:-1}
MAX_MINUTES=${MAX_MINUTES:-0.9}
OUT=${OUT:-gpu-check-runs}
PYTHON=${PYTHON:-python3}
INSTALL=${INSTALL:-auto}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

gpus=$("$PYTHON" -c 'from rlnas.devices import visible_gpus; print(len(visible_gpus()))' 2>/dev/null ||
  echo missing)
if [[ $INSTALL != 0 ]] && { [[ $gpus == missing ]] || ! "$PYTHON" -c 'import tensorflow' 2>/dev/null; }; then
  echo "== installing rlnas (pip install -e .)"
  "$PYTHON" -m pip install -q -e .
  gpus=$("$PYTHON" -c 'from rlnas.devices import visible_gpus; print(len(visible_gpus()))')
fi
if [[ $gpus != 0 && $INSTALL != 0 ]] &&
  ! "$PYTHON" -c 'import tensorflow as tf, sys; sys.exit(not tf.test.is_built_with_cuda())' 2>/dev/null; then
  echo "== installing tensorflow[and-cuda] (this TensorFlow has no CUDA)"
  "$PYTHON" -m pip install -q "tensorflow[and-cuda]"
fi
if [[ $gpus != 0 ]]; then
  seen=$(CUDA_VISIBLE_DEVICES=0 TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c \
    'import tensorflow as tf; print(len(tf.config.list_physical_devices("GPU")))' 2>/dev/null || echo 0)
  nvidia-smi -L || true
  if [[ $seen == 0 ]]; then
    echo "WARNING: nvidia-smi lists GPUs but TensorFlow sees none: the GPU runs train on the CPU"
  fi
fi

conv_data=(--dataset fashion_mnist)
if ! "$PYTHON" -c 'from rlnas import data; data.check_spec(data.DataSpec("fashion_mnist"))' 2>/dev/null; then
  echo "Fashion-MNIST is not on this machine: the conv search runs on the bundled mnist_5k"
  conv_data=(--dataset mnist_5k)
fi

failed_total=0
# search NAME GPUS_FLAG ARGS...: one search; its line of the table and, on a GPU, its processes' memory.
search() {
  local name=$1 gpus_flag=$2
  shift 2
  local smi_log="$OUT/$name.smi" status=0
  rm -rf "${OUT:?}/$name"
  "$PYTHON" -m rlnas.cli search --name "$name" --runs-dir "$OUT" --replay-top 0 --quiet \
    --max-minutes "$MAX_MINUTES" --gpus "$gpus_flag" "$@" >"$OUT/$name.log" 2>&1 &
  local pid=$!
  if [[ $gpus_flag != none ]]; then
    : >"$smi_log"
    while kill -0 "$pid" 2>/dev/null; do
      nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits >>"$smi_log" 2>/dev/null || true
      sleep 2
    done
  fi
  wait "$pid" || status=$?
  "$PYTHON" - "$OUT/$name" "$name" "$status" "$pid" "$smi_log" <<'EOF' || failed_total=$((failed_total + 1))
import json, sys
from pathlib import Path

run, name, status, search_pid, smi = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [json.loads(l) for l in (run / "trials.jsonl").read_text().splitlines()] if (run / "trials.jsonl").exists() else []
trained = [r for r in rows if r.get("cached_from") is None]
failed = [r for r in trained if r["status"] != "ok"]
seconds = max((r.get("elapsed", 0.0) for r in rows), default=0.0)
rate = 60 * len(trained) / seconds if seconds else 0.0
best = max((r.get("val_accuracy", 0.0) for r in trained if r["status"] == "ok"), default=float("nan"))
print(f"{name:<14} exit {status}  trained {len(trained):>3}  failed {len(failed)}  "
      f"{seconds:6.1f} s  {rate:6.1f} children/min  best val_acc {best:.4f}")
for r in failed[:3]:
    print(f"    failed child {r['index']}: {r.get('error', '')[:200]}")
peak = {}
if Path(smi).exists():
    for line in Path(smi).read_text().splitlines():
        pid, _, mib = (p.strip() for p in line.partition(","))
        if mib.isdigit():
            peak[pid] = max(peak.get(pid, 0), int(mib))
for pid, mib in sorted(peak.items()):
    who = "THE SEARCH PROCESS (should hold none)" if pid == search_pid else "worker"
    print(f"    GPU memory, pid {pid} ({who}): peak {mib} MiB")
bad = status != 0 or failed or not trained or search_pid in peak
sys.exit(1 if bad else 0)
EOF
}

summary() {
  if [[ $failed_total == 0 ]]; then
    echo "all runs ok: no worker failed"
    exit 0
  fi
  echo "$failed_total run(s) failed or had failed children (logs: $OUT/*.log)"
  exit 1
}

quick=(--trials "$QUICK_TRIALS")
conv=(--config examples/conv_fashion.toml "${conv_data[@]}" --trials "$CONV_TRIALS" --epochs "$CONV_EPOCHS")
echo "== quick-start search ($QUICK_TRIALS trials) and conv search ($CONV_TRIALS children), each capped at $MAX_MINUTES min"
search quick-cpu none "${quick[@]}"
if [[ $gpus == 0 ]]; then
  search conv-cpu none "${conv[@]}"
  echo "no GPU found (nvidia-smi -L, /proc/driver/nvidia): ran the CPU half only"
  summary
fi
search quick-gpu-1w 0 "${quick[@]}" --workers 1
search quick-gpu-2w 0 "${quick[@]}" --workers 2
search conv-cpu none "${conv[@]}"
search conv-gpu all "${conv[@]}"
search conv-gpu-mp all "${conv[@]}" --mixed-precision
summary
