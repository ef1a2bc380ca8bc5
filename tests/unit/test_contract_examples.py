"""Every example event in the docs is a valid event of its type (docs/contract-versioning.md):
the example files under docs/examples/events/ (one per type) and the JSON blocks of the
Markdown pages that hold a CloudEvent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import EVENT_TYPES, decode_event

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "examples" / "events").glob("*.json"))
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)


def _events_in_pages() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in JSON_BLOCK.findall(page.read_text(encoding="utf-8")):
            if '"specversion"' in block:
                found.append((f"{page.name}:{block[:40]!r}", block))
    return found


def _unknown_keys(example: Any, known: Any, path: str = "") -> list[str]:
    """Keys of the example that its model does not have (models ignore them: a typo would pass)."""
    if isinstance(example, dict) and isinstance(known, dict):
        unknown = [f"{path}.{key}" for key in example if key not in known]
        return unknown + [
            item
            for key in example
            if key in known
            for item in _unknown_keys(example[key], known[key], f"{path}.{key}")
        ]
    if isinstance(example, list) and isinstance(known, list):
        return [
            item
            for index, (a, b) in enumerate(zip(example, known, strict=False))
            for item in _unknown_keys(a, b, f"{path}[{index}]")
        ]
    return []


def _check(body: str) -> str:
    envelope, data = decode_event(body.encode())  # raises when invalid for its model
    example = json.loads(body)
    assert not _unknown_keys(example["data"], data.model_dump(mode="json"), "data")
    return envelope.type


def test_every_event_type_has_an_example() -> None:
    assert {path.stem for path in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_each_example_file_is_valid_for_its_type(path: Path) -> None:
    assert _check(path.read_text(encoding="utf-8")) == path.stem


@pytest.mark.parametrize(("where", "body"), _events_in_pages(), ids=lambda v: str(v)[:40])
def test_each_event_shown_in_the_docs_is_valid(where: str, body: str) -> None:
    assert _check(body) in EVENT_TYPES, where


def test_the_docs_show_at_least_one_event() -> None:
    assert _events_in_pages()


def test_a_typo_in_an_example_is_caught() -> None:
    body = json.loads(EXAMPLES[0].read_text(encoding="utf-8"))
    body["data"]["custmer"] = body["data"].pop("customer", None)
    assert _unknown_keys(body["data"], {k: None for k in body["data"] if k != "custmer"})
