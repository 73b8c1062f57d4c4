"""How much memory a supernet needs, known before it is built.

The estimate counts float32 values: the shared weights three times (the weights, their momentum slot
and their gradient) and the activations the widest path keeps for the backward pass at the training
batch size. It leaves out TensorFlow's own footprint (a few hundred MB of code and thread pools, the
same for every space), so compare it with a limit meant for the supernet itself.
"""

from __future__ import annotations

from rlnas.errors import ConfigError
from rlnas.space import SearchSpace

DEFAULT_LIMIT = 2 * 1024**3
"""2 GB: what a laptop spares for the supernet next to the data."""


def estimate_bytes(
    space: SearchSpace, input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> int:
    """Bytes of weights, optimizer slot, gradients and the widest path's activations (module docstring)."""
    from rlnas.policy.supernet.registry import supernet_class

    cls = supernet_class(space)
    params = sum(_count(s) for s in cls.plan(space, tuple(input_shape), num_classes).values())
    activations = cls.activation_floats(space, tuple(input_shape), num_classes) * int(batch_size)
    return 4 * (3 * params + activations)


def check_memory(
    space: SearchSpace,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    *,
    limit: int = DEFAULT_LIMIT,
) -> int:
    """The estimate; ConfigError (one line) when it exceeds ``limit`` bytes."""
    need = estimate_bytes(space, input_shape, num_classes, batch_size)
    if need > limit:
        raise ConfigError(
            f"the {space.model} supernet needs about {need / 1024**3:.1f} GB at batch size {batch_size} "
            f"(limit {limit / 1024**3:.1f} GB); lower --batch-size "
            "or use a smaller space (fewer filters or layers)"
        )
    return need


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
