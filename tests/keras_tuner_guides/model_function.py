"""Getting started: a model function with hp.Int, hp.Choice, hp.Boolean and hp.Float; the results."""

import keras
import numpy as np
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist()


def build_model(hp):
    model = keras.Sequential()
    model.add(keras.Input((28, 28)))
    model.add(keras.layers.Flatten())
    model.add(
        keras.layers.Dense(
            units=hp.Int("units", min_value=16, max_value=64, step=16),
            activation=hp.Choice("activation", ["relu", "tanh"]),
        )
    )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


tuner = Tuner(
    hypermodel=build_model,
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="model_function",
)
tuner.search_space_summary()
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
tuner.results_summary()
best_model = tuner.get_best_models(num_models=1)[0]
best_hp = tuner.get_best_hyperparameters(1)[0]
rebuilt = tuner.hypermodel.build(best_hp)
accuracy = float(np.mean(best_model.predict(x_val, verbose=0).argmax(-1) == y_val))
report(best=best_hp.values, accuracy=accuracy, rebuilt_params=rebuilt.count_params())
