"""Regression with a keras-tuner model function: scikit-learn's bundled diabetes table (442 patients,
10 features, a disease-progression score), searched for the lowest validation mean absolute error.

    python examples/regression.py [TRIALS]

It is a plain script, as a keras-tuner user writes one (no ``__main__`` guard is needed: rlnas's
workers never re-run it). The table ships with scikit-learn, so it runs offline. The best model is
retrained by ``get_best_models`` and scored once on a test split the search never saw.
"""

import sys

import keras
import numpy as np
from sklearn.datasets import load_diabetes

import rlnas

x, y = load_diabetes(return_X_y=True)
x, y = x.astype("float32"), y.astype("float32")  # float targets: a regression
order = np.random.default_rng(0).permutation(len(y))
train, val, test = np.split(order, [300, 370])


def build_model(hp):
    model = keras.Sequential([keras.Input((10,))])
    for i in range(hp.Int("layers", 1, 2)):
        model.add(
            keras.layers.Dense(
                hp.Int(f"units_{i}", 16, 128, step=16), activation=hp.Choice("act", ["relu", "tanh"])
            )
        )
    model.add(keras.layers.Dense(1))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("lr", 3e-3, 3e-2, sampling="log")),
        loss="mse",
        metrics=["mean_absolute_error"],
    )
    return model


tuner = rlnas.ReinforceSearch(
    build_model,
    objective="val_mean_absolute_error",  # minimised: keras-tuner's inference, no direction needed
    max_trials=int(sys.argv[1]) if len(sys.argv) > 1 else 12,
    directory="runs",
    project_name="diabetes",
    overwrite=True,
    archs_per_update=2,
)
tuner.search(x[train], y[train], epochs=30, batch_size=32, validation_data=(x[val], y[val]), verbose=1)
tuner.results_summary(3)
best = tuner.get_best_models(1)[0]
scores = best.evaluate(x[test], y[test], verbose=0, return_dict=True)
print(
    f"test MAE of the best model: {scores['mean_absolute_error']:.1f} (the mean predictor's: "
    f"{np.mean(np.abs(y[test] - y[train].mean())):.1f})"
)
