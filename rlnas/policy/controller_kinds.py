"""The controller kinds and their default steps: what ``--controller`` may name, without TensorFlow.

:mod:`rlnas.policy.controller` builds the policies and imports TensorFlow; the config validates
``controller`` and picks ``controller_lr``'s default from here, so reading a config stays cheap.
"""

from __future__ import annotations

CONTROLLERS = ("lstm", "factorized")
"""reinforce's policy (rlnas.policy.controller.Controller's ``kind``): Zoph & Le's autoregressive LSTM, or one
free logit vector per decision."""
CONTROLLER_LR = {"lstm": 0.005, "factorized": 0.02}
"""Default Adam step per policy: a free logit vector needs a larger step than the LSTM's weights to move
the policy as far (both chosen on two project lookup tables)."""
