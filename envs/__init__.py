"""Gymnasium environments of rlnas; importing this package registers them.

``gymnasium.make("rlnas/NAS-v0")`` gives the default MLP space on the bundled MNIST subset; pass
``space=``, ``dataset=``, ``epochs=`` ... as keyword arguments (see :class:`envs.nas_env.NasEnv`).
"""

from gymnasium.envs.registration import register, registry

NAS_ENV_ID = "rlnas/NAS-v0"

if NAS_ENV_ID not in registry:
    # Nondeterministic: info carries wall-clock training times, and multi-threaded CPU kernels
    # may round differently from run to run.
    register(id=NAS_ENV_ID, entry_point="envs.nas_env:NasEnv", nondeterministic=True)

__all__ = ["NAS_ENV_ID"]
