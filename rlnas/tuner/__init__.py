"""A keras-tuner-like face over the REINFORCE search: change ``kt.RandomSearch(`` to
``rlnas.ReinforceSearch(`` and keep the model function, ``search(...)`` and the result calls.

    tuner = rlnas.ReinforceSearch(hypermodel=build_model, objective="val_accuracy", max_trials=32,
                                  directory="runs", project_name="mnist")
    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val))
    best_model = tuner.get_best_models(1)[0]

Under it is the ordinary machinery: the model function's space (:func:`space_from_function`), the
controller and loop of :func:`rlnas.search.loop.run_search`, and a :class:`RunStore` at
``directory/project_name``, so ``rlnas show``, ``rlnas report`` and TensorBoard read the run like any
other. The arrays are saved there once as a pre-split ``data.npz`` (used as given, never re-split),
a ``tf.data.Dataset``, PyDataset or dicts of arrays once under ``data/`` (:mod:`rlnas.data.saved`),
and the children train in worker processes on it like any search's (``workers=N`` trains N at once;
this process's memory does not grow with the trials); ``rlnas replay`` retrains the best from it.
The workers start from rlnas's own entry point (never re-running the script) and receive the model
function and fit keywords (``callbacks``) by value, so a function defined in the script, a notebook
cell or a closure trains there too; ``in_process=True`` trains the children in this process instead.
A HyperModel's overridden ``fit`` travels with it and trains each child there; a subclass's
``run_trial`` runs its trials in this process. Either one's own hyperparameters are found when
``search()`` starts, by running it on the first few samples (:meth:`ReinforceSearch.search`).

The package: :mod:`rlnas.tuner.search` (the tuner), :mod:`rlnas.tuner.args` (its arguments, checked
as Python would), :mod:`rlnas.tuner.evaluators` (what trains children in this process); the
executions and retries are :mod:`rlnas.exec.executions`.
"""

from rlnas.tuner.evaluators import FunctionEvaluator
from rlnas.tuner.search import ReinforceSearch

__all__ = ["FunctionEvaluator", "ReinforceSearch"]
