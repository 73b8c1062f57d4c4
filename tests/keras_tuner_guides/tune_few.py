"""Tailoring the search space: search only the learning rate (tune_new_entries=False): every other
hyperparameter of the model takes its default."""

import keras
import keras_tuner
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)


def build_model(hp):
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(hp.Int("units", 16, 64, step=16, default=32), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


hp = keras_tuner.HyperParameters()
hp.Float("learning_rate", min_value=1e-3, max_value=1e-2, sampling="log")
tuner = Tuner(
    build_model,
    hyperparameters=hp,
    tune_new_entries=False,
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="tune_few",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
best_hp = tuner.get_best_hyperparameters()[0]
report(best=best_hp.values, units_in_model=tuner.get_best_models()[0].layers[0].units)
