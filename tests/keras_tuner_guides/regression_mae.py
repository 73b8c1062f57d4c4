"""Objectives: a regression target, scored by the validation mean absolute error (minimised)."""

import keras
import keras_tuner
from _guide import DIRECTORY, Tuner, regression, report

(x, y), (x_val, y_val) = regression()


def build_model(hp):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mean_squared_error", metrics=["mean_absolute_error"])
    return model


tuner = Tuner(
    build_model,
    objective=keras_tuner.Objective("val_mean_absolute_error", direction="min"),
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="regression_mae",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
tuner.results_summary(1)
model = tuner.get_best_models()[0]
mae = float(model.evaluate(x_val, y_val, verbose=0, return_dict=True)["mean_absolute_error"])
report(best=tuner.get_best_hyperparameters()[0].values, mae=mae)
