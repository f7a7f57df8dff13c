from pathlib import Path

import pytest

from shared.ingest.import_paths import ImportPathError, expand_files, resolve_import_path
from shared.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "data" / "import" / "set").mkdir(parents=True)
    return Settings(DATA_DIR=tmp_path / "data", ZHIPU_API_KEY=None, _env_file=None)  # type: ignore[call-arg]


def test_relative_paths_resolve_under_the_import_dir(settings: Settings) -> None:
    assert resolve_import_path("set", settings) == settings.import_dir / "set"


@pytest.mark.parametrize("raw", ["../../etc", "/etc/passwd", "set/../../.."])
def test_paths_outside_the_roots_are_refused(settings: Settings, raw: str) -> None:
    with pytest.raises(ImportPathError) as err:
        resolve_import_path(raw, settings)
    assert err.value.code == "path_not_allowed"


def test_missing_paths_are_reported(settings: Settings) -> None:
    with pytest.raises(ImportPathError) as err:
        resolve_import_path("nope", settings)
    assert err.value.code == "path_not_found"


def test_folders_expand_to_supported_visible_files(settings: Settings) -> None:
    folder = settings.import_dir / "set"
    for name in ["a.txt", "b.md", "c.bin", ".hidden.txt", "sub/d.html"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    assert [p.name for p in expand_files([folder])] == ["a.txt", "b.md", "d.html"]


def test_sample_docs_are_an_allowed_root(settings: Settings) -> None:
    assert resolve_import_path(str(settings.SAMPLE_DOCS_DIR), settings) == settings.SAMPLE_DOCS_DIR.resolve()
