"""Tune any function: a tuner subclass whose run_trial returns the value to minimise; no hypermodel."""

from _guide import DIRECTORY, Tuner, report


class MyTuner(Tuner):
    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        x = hp.Float("x", -1.0, 1.0, step=0.25)
        return x * x + 1


tuner = MyTuner(max_trials=3, overwrite=True, directory=DIRECTORY, project_name="run_trial")
tuner.search()
tuner.results_summary(1)
best_x = tuner.get_best_hyperparameters()[0].get("x")
report(best={"x": best_x}, value=best_x * best_x + 1)
