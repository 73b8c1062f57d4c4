"""Train the RL controller on the bundled MNIST subset with the public API, top to bottom.

This is the loop ``rlnas search`` runs, without the run directory and TensorBoard: copy it and adapt
it (another space, another reward, another agent). Run: ``python examples/train_controller.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.nas_env import NasEnv
from rlnas import default_space
from rlnas.data import DataSpec
from rlnas.exec.evaluator import TrainSpec, WorkerEvaluator
from rlnas.policy import gradient as policy_gradient
from rlnas.policy.controller import Controller


@dataclass(frozen=True)
class Args:
    trials: int = 48  # architectures to train
    m: int = 8  # architectures per REINFORCE update
    epochs: int = 1  # epochs per child
    controller_lr: float = 0.01  # Adam step of the controller
    tanh_constant: float = 2.5  # ENAS's bound on the logits: keeps the policy from collapsing early
    entropy_weight: float = 1e-3  # bonus that keeps the policy exploring
    seed: int = 0


def main(args: Args = Args()) -> None:
    space = default_space()
    # Children train in a worker process (TensorFlow never returns memory to the OS).
    evaluator = WorkerEvaluator(DataSpec("mnist_5k"), TrainSpec(epochs=args.epochs))
    env = NasEnv(space, evaluator=evaluator)
    controller = Controller(
        space.vocab_sizes, learning_rate=args.controller_lr, tanh_constant=args.tanh_constant, seed=args.seed
    )
    baseline = policy_gradient.Baseline(decay=0.95)
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
            entropy_weight=args.entropy_weight, grad_clip=5.0,
        )  # fmt: skip
        print(f"update {update}: reward mean {np.mean(rewards):.3f} max {np.max(rewards):.3f} "
              f"baseline {stats.baseline:.3f} entropy {stats.entropy:.2f}")  # fmt: skip

    env.close()
    print(f"best validation accuracy {best[0]:.4f}: {best[1]}")


if __name__ == "__main__":
    main()
