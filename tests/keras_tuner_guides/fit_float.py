"""Custom training loop: HyperModel.fit trains with its own loop and returns a float, the objective."""

import keras
import keras_tuner
import tensorflow as tf
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)
RETURNED = []


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        return keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"),
                keras.layers.Dense(10),
            ]
        )

    def fit(self, hp, model, x, y, validation_data, callbacks=None, **kwargs):
        batch_size = hp.Int("batch_size", 32, 64, step=32)
        optimizer = keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-2, sampling="log"))
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        for callback in callbacks or []:
            callback.set_model(model)
        for start in range(0, len(x), batch_size):
            with tf.GradientTape() as tape:
                loss = loss_fn(
                    y[start : start + batch_size], model(x[start : start + batch_size], training=True)
                )
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        x_val, y_val = validation_data
        val_loss = float(loss_fn(y_val, model(x_val)))
        for callback in callbacks or []:
            callback.on_epoch_end(0, logs={"my_metric": val_loss})
        RETURNED.append(val_loss)
        return val_loss


tuner = Tuner(
    MyHyperModel(),
    objective=keras_tuner.Objective("my_metric", "min"),
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="fit_float",
)
tuner.search(x, y, validation_data=(x_val, y_val))
tuner.results_summary(1)
report(best=tuner.get_best_hyperparameters()[0].values, returned=RETURNED)
