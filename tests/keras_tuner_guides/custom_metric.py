"""Objectives: a custom keras.metrics.Metric subclass; the objective is its validation value."""

import keras
import keras_tuner
from _guide import DIRECTORY, Tuner, regression, report

(x, y), (x_val, y_val) = regression()


class CustomMetric(keras.metrics.Metric):
    """The mean squared error, written as a stateful metric."""

    def __init__(self, **kwargs):
        super().__init__(name="custom_metric", **kwargs)
        self.total = self.add_weight(name="total", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = keras.ops.square(keras.ops.reshape(y_true, (-1,)) - keras.ops.reshape(y_pred, (-1,)))
        self.total.assign_add(keras.ops.sum(values))
        self.count.assign_add(keras.ops.cast(keras.ops.size(values), "float32"))

    def result(self):
        return self.total / self.count

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


def build_model(hp):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mean_absolute_error", metrics=[CustomMetric()])
    return model


tuner = Tuner(
    build_model,
    objective=keras_tuner.Objective("val_custom_metric", direction="min"),
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="custom_metric",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
tuner.results_summary(1)
report(best=tuner.get_best_hyperparameters()[0].values)
