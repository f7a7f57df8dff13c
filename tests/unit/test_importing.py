import os
from pathlib import Path

import pytest

from shared.ingest.import_paths import (
    ImportPathError,
    check_import_file,
    display_path,
    expand_files,
    find_import_files,
    resolve_import_path,
)
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


def test_folder_walk_skips_symlinks_that_escape_the_root_and_reports_them(settings: Settings, tmp_path: Path) -> None:
    """A symlink escape: a file found while walking is resolved and re-checked, not just the folder."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    folder = settings.import_dir / "set"
    (folder / "good.txt").write_text("x")
    (folder / "hostname.txt").symlink_to("/etc/hostname")
    (folder / "outside.txt").symlink_to(outside)
    (folder / "inside.md").symlink_to(folder / "good.txt")
    listing = find_import_files([resolve_import_path("set", settings)], settings)
    assert listing.files == [folder / "good.txt"]
    assert {s.name: s.reason for s in listing.skipped} == {
        "set/hostname.txt": "a symlink that resolves outside the import roots",
        "set/outside.txt": "a symlink that resolves outside the import roots",
    }


def test_folder_walk_does_not_follow_a_symlinked_folder_out_of_the_root(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.txt").write_text("secret")
    (settings.import_dir / "set" / "linked").symlink_to(tmp_path / "elsewhere")
    listing = find_import_files([resolve_import_path("set", settings)], settings)
    assert listing.files == []
    assert [s.name for s in listing.skipped] == ["set/linked"]
    assert expand_files([settings.import_dir / "set"]) == []


def test_folder_walk_skips_fifos_and_a_fifo_named_directly_is_refused(settings: Settings) -> None:
    fifo = settings.import_dir / "set" / "pipe.txt"
    os.mkfifo(fifo)
    listing = find_import_files([resolve_import_path("set", settings)], settings)
    assert [(s.name, s.reason) for s in listing.skipped] == [
        ("set/pipe.txt", "not a regular file (a device, FIFO or socket)")
    ]
    with pytest.raises(ImportPathError) as err:
        resolve_import_path("set/pipe.txt", settings)
    assert err.value.code == "invalid_path"


def test_a_device_file_is_refused(settings: Settings) -> None:
    with pytest.raises(ImportPathError) as err:
        resolve_import_path("/dev/null", settings.model_copy(update={"IMPORT_ROOTS": [Path("/dev")]}))
    assert err.value.code == "invalid_path"


@pytest.mark.parametrize("raw", ["set/a\x00b.txt", "a" * 300, "set/" + "b/" * 600])
def test_nul_bytes_and_over_long_paths_are_invalid_not_os_errors(settings: Settings, raw: str) -> None:
    with pytest.raises(ImportPathError) as err:
        resolve_import_path(raw, settings)
    assert err.value.code == "invalid_path"


def test_paths_are_shown_relative_to_their_root_never_absolute(settings: Settings) -> None:
    folder = settings.import_dir / "set"
    assert display_path(folder / "a.md", settings) == "set/a.md"
    sample = settings.SAMPLE_DOCS_DIR.resolve()
    assert display_path(sample / "x.md", settings) == f"{sample.name}/x.md"
    with pytest.raises(ImportPathError) as err:
        resolve_import_path("/etc/passwd", settings)
    assert "/etc" not in err.value.message.replace("'/etc/passwd'", "") and str(settings.import_dir) not in (
        err.value.message
    )
    with pytest.raises(ImportPathError) as err:
        resolve_import_path("nope", settings)
    assert str(settings.import_dir) not in err.value.message


def test_a_planned_file_swapped_for_an_escaping_symlink_is_refused_before_it_is_read(
    settings: Settings, tmp_path: Path
) -> None:
    planned = settings.import_dir / "set" / "a.txt"
    planned.write_text("x")
    check_import_file(planned, settings)
    planned.unlink()
    planned.symlink_to("/etc/hostname")
    with pytest.raises(ImportPathError) as err:
        check_import_file(planned, settings)
    assert err.value.code == "path_not_allowed"
