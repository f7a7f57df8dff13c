"""Storing uploaded files: stream to disk while hashing and checking, then file under their sha256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from shared.ingest.import_paths import SUPPORTED_SUFFIXES, TEXT_SUFFIXES
from shared.ingest.text_decoding import TextDecoder, UndecodableText

HTML_SUFFIXES = (".html", ".htm")
_BLOCK = 1 << 20


class UploadRejected(ValueError):
    """One uploaded file cannot be accepted; `status` is the HTTP status it earns."""

    def __init__(self, filename: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{filename}: {message}")
        self.filename = filename
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StoredUpload:
    filename: str
    sha256: str
    bytes: int
    path: Path


def clean_filename(raw: str | None) -> str:
    """A relative, forward-slash name without '..' or empty parts ('dir/a.md' is kept, '/etc/x' -> 'etc/x')."""
    parts = [p for p in PurePosixPath((raw or "").replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    return "/".join(parts)


def check_name(filename: str) -> None:
    if not filename:
        raise UploadRejected("(unnamed)", 422, "missing_filename", "a file part has no filename")
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        raise UploadRejected(
            filename, 415, "unsupported_type", f"type {suffix or '(none)'} is not supported; supported: {supported}"
        )


def store_upload(source: BinaryIO, filename: str, uploads_dir: Path, max_bytes: int) -> StoredUpload:
    """Copy `source` to uploads_dir/<sha[:2]>/<sha><suffix>; refuse it if empty, too big or (text) undecodable.

    A text file is checked with the decoder the index worker reads it with, so what is accepted here can be read.
    """
    check_name(filename)
    suffix = PurePosixPath(filename).suffix.lower()
    digest = hashlib.sha256()
    decoder = TextDecoder(html=suffix in HTML_SUFFIXES) if suffix in TEXT_SUFFIXES else None
    size = 0
    (uploads_dir / "tmp").mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=uploads_dir / "tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while block := source.read(_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise UploadRejected(filename, 413, "file_too_large", f"larger than {max_bytes} bytes")
                digest.update(block)
                if decoder:
                    with _undecodable_rejected(filename):
                        decoder.feed(block)
                out.write(block)
        if decoder and size:
            with _undecodable_rejected(filename):
                decoder.finish()
        if size == 0:
            raise UploadRejected(filename, 422, "empty_file", "the file is empty")
        sha = digest.hexdigest()
        target = uploads_dir / sha[:2] / f"{sha}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        return StoredUpload(filename=filename, sha256=sha, bytes=size, path=target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _undecodable_rejected(filename: str) -> Iterator[None]:
    try:
        yield
    except UndecodableText as exc:
        raise UploadRejected(filename, 422, "invalid_encoding", str(exc)) from exc
