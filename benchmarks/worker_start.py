"""Worker start-up: a fresh ``python -m rlnas.exec.worker`` against one forked from a template.

What it measures
    For each mode, ``--workers`` workers one after the other on mnist_5k (threads=1, as each of the
    default search's two workers on two cores): the seconds from asking for a worker to its "ready"
    (for the first forked worker this includes starting the template: TensorFlow's import and the
    data), then the same child twice in it (``child_seconds``): the first pays the worker's first trace
    (Keras's lazily imported modules, TensorFlow's function tracing), the second does not.

Why
    A new or recycled worker should be ready in well under a second instead of several,
    so that workers can be recycled often (memory) without losing throughput.

How to read it
    ``ready (first)`` is what a search waits for at start-up (hidden partly behind the controller's
    construction); ``ready (later)`` is what each recycling costs (hidden behind the standby's lead).
    ``first child - second child`` is the first trace, paid by every new worker either way. The load
    average is printed: other jobs share the machine.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from _common import emit, parser, table

ARCH = {"num_layers": 2, "units_0": 128, "units_1": 64, "activation": "relu", "dropout": True, "lr": 1e-3}


def measure(mode: str, workers: int, spec: Any) -> dict[str, Any]:
    from rlnas.exec import fork_server
    from rlnas.exec.evaluator import shippable
    from rlnas.exec.worker_process import WorkerProcess
    from rlnas.models.child import TrainSpec

    os.environ[fork_server.SWITCH] = "1" if mode == "forked" else "0"
    lease = fork_server.lease(spec, threads=1, marker="bench", device="") if mode == "forked" else None
    train = shippable(TrainSpec(epochs=1, threads=1))
    ready, first, second = [], [], []
    try:
        for _ in range(workers):
            t = time.perf_counter()
            worker = lease.worker() if lease else WorkerProcess(spec, threads=1, marker="bench", device="")
            worker.wait_ready()
            ready.append(time.perf_counter() - t)
            for out in (first, second):
                kind, result = worker.ask((train, ARCH, 0, None, {}), None)
                assert kind == "ok" and result.ok, result
                out.append(result.child_seconds)
            worker.stop(wait=True)
    finally:
        if lease:
            lease.release()
    return {"mode": mode, "ready": ready, "first_child": first, "second_child": second}


def row(r: dict[str, Any]) -> list[Any]:
    later = r["ready"][1:] or [float("nan")]
    trace = [a - b for a, b in zip(r["first_child"], r["second_child"], strict=True)]
    return [
        r["mode"],
        r["ready"][0],
        statistics.median(later),
        max(later),
        statistics.median(r["first_child"]),
        statistics.median(r["second_child"]),
        statistics.median(trace),
    ]


def main() -> None:
    p = parser("worker_start", __doc__, "memory/worker_start.json")
    p.add_argument("--workers", type=int, default=6, help="workers started per mode (default 6)")
    p.add_argument("--modes", default="fresh,forked", help="comma list of fresh, forked")
    args = p.parse_args()
    from rlnas.data import DataSpec

    load_before = os.getloadavg()
    runs = [measure(m.strip(), args.workers, DataSpec("mnist_5k")) for m in args.modes.split(",")]
    load_after = os.getloadavg()
    headers = [
        "mode",
        "ready, first (s)",
        "ready, later (median s)",
        "ready, later (max s)",
        "first child (median s)",
        "second child (median s)",
        "first trace (median s)",
    ]
    md = f"### Worker start, {args.workers} workers per mode (mnist_5k, threads=1, epochs=1)\n\n"
    md += table(headers, [row(r) for r in runs])
    md += f"\n\nLoad average (1, 5, 15 min) before: {load_before}, after: {load_after}"
    emit(args.out, "worker_start", md, {"runs": runs, "load_before": load_before, "load_after": load_after})


if __name__ == "__main__":
    main()
