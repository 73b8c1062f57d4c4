"""Custom tuners: HyperModel.fit preprocesses the data with hyperparameters (normalize, and crop
with hp.get of a hyperparameter that build asked)."""

import keras
import keras_tuner
import numpy as np
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        width = hp.Choice("pixels", [392, 784])
        model = keras.Sequential(
            [
                keras.Input((width,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, x, y, validation_data=None, **kwargs):
        width = hp.get("pixels")
        x_val, y_val = validation_data
        x, x_val = x[:, :width], x_val[:, :width]
        if hp.Boolean("normalize"):
            mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
            x, x_val = (x - mean) / std, (x_val - mean) / std
        return model.fit(x, y, validation_data=(x_val, y_val), **kwargs)


tuner = Tuner(
    MyHyperModel(),
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="fit_normalize",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
best_hp = tuner.get_best_hyperparameters()[0]
model = tuner.get_best_models()[0]
report(
    best=best_hp.values,
    input_width=int(model.inputs[0].shape[-1]),
    finite=bool(np.isfinite(model.count_params())),
)
