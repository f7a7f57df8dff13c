"""Which files an index job may read: paths under the allowed import roots, of supported types."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm")


class ImportPathError(ValueError):
    """A requested path is outside the import roots, missing, or holds nothing we can index."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def resolve_import_path(raw: str, settings: Settings) -> Path:
    """Absolute paths must lie inside an allowed root; relative ones are taken from DATA_DIR/import."""
    if not raw.strip():
        raise ImportPathError("invalid_path", "empty path")
    candidate = Path(raw)
    path = (candidate if candidate.is_absolute() else settings.import_dir / candidate).resolve()
    roots = settings.allowed_roots
    if not any(path == root or path.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise ImportPathError("path_not_allowed", f"{raw!r} is outside the allowed import roots ({allowed})")
    if not path.exists():
        raise ImportPathError("path_not_found", f"{raw!r} does not exist (resolved to {path})")
    return path


def expand_files(paths: list[Path]) -> list[Path]:
    """Supported files among `paths`, folders walked recursively, hidden entries skipped, sorted."""
    found: set[Path] = set()
    for path in paths:
        candidates = [path] if path.is_file() else path.rglob("*")
        for f in candidates:
            hidden = any(part.startswith(".") for part in f.relative_to(path.parent).parts)
            if f.is_file() and not hidden and f.suffix.lower() in SUPPORTED_SUFFIXES:
                found.add(f)
    return sorted(found)
