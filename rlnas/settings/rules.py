"""The checks a setting is validated by: ``check(name, value)`` raises a one-line ConfigError that
names the setting, echoes the bad value and says what is allowed.

They live below both the shared config (:mod:`rlnas.config`) and each strategy's own settings
(:mod:`rlnas.settings`), so that every setting reads the same, wherever it is declared.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import field
from typing import Any

from rlnas.errors import ConfigError, did_you_mean


def setting(default: Any, help: str) -> Any:
    """A dataclass field with its ``--flag``'s help text."""
    return field(default=default, metadata={"help": help})


Check = Callable[[str, Any], None]
"""``check(name, value)`` raises ConfigError naming the field and echoing the bad value."""


def positive(name: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name} must be a {'whole ' if integer else ''}number, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be positive, got {value!r}")


def whole(name: str, value: Any) -> None:
    positive(name, value, integer=True)


def optional(check: Check) -> Check:
    """None allowed (the setting is off or automatic), anything else checked."""

    def run(name: str, value: Any) -> None:
        if value is not None:
            check(name, value)

    return run


def must(ok: Callable[[Any], bool], rule: str) -> Check:
    """A value ``ok`` accepts, else "<name> must be <rule>, got <value>" (also for a wrong type)."""

    def run(name: str, value: Any) -> None:
        try:
            accepted = ok(value)
        except TypeError:  # "x" < 0: the wrong type is as bad as the wrong value
            accepted = False
        if not accepted:
            raise ConfigError(f"{name} must be {rule}, got {value!r}")

    return run


def one_of(allowed: tuple[str, ...]) -> Check:
    def run(name: str, value: Any) -> None:
        if value not in allowed:
            raise ConfigError(
                f"unknown {name} {value!r}; allowed: {', '.join(allowed)}" + did_you_mean(str(value), allowed)
            )

    return run


def finite_number(value: Any, low: float = 0) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and low <= value < math.inf


def flag(name: str, value: Any) -> None:
    """A switch: true or false, nothing that merely looks like one."""
    must(lambda v: isinstance(v, bool), "true or false")(name, value)


def check_all(settings: Any, rules: dict[str, Check]) -> None:
    """Every rule of ``rules`` on the settings object, in the order given (the first bad one reports)."""
    for name, check in rules.items():
        check(name, getattr(settings, name))
