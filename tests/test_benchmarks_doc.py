"""BENCHMARKS.md and benchmarks/results/ name each other: every results file is a figure the reference
explains, and every results path the reference cites is there to check it against."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CITED = re.compile(r"benchmarks/results/[\w./-]*[\w]")


def _doc() -> str:
    return (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")


def _stored() -> set[str]:
    """Every results file, as the path BENCHMARKS.md writes it (hidden files are no results)."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in RESULTS.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(RESULTS).parts)
    }


def _cited() -> set[str]:
    return set(CITED.findall(_doc()))


def test_every_results_file_is_named_in_benchmarks_md() -> None:
    unnamed = sorted(_stored() - _cited())
    assert not unnamed, f"results files BENCHMARKS.md does not name: {unnamed}"


def test_every_results_path_benchmarks_md_names_exists() -> None:
    missing = sorted(path for path in _cited() if not (ROOT / path).is_file())
    assert not missing, f"BENCHMARKS.md names results files that do not exist: {missing}"


def test_results_are_filed_by_study() -> None:
    loose = sorted(path for path in _stored() if path.count("/") < 3)
    assert not loose, f"results files outside a study folder: {loose}"


def test_the_pattern_reads_a_cited_path_whole() -> None:
    text = "see `benchmarks/results/field/budget50.json`), and benchmarks/results/races/x.md."
    assert CITED.findall(text) == ["benchmarks/results/field/budget50.json", "benchmarks/results/races/x.md"]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_to_benchmarks_md_sections_resolve() -> None:
    anchors = {_slug(line.lstrip("#")) for line in _doc().splitlines() if line.startswith("#")}
    targets = (ROOT / "docs" / "targets.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\(#([\w-]+)\)", _doc()) + re.findall(r"BENCHMARKS\.md#([\w-]+)", targets)
    assert linked
    assert sorted(set(linked) - anchors) == []


def test_the_reference_speaks_of_today() -> None:
    history = re.compile(r"issue #?\d|session \d|\bround \d|this session|as before", re.IGNORECASE)
    for path in (ROOT / "BENCHMARKS.md", ROOT / "docs" / "targets.md"):
        assert not history.findall(path.read_text(encoding="utf-8")), path
