"""Custom tuners: HyperModel.fit returns a dict of metrics; the objective is one of its keys."""

import keras
import keras_tuner
import numpy as np
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)
RETURNED = []


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, **kwargs)
        x_val, y_val = validation_data
        predicted = model.predict(x_val, verbose=0).argmax(axis=-1)
        scores = {
            "my_accuracy": float(np.mean(predicted == y_val)),
            "my_error_count": float(np.sum(predicted != y_val)),
        }
        RETURNED.append(scores["my_accuracy"])
        return scores


tuner = Tuner(
    MyHyperModel(),
    objective=keras_tuner.Objective("my_accuracy", "max"),
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="fit_dict",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
tuner.results_summary(1)
report(best=tuner.get_best_hyperparameters()[0].values, returned=RETURNED)
