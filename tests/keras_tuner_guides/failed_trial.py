"""Failed trials: build raises FailedTrialError for some hyperparameters; the search goes on."""

import keras
import keras_tuner
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)


def build_model(hp):
    units = hp.Int("units", 16, 64, step=16)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    if units == 64:
        raise keras_tuner.errors.FailedTrialError(f"units={units} is too many")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


tuner = Tuner(
    build_model,
    objective="val_accuracy",
    max_trials=4,
    max_consecutive_failed_trials=4,
    overwrite=True,
    directory=DIRECTORY,
    project_name="failed_trial",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
report(best=tuner.get_best_hyperparameters()[0].values)
