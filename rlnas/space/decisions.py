"""Search spaces as data: ordered, named decisions, their values and the conditions under which they exist.

A :class:`SearchSpace` knows nothing of Keras or RL. Each decision maps its values to a neutral index
(the *token*), so the controller only ever sees vocabulary sizes, and the child builder only ever sees
an :class:`Architecture` (decision name -> value, for the active decisions only).

Token sequences always have one entry per decision, in order. A decision whose condition is false
(``units_2`` when ``num_layers`` is 2) is *inactive*: its token is ignored by :meth:`SearchSpace.decode`
and left out of the log-probability, and :meth:`SearchSpace.encode` writes :data:`INACTIVE` there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rlnas.errors import ConfigError, did_you_mean
from rlnas.text import format_table, format_value

INACTIVE = -1
"""Token written for a decision that does not exist in an architecture."""

Value = int | float | str | bool
Architecture = Mapping[str, Value]
"""Active decision name -> chosen value, in the space's decision order."""

_KINDS = {"int": int, "float": float, "choice": str, "bool": bool}


def _check_value(name: str, kind: str, value: object) -> Value:
    """Validate one value against ``kind`` and return it normalised (ints stay ints, floats floats)."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "choice": isinstance(value, str),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        raise ConfigError(f"decision {name!r}: value {value!r} is not of kind {kind!r}")
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"decision {name!r}: value {value!r} is not finite")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Decision:
    """One choice the controller makes.

    Args:
        name: identifier, unique in the space (``units_0``).
        values: the allowed values, in token order; at least one, no duplicates, all of ``kind``.
        kind: ``int``, ``float``, ``choice`` (strings) or ``bool``.
        when: condition for the decision to exist: an earlier decision's name -> the values of it for
            which this one is active (``{"num_layers": (3,)}``). Empty means always active.
    """

    name: str
    values: tuple[Value, ...]
    kind: str = "choice"
    when: Mapping[str, tuple[Value, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError(f"decision name {self.name!r} must be a non-empty identifier")
        if self.kind not in _KINDS:
            raise ConfigError(
                f"decision {self.name!r}: unknown kind {self.kind!r}; allowed: {', '.join(_KINDS)}"
                + did_you_mean(str(self.kind), _KINDS)
            )
        if isinstance(self.values, str | bytes) or not isinstance(self.values, Sequence):
            raise ConfigError(f"decision {self.name!r}: values must be a list, got {self.values!r}")
        values = tuple(_check_value(self.name, self.kind, v) for v in self.values)
        if not values:
            raise ConfigError(f"decision {self.name!r} has no values; give at least one")
        if len(set(values)) != len(values):
            dup = next(v for v in values if values.count(v) > 1)
            raise ConfigError(f"decision {self.name!r}: value {dup!r} appears twice")
        object.__setattr__(self, "values", values)
        when = {str(k): tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in self.when.items()}
        object.__setattr__(self, "when", MappingProxyType(when))

    @property
    def size(self) -> int:
        """Vocabulary size: the number of tokens of this decision."""
        return len(self.values)

    def index(self, value: Value) -> int:
        """Token of ``value``; raises ConfigError naming the allowed values."""
        try:
            value = _check_value(self.name, self.kind, value)
            return self.values.index(value)
        except (ConfigError, ValueError):
            raise ConfigError(f"{self.name}={value!r} is not one of {list(self.values)}") from None

    def is_active(self, chosen: Mapping[str, Value]) -> bool:
        """Whether this decision exists given the values ``chosen`` for earlier decisions."""
        return all(p in chosen and chosen[p] in vals for p, vals in self.when.items())

    def condition_text(self) -> str:
        """The condition as a reader would write it, e.g. ``num_layers in {3}``."""
        if not self.when:
            return ""
        parts = [f"{k} in {{{', '.join(map(repr, v))}}}" for k, v in self.when.items()]
        return " and ".join(parts)


class SearchSpace:
    """An ordered, validated collection of decisions.

    Args:
        decisions: the decisions in the order the controller emits them. A condition may only refer to
            an earlier decision, and only to values that decision has.
        model: name of the child builder that interprets architectures of this space (``mlp``).

    Raises:
        ConfigError: empty space, duplicate names, or a condition naming an unknown or later decision.
    """

    def __init__(self, decisions: Sequence[Decision], *, model: str = "mlp") -> None:
        if not decisions:
            raise ConfigError("the search space has no decisions; declare at least one")
        self.decisions: tuple[Decision, ...] = tuple(decisions)
        self.model = model
        seen: dict[str, Decision] = {}
        for d in self.decisions:
            if d.name in seen:
                raise ConfigError(f"decision {d.name!r} is declared twice")
            for parent, vals in d.when.items():
                if parent not in seen:
                    later = any(x.name == parent for x in self.decisions)
                    where = "a later decision" if later else "no decision of the space"
                    where = "itself" if parent == d.name else where
                    raise ConfigError(
                        f"decision {d.name!r}: condition refers to {parent!r}, which is {where}"
                        + ("" if later else did_you_mean(parent, seen))
                        + "; conditions may only name earlier decisions"
                    )
                for v in vals:
                    seen[parent].index(v)
            seen[d.name] = d
        self._by_name = seen

    # -- introspection ---------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions)

    @property
    def vocab_sizes(self) -> tuple[int, ...]:
        """What the controller needs to know: one vocabulary size per decision."""
        return tuple(d.size for d in self.decisions)

    def __len__(self) -> int:
        return len(self.decisions)

    def __getitem__(self, name: str) -> Decision:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"unknown decision {name!r}" + did_you_mean(name, self._by_name)) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    # -- tokens <-> architectures ----------------------------------------------------------------
    def active_mask(self, tokens: Sequence[int]) -> list[bool]:
        """Which decisions exist given ``tokens`` (inactive entries of ``tokens`` are ignored)."""
        self._check_length(tokens)
        chosen: dict[str, Value] = {}
        mask = []
        for d, t in zip(self.decisions, tokens, strict=True):
            active = self._is_active(d, chosen)
            mask.append(active)
            if active:
                if not 0 <= int(t) < d.size:
                    raise ConfigError(f"token {t} out of range for {d.name!r} (0..{d.size - 1})")
                chosen[d.name] = d.values[int(t)]
        return mask

    def decode(self, tokens: Sequence[int]) -> dict[str, Value]:
        """Tokens -> architecture (active decisions only, in order)."""
        mask = self.active_mask(tokens)
        return {d.name: d.values[int(t)] for d, t, on in zip(self.decisions, tokens, mask, strict=True) if on}

    def encode(self, arch: Architecture) -> list[int]:
        """Architecture -> tokens, with :data:`INACTIVE` for decisions that do not exist.

        Raises ConfigError when a value is unknown, an active decision is missing, or an inactive
        (or unknown) decision is given: an architecture has exactly one encoding.
        """
        chosen: dict[str, Value] = {}
        tokens: list[int] = []
        for d in self.decisions:
            if not self._is_active(d, chosen):
                tokens.append(INACTIVE)
                continue
            if d.name not in arch:
                raise ConfigError(f"architecture lacks active decision {d.name!r}")
            t = d.index(arch[d.name])
            chosen[d.name] = d.values[t]
            tokens.append(t)
        extra = set(arch) - set(chosen)
        if extra:
            raise ConfigError(f"architecture sets inactive or unknown decisions: {sorted(extra)}")
        return tokens

    def canonical_tokens(self, tokens: Sequence[int]) -> list[int]:
        """The same tokens with inactive positions set to :data:`INACTIVE` (one form per architecture)."""
        mask = self.active_mask(tokens)
        return [int(t) if on else INACTIVE for t, on in zip(tokens, mask, strict=True)]

    def key(self, arch_or_tokens: Architecture | Sequence[int]) -> str:
        """Canonical key of an architecture, for caching and deduplication (``2-3-15-1-0-3``)."""
        if isinstance(arch_or_tokens, Mapping):
            tokens = self.encode(arch_or_tokens)
        else:
            tokens = self.canonical_tokens(arch_or_tokens)
        return "-".join("x" if t == INACTIVE else str(t) for t in tokens)

    # -- size ------------------------------------------------------------------------------------
    def size(self) -> int:
        """Exact number of distinct architectures (conditions taken into account)."""
        parents = {p for d in self.decisions for p in d.when}

        def count(i: int, chosen: dict[str, Value]) -> int:
            if i == len(self.decisions):
                return 1
            d = self.decisions[i]
            if not self._is_active(d, chosen):
                return count(i + 1, chosen)
            if d.name in parents:
                return sum(count(i + 1, {**chosen, d.name: v}) for v in d.values)
            return d.size * count(i + 1, chosen)

        return count(0, {})

    def architectures(self) -> Iterator[list[int]]:
        """Every distinct architecture once, as canonical tokens (:data:`INACTIVE` where inactive), in
        lexicographic token order: what a lookup table of the whole space is built from."""

        def walk(i: int, chosen: dict[str, Value], tokens: list[int]) -> Iterator[list[int]]:
            if i == len(self.decisions):
                yield list(tokens)
                return
            d = self.decisions[i]
            if not self._is_active(d, chosen):
                yield from walk(i + 1, chosen, [*tokens, INACTIVE])
                return
            for t, v in enumerate(d.values):
                yield from walk(i + 1, {**chosen, d.name: v}, [*tokens, t])

        return walk(0, {}, [])

    def summary(self) -> str:
        """A table of decisions (name, kind, values, condition) and the exact space size."""
        rows = [(d.name, d.kind, _fmt_values(d.values), d.condition_text()) for d in self.decisions]
        table = format_table(("decision", "kind", "values", "condition"), rows)
        size = f"{len(self)} decisions, model {self.model!r}: {self.size():,} distinct architectures"
        return f"{table}\n\n{size}"

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/TOML friendly); :func:`rlnas.space.toml.space_from_dict` reads it back."""
        return {
            "model": self.model,
            "decisions": [
                {"name": d.name, "kind": d.kind, "values": list(d.values)}
                | ({"when": {k: list(v) for k, v in d.when.items()}} if d.when else {})
                for d in self.decisions
            ],
        }

    # -- helpers ---------------------------------------------------------------------------------
    def _check_length(self, tokens: Sequence[int]) -> None:
        if len(tokens) != len(self.decisions):
            raise ConfigError(f"expected {len(self.decisions)} tokens, got {len(tokens)}")

    @staticmethod
    def _is_active(d: Decision, chosen: Mapping[str, Value]) -> bool:
        return d.is_active(chosen)


def _fmt_values(values: tuple[Value, ...]) -> str:
    """Values for a table: arithmetic int ranges shortened to ``32..512 step 32 (16 values)``."""
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if ints and len(values) >= 4:
        steps = {b - a for a, b in itertools.pairwise(values)}  # type: ignore[operator]
        if len(steps) == 1:
            return f"{values[0]}..{values[-1]} step {steps.pop()} ({len(values)} values)"
    return ", ".join(format_value(v) for v in values)


def log_grid(low: float, high: float, num: int) -> tuple[float, ...]:
    """``num`` values evenly spaced in log scale from ``low`` to ``high``, rounded to 3 significant digits."""
    if not (0 < low < high) or num < 2:
        raise ConfigError(f"log grid needs 0 < low < high and num >= 2, got {low}, {high}, {num}")
    step = (math.log(high) - math.log(low)) / (num - 1)
    return tuple(float(f"{math.exp(math.log(low) + i * step):.3g}") for i in range(num))
