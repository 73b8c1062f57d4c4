"""Tailoring the search: the tuner's optimizer=, loss= and metrics= replace the model's compile."""

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


tuner = Tuner(
    build_model,
    optimizer=keras.optimizers.SGD(learning_rate=0.05),
    loss=keras.losses.SparseCategoricalCrossentropy(),
    metrics=["accuracy"],
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="compile_overrides",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
model = tuner.get_best_models()[0]
report(best=tuner.get_best_hyperparameters()[0].values, optimizer=type(model.optimizer).__name__)
