"""Find ``--model module:function`` without running it, so that a typo costs no TensorFlow start-up.

Importing the module runs it, and a model function's module imports Keras (10-15 s of TensorFlow
start-up) before the import could fail. Here the module is found on the path, and its source read
for the function's name, without running it: a missing module or function is one line at once. A
module that is not Python source, or that could define names at run time (``import *``, a module
``__getattr__``), is left to the import to judge.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys

from rlnas.errors import ConfigError, did_you_mean


def check_model_function(spec: str) -> None:
    """Raise the one-line ConfigError the import would raise, for what can be told without it.

    Raises:
        ConfigError: no module of that name on the path, or a Python source that defines no such name.
    """
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:  # as the import will (rlnas.space.discovery)
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):  # a parent package that is not there, or a relative name
        found = None
    if found is None:
        raise ConfigError(
            f"cannot import module {module_name!r} of model function {spec!r}; "
            "run from the directory that holds it, or install it"
        )
    names = _top_level_names(found.origin)
    first = attr.split(".")[0]
    if names is not None and first not in names:
        public = sorted(n for n in names if not n.startswith("_"))
        raise ConfigError(f"module {module_name!r} has no {attr!r}" + did_you_mean(first, public))


def _top_level_names(origin: str | None) -> set[str] | None:
    """The names a Python source binds at its top level, or None where that cannot be told."""
    if not origin or not origin.endswith(".py"):
        return None
    try:
        with open(origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), origin)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):  # the import reports these its own way
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return None if "__getattr__" in names or _called(tree) & BINDS_ANY_NAME else names


BINDS_ANY_NAME = frozenset({"globals", "exec", "setattr", "vars"})
"""Calls through which a module can bind a name that its source does not spell out."""


def _called(tree: ast.AST) -> set[str]:
    """The plain names called anywhere in ``tree``."""
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
