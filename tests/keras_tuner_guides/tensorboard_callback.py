"""Visualize the search with TensorBoard: the user's own TensorBoard callback."""

import os

import keras
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)


def build_model(hp):
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


logs = os.path.join(DIRECTORY, "tb_logs")
tuner = Tuner(
    build_model,
    objective="val_accuracy",
    max_trials=2,
    overwrite=True,
    directory=DIRECTORY,
    project_name="tensorboard",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val), callbacks=[keras.callbacks.TensorBoard(logs)])
events = [f for _, _, files in os.walk(logs) for f in files if "tfevents" in f]
report(best=tuner.get_best_hyperparameters()[0].values, event_files=len(events))
