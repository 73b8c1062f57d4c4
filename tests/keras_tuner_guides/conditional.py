"""Getting started: conditional hyperparameters (a layer's units exist only with that layer)."""

import keras
from _guide import DIRECTORY, Tuner, mnist, report

(x, y), (x_val, y_val) = mnist(flat=True)


def build_model(hp):
    model = keras.Sequential([keras.Input((784,))])
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", 16, 48, step=16), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


tuner = Tuner(
    build_model,
    objective="val_accuracy",
    max_trials=3,
    overwrite=True,
    directory=DIRECTORY,
    project_name="conditional",
)
tuner.search(x, y, epochs=1, validation_data=(x_val, y_val))
best_hp = tuner.get_best_hyperparameters()[0]
layers = [layer for layer in tuner.get_best_models()[0].layers if isinstance(layer, keras.layers.Dense)]
report(best=best_hp.values, dense_layers=len(layers))
