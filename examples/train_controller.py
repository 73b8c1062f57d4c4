"""Train the RL controller on the bundled MNIST subset with the public API, top to bottom.

This is plain REINFORCE (Zoph & Le 2017): the LSTM controller samples a batch, the children train,
and one policy-gradient step follows against a moving-average baseline. It is what
``rlnas search --plain-reinforce --trials 48 --archs-per-update 8 --epochs 1`` runs, without the run
directory and TensorBoard. The default
``rlnas search`` adds a learned reward model around the same controller (novel proposals only,
mutants mixed into the pool, imagined steps between batches; rlnas.strategies.reinforce). Copy this
and adapt it (another space, another reward, another agent).
Run: ``python examples/train_controller.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs.nas_env import NasEnv
from rlnas import default_space
from rlnas.data import DataSpec
from rlnas.exec.evaluator import TrainSpec, WorkerEvaluator
from rlnas.policy import gradient as policy_gradient
from rlnas.settings import PLAIN_REINFORCE, ReinforceSettings
from rlnas.strategies.reinforce import make_controller


@dataclass(frozen=True)
class Args:
    trials: int = 48  # architectures to train
    m: int = 8  # architectures per REINFORCE update
    epochs: int = 1  # epochs per child
    seed: int = 0
    # The controller and its update as `rlnas search --plain-reinforce` sets them: Adam step, ENAS's
    # tanh bound on the logits, entropy bonus, baseline decay, gradient clipping.
    settings: ReinforceSettings = field(default_factory=lambda: ReinforceSettings(**PLAIN_REINFORCE))


def main(args: Args = Args()) -> None:
    space = default_space()
    # Children train in a worker process (TensorFlow never returns memory to the OS).
    evaluator = WorkerEvaluator(DataSpec("mnist_5k"), TrainSpec(epochs=args.epochs))
    env = NasEnv(space, evaluator=evaluator)
    controller = make_controller(args.settings, space, seed=args.seed)
    baseline = policy_gradient.Baseline(decay=args.settings.baseline_decay)
    best = (0.0, {})

    for update in range(args.trials // args.m):
        sample = controller.sample(args.m)  # tokens drawn from the policy, never argmax
        masks = np.array([space.active_mask(t) for t in sample.tokens])
        rewards = []
        for k, tokens in enumerate(sample.tokens):
            env.reset(seed=args.seed * 100_000 + update * args.m + k)
            for token, active in zip(tokens, masks[k], strict=True):
                if active:  # the env asks only the decisions that exist
                    _, reward, _, _, info = env.step(int(token))
            rewards.append(reward)
            best = max(best, (reward, info["architecture"]), key=lambda b: b[0])
        stats = policy_gradient.update(
            controller, sample.tokens, masks, np.array(rewards), baseline,
            entropy_weight=args.settings.entropy_weight, grad_clip=args.settings.grad_clip,
        )  # fmt: skip
        print(f"update {update}: reward mean {np.mean(rewards):.3f} max {np.max(rewards):.3f} "
              f"baseline {stats.baseline:.3f} entropy {stats.entropy:.2f}")  # fmt: skip

    env.close()
    print(f"best validation accuracy {best[0]:.4f}: {best[1]}")


if __name__ == "__main__":
    main()
