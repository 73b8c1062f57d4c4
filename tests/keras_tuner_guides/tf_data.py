"""tf.data input: search() on a tf.data.Dataset with a dataset as validation_data."""

import keras
import tensorflow as tf
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)
train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(32)


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
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="tf_data",
)
tuner.search(train_ds, epochs=1, validation_data=val_ds)
model = tuner.get_best_models()[0]
report(best=tuner.get_best_hyperparameters()[0].values, accuracy=float(model.evaluate(val_ds, verbose=0)[1]))
