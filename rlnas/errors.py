"""Errors rlnas raises on purpose.

Every error the user can cause is an :class:`RlnasError`; the CLI prints its message as one line
and exits non-zero, so messages must say what was wrong and what is allowed. A failed child network
is *not* an error of the search: it is a recorded failed trial (see :class:`ChildError`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RlnasError(Exception):
    """Base class: a problem the user can fix; the CLI shows it as one line, no traceback."""


class ConfigError(RlnasError):
    """A configuration or search space is invalid (fatal: nothing runs)."""


class DataError(RlnasError):
    """A dataset is unknown, missing, corrupt or cannot be split (fatal)."""


class RunError(RlnasError):
    """A run directory cannot be created, read or written (fatal)."""


class SearchAborted(RlnasError):
    """The search stopped itself (e.g. every recent child failed); finished trials are kept."""


class ChildError(RlnasError):
    """One child network failed to build or train (recoverable: the trial is recorded as failed)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest of ``choices`` to ``name``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class InvalidActionError(RlnasError, ValueError):
    """An environment received an action that is not legal for the current decision."""
