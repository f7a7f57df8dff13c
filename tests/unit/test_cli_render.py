"""What `ragq collections` prints for the collections the API lists."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from cli.render import collections_table


def _printed(collections: list[dict[str, Any]]) -> str:
    out = Console(record=True, width=200)
    collections_table(out, collections)
    return out.export_text()


def _collection(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "documents": 3, "chunks": 12, "embed_model": "zhipu/embedding-2", "dimension": 1024, **extra}


def test_collections_whose_search_indexes_are_not_built_yet_are_named_under_the_table() -> None:
    text = _printed([_collection("kb", search_indexes_built=True), _collection("big", search_indexes_built=False)])
    assert "zhipu/embedding-2 (1024-d)" in text
    assert "search indexes not built yet: big (" in text


def test_nothing_is_said_of_search_indexes_when_all_are_built_or_the_api_does_not_say() -> None:
    text = _printed([_collection("kb", search_indexes_built=True), _collection("old")])
    assert "search indexes" not in text
