"""GPUs for the local workers, with faked device lists (no test needs a GPU; none has run on one).

Which GPUs are found and chosen, which worker gets which, the environment each worker process is
really started with (read back from ``/proc/<pid>/environ``), the search process hiding GPUs from
itself without hiding them from its workers, and the one-line errors of bad settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlnas import devices
from rlnas.config import SearchConfig
from rlnas.errors import ConfigError
from rlnas.models.child import TrainSpec, check_mixed_precision

ROOT = Path(__file__).parent.parent
GPU_FREE = {k: v for k, v in os.environ.items() if k not in (devices.VISIBLE, devices.FAKE_GPUS)}


def _python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (its own environment and hiding) and return the JSON it prints."""
    full = GPU_FREE | {"PYTHONPATH": str(ROOT)} | env
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    ("environ", "visible"),
    [
        ({devices.FAKE_GPUS: "0,1,2,3"}, ("0", "1", "2", "3")),
        ({devices.FAKE_GPUS: ""}, ()),
        ({devices.FAKE_GPUS: "0,1,2,3", devices.VISIBLE: "2,3"}, ("2", "3")),
        ({devices.FAKE_GPUS: "0,1", devices.VISIBLE: "1,5,0"}, ("1",)),  # CUDA stops at a bad entry
        ({devices.FAKE_GPUS: "0,1", devices.VISIBLE: ""}, ()),
        ({devices.FAKE_GPUS: "0,1", devices.VISIBLE: "-1"}, ()),
        ({devices.FAKE_GPUS: "0", devices.VISIBLE: "GPU-8f2a,MIG-77"}, ("GPU-8f2a", "MIG-77")),
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(environ, visible):
    assert devices.visible_gpus(environ) == visible


def test_nvidia_smi_listing_is_parsed(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-aaaa)'\n"
        "echo '  MIG 1g.18gb     Device  0: (UUID: MIG-bbbb)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-cccc)'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert devices.found_gpus({}) == ("0", "1")
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")  # a broken driver
    assert devices.found_gpus({}) == ()


@pytest.mark.parametrize(
    ("value", "visible", "chosen"),
    [
        (None, ("0", "1"), ("0", "1")),  # the default: every GPU there is
        (None, (), None),  # none found: the workers keep the user's environment
        ("all", ("2", "3"), ("2", "3")),
        ("none", ("0", "1"), ()),
        ("1", ("2", "3"), ("3",)),  # CUDA's numbers: with CUDA_VISIBLE_DEVICES=2,3, GPU 1 is physical 3
        ("1,0", ("0", "1"), ("1", "0")),
        (" 0 , 1 ", ("0", "1"), ("0", "1")),
    ],
)
def test_choose_gpus(value, visible, chosen):
    assert devices.choose_gpus(value, visible) == chosen


@pytest.mark.parametrize(
    ("value", "visible", "message"),
    [
        ("2", ("0", "1"), r"^--gpus 2: there is no GPU 2; this machine shows GPUs 0-1$"),
        ("0", (), r"^--gpus 0: there is no GPU 0; this machine shows no GPU$"),
        ("all", (), r"^--gpus all: no GPU found \(.*\); use --gpus none$"),
        ("gpu0", ("0",), r"^gpus must be all, none or distinct GPU numbers such as 0,1, got 'gpu0'$"),
        ("0,0", ("0",), r"got '0,0'$"),
        ("-1", ("0",), r"got '-1'$"),
        ("1,", ("0", "1"), r"got '1,'$"),
        ("", ("0",), r"got ''$"),
    ],
)
def test_bad_gpus_are_config_errors(value, visible, message):
    with pytest.raises(ConfigError, match=message):
        devices.choose_gpus(value, visible)


def test_round_robin_and_default_worker_count():
    assert devices.assign(("0", "1"), 5) == ["0", "1", "0", "1", "0"]
    assert devices.assign((), 2) == ["", ""]
    assert devices.assign(None, 2) == [None, None]
    assert devices.default_workers(("0", "1", "2")) == 3 * devices.WORKERS_PER_GPU
    assert devices.default_workers(None) is None and devices.default_workers(()) is None


def test_gpus_and_mixed_precision_settings_are_validated():
    with pytest.raises(ConfigError, match=r"^gpus must be all, none or distinct GPU numbers .* got 7$"):
        SearchConfig(gpus=7)
    with pytest.raises(ConfigError, match=r"^gpus='0' is for local workers; Ray children take --gpus-per"):
        SearchConfig(gpus="0", executor="ray")
    with pytest.raises(ConfigError, match=r"^mixed_precision must be true or false, got 'yes'$"):
        SearchConfig(mixed_precision="yes")
    with pytest.raises(
        ConfigError, match=r"^--mixed-precision is for the conv, skip, cell models, not 'mlp'$"
    ):
        TrainSpec(model="mlp", mixed_precision=True)
    with pytest.raises(ConfigError, match=r"not 'mod:build'$"):
        check_mixed_precision("mod:build")
    TrainSpec(model="cell", mixed_precision=True)


_SPAWN = """
    import json, os, time
    from rlnas import devices
    if os.environ.pop("HIDE", ""):
        devices.hide_gpus()
    from rlnas.config import SearchConfig
    from rlnas.exec.evaluator import worker_evaluators

    evaluators = worker_evaluators(SearchConfig(dataset={npz!r}, **{settings}), "mlp")
    seen = []
    for e in evaluators:
        e.start()
        for _ in range(400):  # until it shows its own environment (a process being set up may not yet)
            environ = open(f"/proc/{{e._active.pid}}/environ", "rb").read().split(b"\\0")
            if any(v.startswith(b"RLNAS_WORKER_OF=") for v in environ):
                break
            time.sleep(0.05)
        env = dict(v.decode().split("=", 1) for v in environ if b"=" in v)
        seen.append({{k: env.get(k) for k in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH")}})
        e.kill()
        e.close()
    print(json.dumps({{"own": os.environ.get("CUDA_VISIBLE_DEVICES"), "workers": seen}}))
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/<pid>/environ")
@pytest.mark.parametrize(
    ("settings", "env", "own", "workers"),
    [
        # Two GPUs, three workers: round-robin, memory growth; the search process itself sees none.
        ({"workers": 3}, {"RLNAS_FAKE_GPUS": "0,1", "HIDE": "1"}, "",
         [("0", "true"), ("1", "true"), ("0", "true")]),
        # No count given: one worker per GPU; CUDA's numbers in the user's shell.
        ({}, {"RLNAS_FAKE_GPUS": "0,1,2", "CUDA_VISIBLE_DEVICES": "2,1"}, "2,1",
         [("2", "true"), ("1", "true")]),
        ({"gpus": "1", "workers": 2}, {"RLNAS_FAKE_GPUS": "0,1", "HIDE": "1"}, "", [("1", "true")] * 2),
        ({"gpus": "none", "workers": 2}, {"RLNAS_FAKE_GPUS": "0,1"}, None, [("", None)] * 2),
        # No GPU found: the workers get the user's environment back, not the search's hiding.
        ({"workers": 1}, {"RLNAS_FAKE_GPUS": "", "CUDA_VISIBLE_DEVICES": "7", "HIDE": "1"}, "",
         [("7", None)]),
        ({"workers": 1}, {"RLNAS_FAKE_GPUS": "", "HIDE": "1"}, "", [(None, None)]),
    ],
)  # fmt: skip
def test_each_spawned_worker_gets_its_gpu(tiny_npz, settings, env, own, workers):
    out = _python(_SPAWN.format(npz=str(tiny_npz), settings=settings), **env)
    assert out["own"] == own
    assert [(w["CUDA_VISIBLE_DEVICES"], w["TF_FORCE_GPU_ALLOW_GROWTH"]) for w in out["workers"]] == workers


@pytest.mark.slow  # two TensorFlow imports
def test_hiding_holds_for_tensorflow_imported_before_or_after():
    """``CUDA_VISIBLE_DEVICES=""`` before TensorFlow's first op, and TensorFlow's own setting when it is
    already imported; on this CPU-only machine both leave TensorFlow no GPU, which is all it can show."""
    code = """
        import json, os, sys
        from rlnas import devices
        if os.environ.pop("EARLY", ""):
            import tensorflow
        devices.hide_gpus()
        import tensorflow as tf
        gpus = len(tf.config.get_visible_devices("GPU"))
        env, original = os.environ["CUDA_VISIBLE_DEVICES"], devices.original_visible()
        print(json.dumps({"env": env, "gpus": gpus, "original": original}))
    """  # fmt: skip
    for early in ("", "1"):
        out = _python(code, CUDA_VISIBLE_DEVICES="0", EARLY=early, TF_CPP_MIN_LOG_LEVEL="3")
        assert out == {"env": "", "gpus": 0, "original": "0"}


def test_bad_gpus_flag_is_one_line_before_a_run_directory(tmp_path):
    env = GPU_FREE | {"PYTHONPATH": str(ROOT), devices.FAKE_GPUS: "0,1"}
    for flags, message in [
        (["--gpus", "2"], "rlnas: error: --gpus 2: there is no GPU 2; this machine shows GPUs 0-1\n"),
        (["--gpus", "0,x"],
         "rlnas: error: gpus must be all, none or distinct GPU numbers such as 0,1, got '0,x'\n"),
        (["--mixed-precision"],
         "rlnas: error: --mixed-precision is for the conv, skip, cell models, not 'mlp'\n"),
        (["--mixed-precision", "--config", str(ROOT / "examples/conv.toml"), "--gpus", "none",
          "--dataset", "nope.npz"],  # the note, then (to stop here) a bad dataset
         "rlnas: note: --mixed-precision without a GPU: no speed-up on the CPU\nrlnas: error: "),
    ]:  # fmt: skip
        r = subprocess.run(
            [sys.executable, "-m", "rlnas.cli", "search", *flags, "--runs-dir", str(tmp_path / "runs")],
            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        lines = message.count("\n") + (not message.endswith("\n"))  # the last one may be a prefix
        assert (r.returncode, r.stderr[: len(message)], r.stderr.count("\n")) == (2, message, lines)
        assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # TensorFlow and a child
def test_a_conv_child_trains_in_mixed_precision_and_the_policy_is_restored(tiny_npz):
    import keras

    from rlnas.data import DataSpec, load
    from rlnas.models.child import train_and_evaluate

    seen = []
    spec = TrainSpec(epochs=1, batch_size=64, model="conv", mixed_precision=True)
    result = train_and_evaluate(
        {"num_layers": 1, "filters_0": 4}, load(DataSpec(str(tiny_npz))), spec, seed=0, on_model=seen.append
    )
    assert result.status == "ok", result.error
    conv = next(layer for layer in seen[0].layers if isinstance(layer, keras.layers.Conv2D))
    assert (conv.compute_dtype, conv.dtype) == ("float16", "float32")
    assert seen[0].layers[-1].compute_dtype == "float32"  # the softmax
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.slow  # a real search: TensorFlow in three processes and a replay
def test_a_search_on_two_faked_gpus(tmp_path, tiny_npz):
    """End to end through the CLI: the search process reads the space with no GPU visible, each of
    two workers trains on its own GPU with memory growth, and the replay runs in a process of its own
    on the first GPU (the search process hid them from itself)."""
    probe = tmp_path / "probe.txt"
    env = GPU_FREE | {"PYTHONPATH": str(ROOT), devices.FAKE_GPUS: "0,1", "RLNAS_PROBE": str(probe)}
    r = subprocess.run(
        [sys.executable, "-m", "rlnas.cli", "search", "--model", "tests.gpu_probe:build_model",
         "--dataset", str(tiny_npz), "--trials", "4", "--archs-per-update", "2", "--epochs", "1",
         "--reevaluate-repeats", "--replay-top", "1", "--replay-epochs", "1",
         "--runs-dir", str(tmp_path / "runs"), "--name", "g"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "saved 1 model(s)" in r.stdout
    calls = [line.split() for line in probe.read_text().splitlines()]
    search_pid = calls[0][0]
    assert calls[0][1:] == ['""', "-"]  # the search process: no GPU, before TensorFlow started
    workers = {pid: tuple(seen) for pid, *seen in calls[1:] if pid != search_pid}
    replay = workers.pop(calls[-1][0])
    assert replay == ("0", "true")
    assert sorted(set(workers.values())) == [("0", "true"), ("1", "true")]
