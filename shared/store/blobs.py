"""Uploaded files, kept where every index worker can read them.

Uploads are content-addressed: a blob's key is its sha256 plus its suffix ("<sha256>.pdf"). The embedded
engine keeps them as files under DATA_DIR/uploads (API and workers share the disk). With PostgreSQL the
bytes live in the database, so a worker on another machine with an empty DATA_DIR fetches the file into
its own DATA_DIR/uploads on first use; the local copy is only a cache.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path


def blob_key(sha256: str, suffix: str) -> str:
    return f"{sha256}{suffix}"


def blob_sha256(key: str) -> str:
    """The sha256 a blob key starts with (the content's, and its documents' `sha256`)."""
    return key[:64]


def blob_path(root: Path, key: str) -> Path:
    """Where a blob's file lies under an uploads folder: <root>/<key[:2]>/<key>."""
    return root / key[:2] / key


class BlobNotFoundError(LookupError):
    """No upload with this key is stored (deleted, or uploaded to another deployment)."""


class BlobStore(ABC):
    """Put uploaded files where index workers can read them."""

    def __init__(self, local_root: Path) -> None:
        self.local_root = local_root

    @abstractmethod
    def put(self, key: str, path: Path) -> None:
        """Keep the file at `path` under `key` (it is already at `blob_path(local_root, key)`)."""

    @abstractmethod
    def local_path(self, key: str) -> Path:
        """A local file holding the blob, fetched first if this machine does not have it."""

    @abstractmethod
    def keys_stored_before(self, when: float) -> list[str]:
        """Keys of the blobs last put before `when` (a Unix time); a put of the same bytes again renews it."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob (and this machine's copy); nothing happens if it is already gone."""

    def _delete_local(self, key: str) -> None:
        blob_path(self.local_root, key).unlink(missing_ok=True)


class FileBlobStore(BlobStore):
    """Blobs are the files under DATA_DIR/uploads; nothing more to do."""

    def put(self, key: str, path: Path) -> None:
        if path != blob_path(self.local_root, key):
            raise ValueError(f"{path} is not where blob {key} belongs")

    def local_path(self, key: str) -> Path:
        path = blob_path(self.local_root, key)
        if not path.exists():
            raise BlobNotFoundError(f"uploaded file {key} is missing from {self.local_root}")
        return path

    def keys_stored_before(self, when: float) -> list[str]:
        # The upload writes each file anew (os.replace), so its mtime is when it was last uploaded.
        found = []
        for path in self.local_root.glob("??/*"):
            with contextlib.suppress(FileNotFoundError):
                if path == blob_path(self.local_root, path.name) and path.stat().st_mtime < when:
                    found.append(path.name)
        return sorted(found)

    def delete(self, key: str) -> None:
        self._delete_local(key)


def write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temporary file, so a reader never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
