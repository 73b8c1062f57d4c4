"""Plain-text formatting shared by the CLI and the space summary (no dependencies)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def with_article(noun: str) -> str:
    """``an int``, ``a float``, ``a module``: the noun after the article English gives its spelling."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def format_value(v: Any) -> str:
    """A decision value as a reader wants it: floats to 3 significant digits, the rest as is."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def format_arch(arch: Mapping[str, Any]) -> str:
    """``num_layers=2 units_0=448 ... lr=0.00464``: one line per architecture."""
    return " ".join(f"{k}={format_value(v)}" for k, v in arch.items())


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, with a dashed rule under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (TensorBoard's text plugin and report.md render it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
