"""Gymnasium environments of rlnas; importing this package registers them.

``gymnasium.make("rlnas/NAS-v0")`` gives the default MLP space on the bundled MNIST subset; pass
``space=``, ``dataset=``, ``epochs=`` ... as keyword arguments, or ``config=SearchConfig(...)`` to train
children exactly as ``rlnas search`` does with it (see :class:`envs.nas_env.NasEnv`).
``gymnasium.make("rlnas/NASTabular-v0", table="table.csv", space=...)`` answers from a lookup table
written by ``rlnas tabulate`` (see :class:`envs.tabular_env.TabularNasEnv`).
"""

from gymnasium.envs.registration import register, registry

NAS_ENV_ID = "rlnas/NAS-v0"
TABULAR_ENV_ID = "rlnas/NASTabular-v0"

if NAS_ENV_ID not in registry:
    # Nondeterministic: info carries wall-clock training times, and multi-threaded CPU kernels
    # may round differently from run to run.
    register(id=NAS_ENV_ID, entry_point="envs.nas_env:NasEnv", nondeterministic=True)

if TABULAR_ENV_ID not in registry:
    # Deterministic: every result comes from the table (``table=PATH`` is required).
    register(id=TABULAR_ENV_ID, entry_point="envs.tabular_env:TabularNasEnv")

__all__ = ["NAS_ENV_ID", "TABULAR_ENV_ID"]
