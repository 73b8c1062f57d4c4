"""keras.io's KerasTuner guides, one small plain script per feature (tests/keras_tuner_guides/), each
run as a user runs it: ``python case.py`` in a fresh process, with only the tuner line differing
(``_guide.Tuner``: rlnas in this process, rlnas with two worker processes, or keras-tuner itself,
which shows that each case is a correct keras-tuner program). Each check is what the user would
look at: the search finished, the best hyperparameters and model are usable, the score is what
the user's fit returned.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = Path(__file__).resolve().parent / "keras_tuner_guides"
QUICK = {"run_trial", "fit_dict"}
"""Cases in the default suite (rlnas in this process); every case runs under -m slow."""


def _run(case: str, mode: str, tmp_path: Path) -> tuple[dict, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "GUIDE_DIR": str(tmp_path / "runs"),
        "GUIDE_TUNER": "kt" if mode == "kt" else "rlnas",
        "GUIDE_WORKERS": "2" if mode == "workers" else "",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    proc = subprocess.run(
        [sys.executable, str(GUIDES / f"{case}.py")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out[-3000:]
    return json.loads(lines[-1][len("RESULT ") :]), proc.stdout


def _scores(stdout: str) -> list[float]:
    """The scores results_summary printed (keras-tuner's and rlnas's both say ``Score: x``)."""
    return [float(s) for s in re.findall(r"^Score: (\S+)", stdout, re.M)]


def _returned_is_the_score(result: dict, stdout: str) -> None:
    """The best score is a value the user's fit returned: one it returned in this process, or (its
    children trained in workers) one the run's journal recorded for a trial."""
    (score,) = _scores(stdout)[:1]
    if result["mode"] == "workers":
        returned = [v for t in result["journal"] for v in t.values() if isinstance(v, float)]
    else:
        returned = result["returned"]
    assert any(abs(score - r) < 1e-4 for r in returned), (score, returned)


def _best_logged(result: dict, stdout: str, metric: str, best: Callable = min) -> bool:
    """The best score printed is the best ``metric`` the run's journal holds (rlnas's modes: the
    metric was logged under its own name and is the objective); keras-tuner's own run has no journal."""
    if result["mode"] == "kt":
        return bool(_scores(stdout))
    logged = [t[metric] for t in result["journal"] if t.get(metric) is not None]
    return bool(logged) and _scores(stdout)[0] == pytest.approx(best(logged), abs=1e-4)


def _best_model_scores_as_logged(result: dict) -> bool:
    """rlnas's best model (retrained from its trial's seed) scores on the validation data what the
    journal logged for the best trial, within score parity's 0.01; keras-tuner keeps no journal."""
    if result["mode"] == "kt":
        return True
    logged = [t["val_accuracy"] for t in result["journal"] if t.get("val_accuracy") is not None]
    return bool(logged) and result["accuracy"] == pytest.approx(max(logged), abs=0.01)


CHECKS: dict[str, Callable[[dict, str], None]] = {
    "model_function": lambda r, out: (
        ({"units", "activation", "dropout", "lr"} <= set(r["best"]) and 0 <= r["accuracy"] <= 1)
        and r["rebuilt_params"] > 0
    ),
    "hypermodel_class": lambda r, out: r["best"]["units"] in (16, 32, 48, 64) and r["params"] > 0,
    "conditional": lambda r, out: r["dense_layers"] == r["best"]["num_layers"] + 1,
    "tune_few": lambda r, out: (
        1e-3 - 1e-9 <= r["best"]["learning_rate"] <= 1e-2 + 1e-9 and r["units_in_model"] == 32
    ),
    "fix_few": lambda r, out: r["units_in_model"] == 24 and r["best"]["units"] == 24 and "act" in r["best"],
    "compile_overrides": lambda r, out: r["optimizer"] == "SGD",
    "fit_shuffle": lambda r, out: {"shuffle", "batch_size", "units"} <= set(r["best"]),
    "fit_normalize": lambda r, out: "normalize" in r["best"] and r["input_width"] == r["best"]["pixels"],
    "fit_float": lambda r, out: (
        _returned_is_the_score(r, out) is None and {"batch_size", "learning_rate", "units"} <= set(r["best"])
    ),
    "fit_dict": lambda r, out: _returned_is_the_score(r, out) is None and "units" in r["best"],
    "run_trial": lambda r, out: (
        -1 <= r["best"]["x"] <= 1
        and r["value"] <= 2
        and _scores(out)[0] == pytest.approx(r["value"], abs=1e-4)
    ),
    "failed_trial": lambda r, out: r["best"]["units"] != 64,
    "tensorboard_callback": lambda r, out: r["event_files"] > 0,
    "regression_mae": lambda r, out: 0 <= r["mae"] < 10 and _best_logged(r, out, "val_mean_absolute_error"),
    "custom_metric": lambda r, out: "units" in r["best"] and _best_logged(r, out, "val_custom_metric"),
    "tf_data": lambda r, out: 0 <= r["accuracy"] <= 1 and _best_model_scores_as_logged(r),
}


def _params() -> list:
    params = []
    for case in CHECKS:
        for mode in ("rlnas", "workers", "kt"):
            marks = [] if (mode == "rlnas" and case in QUICK) else [pytest.mark.slow]
            params.append(pytest.param(case, mode, marks=marks, id=f"{case}-{mode}"))
    return params


def test_every_case_has_a_script_and_a_check() -> None:
    scripts = {p.stem for p in GUIDES.glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(CHECKS)


@pytest.mark.parametrize(("case", "mode"), _params())
def test_a_guide_case_runs_with_only_the_tuner_line_changed(case: str, mode: str, tmp_path: Path) -> None:
    if mode == "kt":
        pytest.importorskip("keras_tuner")
    result, stdout = _run(case, mode, tmp_path)
    journal = tmp_path / "runs" / case / "trials.jsonl"
    result["mode"] = mode
    result["journal"] = (
        [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    )
    assert CHECKS[case](result, stdout), (result, stdout[-2000:])
