"""What an index job indexes: one item per document, named, with the file it is read from."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel


class IndexItem(BaseModel):
    """A document to index. Its id comes from its name, so re-sending a name replaces that document."""

    doc_id: str
    name: str
    path: str
    # An upload's blob key ("<sha256><suffix>"): a worker reads it from the store's blobs, wherever it runs;
    # `path` is then only where the API kept it.
    blob: str | None = None


def document_id(kind: str, name: str) -> str:
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:32]


def path_item(path: Path, shown: str | None = None) -> IndexItem:
    """A server-side file: its id from its resolved path (as ever, so re-indexing keeps ids), named `shown`
    (shared/ingest/import_paths.py `display_path`: never the absolute server path) when given."""
    resolved = str(path.resolve())
    return IndexItem(doc_id=document_id("path", resolved), name=shown or resolved, path=resolved)


def upload_item(filename: str, stored_path: Path) -> IndexItem:
    """An uploaded file, named by its (sanitised) filename within the collection."""
    return IndexItem(
        doc_id=document_id("upload", filename), name=filename, path=str(stored_path), blob=stored_path.name
    )
