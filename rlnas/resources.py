"""CPU sizing: how many worker processes a search starts and how many threads each one gets.

At the bottom of the layers: the evaluators, the search, ``rlnas tabulate`` and the benchmarks all size
their workers here, and none of them needs anything above it to do so.
"""

from __future__ import annotations

import os


def cpu_count() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(cpus: int | None = None) -> int:
    """Workers when the user does not say: one per core on up to two cores, then one per two cores.

    Measured on 2 idle cores (benchmarks/results/keras_tuner/*.md): two workers with one thread
    each trained 75 children/min on mnist_5k against 51 for one worker with two threads, and 21 against
    12 on full Fashion-MNIST (small networks use a second intra-op thread poorly; under load from other
    jobs the two settings were even). Beyond two cores this is not measured: half
    the cores keeps each worker's TensorFlow at two threads and bounds memory (~1.7 GB a worker).
    """
    cpus = cpus or cpu_count()
    return max(1, cpus if cpus <= 2 else cpus // 2)


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """TensorFlow threads for each of ``workers`` processes so that together they use each core once."""
    return max(1, (cpus or cpu_count()) // workers)
