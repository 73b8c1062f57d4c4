"""Getting started: the search space as a HyperModel subclass."""

import keras
import keras_tuner
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
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
    MyHyperModel(),
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="hypermodel_class",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
best_hp = tuner.get_best_hyperparameters()[0]
model = tuner.get_best_models()[0]
report(best=best_hp.values, params=model.count_params())
