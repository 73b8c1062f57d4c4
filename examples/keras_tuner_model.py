"""The model function of keras-tuner's getting-started tutorial, unchanged: rlnas searches it as is.

``rlnas.space_from_function(build_model)`` shows the space it declares; ``rlnas.ReinforceSearch``
searches it (see docs/keras-tuner.md). Run a small search on the bundled MNIST subset with

    python -m examples.keras_tuner_model

from the repository root (``-m`` names the function ``examples.keras_tuner_model:build_model``, so
``rlnas replay`` can import it later; the worker processes get it by value either way).
"""

import keras


def build_model(hp):
    model = keras.Sequential()
    model.add(keras.layers.Flatten())
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            keras.layers.Dense(
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


if __name__ == "__main__":  # so that importing build_model (tests, the README) searches nothing
    import rlnas
    from rlnas.data import DataSpec, load

    ds = load(DataSpec("mnist_5k"))  # bundled: 5,000 MNIST digits, scaled to [0, 1]
    tuner = rlnas.ReinforceSearch(
        hypermodel=build_model,
        objective="val_accuracy",
        max_trials=16,
        directory="runs",
        project_name="keras-tuner-tutorial",
        overwrite=True,
        archs_per_update=4,
    )
    tuner.search_space_summary()
    tuner.search(ds.x_train, ds.y_train, epochs=1, validation_data=(ds.x_val, ds.y_val))
    tuner.results_summary(3)
    print(f"then: rlnas replay {tuner.project_dir}")
