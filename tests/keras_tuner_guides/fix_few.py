"""Tailoring the search space: fix one hyperparameter (hp.Fixed) and search the others
(tune_new_entries=True)."""

import keras
import keras_tuner
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)


def build_model(hp):
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(
                hp.Int("units", 16, 64, step=16), activation=hp.Choice("act", ["relu", "tanh"])
            ),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


hp = keras_tuner.HyperParameters()
hp.Fixed("units", value=24)
tuner = Tuner(
    build_model,
    hyperparameters=hp,
    tune_new_entries=True,
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="fix_few",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
best_hp = tuner.get_best_hyperparameters()[0]
report(best=best_hp.values, units_in_model=tuner.get_best_models()[0].layers[0].units)
