"""Which local files `ragq index` sends, and sending them as multipart uploads in bounded batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.client import ApiClient, CliError
from shared.ingest.import_paths import SUPPORTED_SUFFIXES, expand_files

# One request per batch keeps open files and request size well under the API's limits
# (MAX_UPLOAD_FILES, MAX_UPLOAD_REQUEST_BYTES); each batch becomes one index job.
BATCH_FILES = 200
BATCH_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str  # the document's name on the server: relative to the folder given, so names stay apart
    size: int


def collect_files(paths: list[Path]) -> list[LocalFile]:
    """Files named directly (the API judges their type) and the supported files under folders, recursively."""
    found: dict[str, LocalFile] = {}
    for path in paths:
        if not path.exists():
            raise CliError(f"no such file or folder: {path}")
        if path.is_file():
            files = [(path, path.name)]
        else:
            root = path.resolve()
            files = [(f, f.relative_to(root.parent).as_posix()) for f in expand_files([root])]
        for file, name in files:
            found.setdefault(name, LocalFile(file, name, file.stat().st_size))
    if not found:
        given = ", ".join(str(p) for p in paths)
        raise CliError(f"no files of a supported type ({', '.join(SUPPORTED_SUFFIXES)}) under {given}")
    return sorted(found.values(), key=lambda f: f.name)


def batches(files: list[LocalFile]) -> Iterator[list[LocalFile]]:
    batch: list[LocalFile] = []
    size = 0
    for file in files:
        if batch and (len(batch) >= BATCH_FILES or size + file.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += file.size
    if batch:
        yield batch


def upload(client: ApiClient, collection: str, files: list[LocalFile], skip_invalid: bool) -> dict[str, Any]:
    """POST one batch to /v1/collections/{c}/documents; the API's answer (job id, documents, rejected)."""
    with ExitStack() as stack:
        parts = [("files", (f.name, stack.enter_context(f.path.open("rb")))) for f in files]
        params = {"skip_invalid": "true"} if skip_invalid else None
        return dict(client.post(f"/v1/collections/{collection}/documents", files=parts, params=params))
