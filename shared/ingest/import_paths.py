"""Which files an index job may read: paths under the allowed import roots, of supported types."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: `ragq` imports this module and need not load the settings' libraries
    from shared.settings import Settings

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".csv", ".tsv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
# What the index workers read (workers/loaders/__init__.py LOADERS); docs/api.md's format table says how.
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, ".pdf", ".docx", ".pptx", ".xlsx", ".epub", *IMAGE_SUFFIXES)
SUPPORTED_TYPES = ", ".join(suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES)  # for people: "txt, md, …"


class ImportPathError(ValueError):
    """A requested path is outside the import roots, missing, or holds nothing we can index."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Longest path an index job may name, and longest part of one (Linux's NAME_MAX, in UTF-8 bytes).
MAX_PATH_CHARS = 1024
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class SkippedFile:
    """A file met while walking a folder and left out, with why (reported in the job's per-document statuses)."""

    name: str
    reason: str


@dataclass(frozen=True)
class ImportListing:
    files: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def display_path(path: Path, settings: Settings) -> str:
    """How a server-side path is shown to users: relative to DATA_DIR/import, else `<root folder>/<relative>`.

    Never the absolute server path, which would show callers the server's layout: errors, job results and a
    document's `source` use this.
    """
    if path == settings.import_dir or path.is_relative_to(settings.import_dir):
        return path.relative_to(settings.import_dir).as_posix() or "."
    for root in settings.allowed_roots:
        if path == root or path.is_relative_to(root):
            return (Path(root.name) / path.relative_to(root)).as_posix()
    return path.name


def check_path_text(raw: str) -> None:
    """Refuse what no file system path can hold: a NUL byte, an over-long path or name (a 422, not an OSError)."""
    if not raw.strip():
        raise ImportPathError("invalid_path", "empty path")
    if "\x00" in raw:
        raise ImportPathError("invalid_path", f"{raw[:80]!r} holds a NUL byte")
    if len(raw) > MAX_PATH_CHARS:
        raise ImportPathError("invalid_path", f"the path has {len(raw)} characters; the limit is {MAX_PATH_CHARS}")
    for part in Path(raw).parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise ImportPathError("invalid_path", f"{part[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")


def resolve_import_path(raw: str, settings: Settings) -> Path:
    """Absolute paths must lie inside an allowed root; relative ones are taken from DATA_DIR/import."""
    check_path_text(raw)
    candidate = Path(raw)
    path = (candidate if candidate.is_absolute() else settings.import_dir / candidate).resolve()
    if not _inside(path, settings.allowed_roots):
        raise ImportPathError(
            "path_not_allowed", f"{raw!r} is outside the allowed import roots (DATA_DIR/import, docs/kb, IMPORT_ROOTS)"
        )
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImportPathError("path_not_found", f"{raw!r} does not exist") from None
    except OSError as exc:
        raise ImportPathError("invalid_path", f"{raw!r} cannot be read: {exc.strerror}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise ImportPathError("invalid_path", f"{raw!r} is not a regular file or a folder (a device, FIFO or socket)")
    return path


def _candidate(found: Path, top: Path) -> bool:
    hidden = any(part.startswith(".") for part in found.relative_to(top.parent).parts)
    return not hidden and found.suffix.lower() in SUPPORTED_SUFFIXES


def _walk(path: Path) -> Iterator[tuple[Path, bool]]:
    """(entry, is a symlinked folder) under `path`; symlinked folders are never descended (no escape, no loop)."""
    if not path.is_dir():
        yield path, False
        return
    for folder, dirnames, filenames in os.walk(path, followlinks=False):
        base = Path(folder)
        for name in dirnames:
            if (base / name).is_symlink():
                yield base / name, True
        for name in filenames:
            yield base / name, False


def find_import_files(paths: list[Path], settings: Settings) -> ImportListing:
    """Supported files among `paths` (folders walked, hidden entries skipped), each re-checked: resolved, it must
    lie inside an allowed root and be a regular file. Anything else met on the way is skipped and listed."""
    roots = settings.allowed_roots
    listing = ImportListing()
    found: set[Path] = set()
    for path in paths:
        for entry, symlinked_folder in _walk(path):
            if symlinked_folder:
                if not any(p.startswith(".") for p in entry.relative_to(path.parent).parts):
                    reason = "a symlinked folder; folders are walked without following symlinks"
                    listing.skipped.append(SkippedFile(display_path(entry, settings), reason))
                continue
            if not _candidate(entry, path):
                continue
            shown = display_path(entry, settings)
            target = entry.resolve()
            if not _inside(target, roots):
                listing.skipped.append(SkippedFile(shown, "a symlink that resolves outside the import roots"))
                continue
            try:
                regular = stat.S_ISREG(target.stat().st_mode)
            except OSError:
                listing.skipped.append(SkippedFile(shown, "a broken symlink or an unreadable file"))
                continue
            if not regular:
                listing.skipped.append(SkippedFile(shown, "not a regular file (a device, FIFO or socket)"))
                continue
            found.add(target)
    listing.files.extend(sorted(found))
    return listing


def check_import_file(path: Path, settings: Settings) -> None:
    """Just before a worker reads a planned file: still inside a root and still a regular file (a swapped symlink
    or a FIFO made since the walk is refused, not read). Uploads the API stored (DATA_DIR/uploads) are allowed too."""
    target = path.resolve()
    if not _inside(target, [*settings.allowed_roots, settings.uploads_dir]):
        raise ImportPathError("path_not_allowed", f"{display_path(path, settings)} now resolves outside the roots")
    if not stat.S_ISREG(target.stat().st_mode):
        raise ImportPathError("invalid_path", f"{display_path(path, settings)} is no longer a regular file")


def expand_files(paths: list[Path]) -> list[Path]:
    """Supported regular files among `paths` on this machine (the CLI's uploads, benchmarks): folders walked
    recursively without following symlinked folders, hidden entries skipped, sorted."""
    found: set[Path] = set()
    for path in paths:
        for entry, symlinked_folder in _walk(path):
            if not symlinked_folder and _candidate(entry, path) and entry.is_file():
                found.add(entry)
    return sorted(found)
