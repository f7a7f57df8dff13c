"""check_archive: zip-based documents a library could not read safely are refused, ordinary ones pass untouched."""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.archives import (
    XHTML11_DOCTYPE,
    docx_file,
    docx_lying_about_size,
    docx_with_member,
    encrypted_docx,
    epub_book,
    parts_of,
    pptx_file,
    pptx_with_external_entity,
    truncated_xlsx,
    xlsx_file,
    zip_bomb_docx,
    zip_of,
    zip_with_members,
)
from workers.loaders import archive
from workers.loaders.archive import OLE_SIGNATURE, check_archive
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import UnreadableDocument

DEFAULTS = LoadLimits()
PROLOG = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_OPENED: list[str] = []  # files opened while a test watches (an audit hook cannot be removed, so this gates it)


def _watch_opens(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _OPENED and isinstance(args[0], str | Path):
        _OPENED.append(str(args[0]))


@pytest.fixture(scope="session")
def opens_watched() -> None:
    sys.addaudithook(_watch_opens)


def refusal(tmp_path: Path, data: bytes, kind: str = "Word .docx", limits: LoadLimits = DEFAULTS) -> str:
    path = tmp_path / "upload"
    path.write_bytes(data)
    with pytest.raises(UnreadableDocument) as refused:
        check_archive(path, limits, kind)
    return str(refused.value)


def office_with(part: str, content: bytes) -> bytes:
    """A real .docx with one part replaced or added."""
    return zip_of({**parts_of(docx_file()), part: content})


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("Word .docx", docx_file),
        ("PowerPoint .pptx", pptx_file),
        ("Excel .xlsx", xlsx_file),
        ("EPUB", epub_book),
        ("EPUB", lambda: epub_book(toc="ncx")),  # the NCX carries the NISO DOCTYPE with its DAISY URL
        ("EPUB", lambda: epub_book(doctype=XHTML11_DOCTYPE)),
        ("EPUB", lambda: epub_book(doctype='<!DOCTYPE html SYSTEM "about:legacy-compat">')),
        ("EPUB", lambda: epub_book(encryption="fonts")),
    ],
)
def test_ordinary_office_files_and_books_pass(tmp_path: Path, kind: str, make: Callable[[], bytes]) -> None:
    path = tmp_path / "upload"
    path.write_bytes(make())
    check_archive(path, DEFAULTS, kind)


def test_an_svg_image_with_the_standard_doctype_passes(tmp_path: Path) -> None:
    svg = b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    svg += b'"https://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg xmlns="http://www.w3.org/2000/svg"/>'
    path = tmp_path / "deck.pptx"
    path.write_bytes(office_with("ppt/media/image1.svg", svg))
    check_archive(path, DEFAULTS, "PowerPoint .pptx")


def test_a_zip_bomb_is_refused_naming_the_setting(tmp_path: Path) -> None:
    message = refusal(tmp_path, zip_bomb_docx(4 << 20), limits=LoadLimits(max_archive_bytes=1 << 20))
    assert "MAX_ARCHIVE_BYTES" in message and "4.0 MiB" in message and "zip bomb" in message


def test_a_part_holding_more_than_it_declares_is_refused(tmp_path: Path) -> None:
    data = docx_lying_about_size(8 << 20, declared_bytes=1000)
    # zipfile alone returns the declared 1000 bytes with a good CRC, having inflated all 8 MiB to get them.
    assert zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml") == b"\0" * 1000
    message = refusal(tmp_path, data)
    assert "'word/document.xml' unpacks to more than the 1000 bytes it declares" in message


def test_too_many_parts_are_refused_before_zipfile_lists_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile read the whole directory")

    data = zip_with_members(60)
    monkeypatch.setattr(archive.zipfile, "ZipFile", no_listing)
    message = refusal(tmp_path, data, "PowerPoint .pptx", LoadLimits(max_archive_members=50))
    assert message == "the PowerPoint .pptx file holds 60 parts, more than MAX_ARCHIVE_MEMBERS allows (50)"


@pytest.mark.usefixtures("opens_watched")
def test_an_external_entity_in_a_slide_is_refused_without_reading_its_target(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("MARKER-7f3a")
    path = tmp_path / "deck.pptx"
    path.write_bytes(pptx_with_external_entity(secret))
    _OPENED.append("(watching)")
    try:
        with pytest.raises(UnreadableDocument) as refused:
            check_archive(path, DEFAULTS, "PowerPoint .pptx")
    finally:
        opened, _OPENED[:] = _OPENED[1:], []
    assert "'ppt/slides/slide1.xml' declares its own DTD" in str(refused.value)
    assert "MARKER" not in str(refused.value) and str(secret) not in opened and set(opened) == {str(path)}


@pytest.mark.parametrize("name", ["../evil.xml", "word/../../evil.xml", "/etc/evil.xml", "C:/evil.xml", "..\\x.xml"])
def test_part_names_leading_out_of_the_archive_are_refused(tmp_path: Path, name: str) -> None:
    message = refusal(tmp_path, docx_with_member(name))
    assert f"a part named {name!r}, a path outside the archive" in message


def test_a_truncated_workbook_is_refused_as_damaged(tmp_path: Path) -> None:
    message = refusal(tmp_path, truncated_xlsx(), "Excel .xlsx")
    assert message.startswith("not a valid Excel .xlsx file (") and "truncated or damaged" in message


def test_a_damaged_part_is_refused_as_damaged(tmp_path: Path) -> None:
    data = bytearray(docx_file())
    at = data.find(b"word/document.xml") + len("word/document.xml") + 100  # inside its compressed data
    data[at : at + 8] = b"\xff" * 8
    assert "truncated or damaged" in refusal(tmp_path, bytes(data))


def test_encrypted_parts_and_ole_files_are_refused_as_password_protected(tmp_path: Path) -> None:
    assert "is encrypted (part '[Content_Types].xml'): remove the password" in refusal(tmp_path, encrypted_docx())
    message = refusal(tmp_path, OLE_SIGNATURE + bytes(4096))
    assert message.startswith("not a valid Word .docx file: it is an OLE file") and "password" in message


def test_compression_office_files_never_use_is_refused(tmp_path: Path) -> None:
    data = zip_of({"[Content_Types].xml": b"<Types/>"}, compression=zipfile.ZIP_BZIP2)
    assert "with method 12" in refusal(tmp_path, data)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (PROLOG + "<!DOCTYPE w:document>\n<w:document/>", "declares a DTD (<!DOCTYPE …>)"),
        (PROLOG + '<!ENTITY e SYSTEM "file:///etc/passwd">\n<w:document/>', "declares XML entities"),
        (PROLOG + '<!-- <w:document> --><!DOCTYPE d [<!ENTITY e "e">]><d/>', "declares its own DTD"),
        (PROLOG + "<!--" + "x" * 20_000 + '--><!DOCTYPE d [<!ENTITY e "e">]><d/>', "declares its own DTD"),
        (
            '<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE d +AFs-+ADw-!ENTITY e +ACI-e+ACI-+AD4-+AF0-+AD4-<d/>',
            "its own DTD",
        ),
        ('<?xml version="1.0" encoding="x-unheard-of"?><d/>', "declares the encoding 'x-unheard-of'"),
        (PROLOG + "<!--" + "x" * (1 << 20) + "--><d/>", "holds over 1.0 MiB of markup before its first element"),
    ],
)
def test_markup_declaring_a_dtd_or_entities_is_refused(tmp_path: Path, content: str, problem: str) -> None:
    data = content.encode("utf-8")
    assert problem in refusal(tmp_path, office_with("word/document.xml", data))


def test_a_dtd_in_utf16_or_under_any_part_name_is_found(tmp_path: Path) -> None:
    hidden = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY e "e">]><d>&e;</d>'
    assert "its own DTD" in refusal(tmp_path, office_with("word/document.xml", hidden.encode("utf-16")))
    assert "its own DTD" in refusal(tmp_path, office_with("word/document.xml", hidden.encode("utf-16-le")))
    # [Content_Types].xml can give an XML part any name, so parts are scanned by content, not by suffix.
    assert "its own DTD" in refusal(tmp_path, office_with("word/body.bin", hidden.encode("utf-8")))


@pytest.mark.parametrize(
    ("doctype", "problem"),
    [
        ('<!DOCTYPE html SYSTEM "file:///etc/passwd">', "naming 'SYSTEM file:///etc/passwd'"),
        ('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://evil.example/x.dtd">', "http://evil.example"),
        ('<!DOCTYPE html PUBLIC "-//Evil//DTD//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">', "-//Evil"),
        ('<!DOCTYPE html [<!ENTITY lol "lol">]>', "declares its own DTD"),
    ],
)
def test_a_book_chapter_with_a_nonstandard_doctype_is_refused(tmp_path: Path, doctype: str, problem: str) -> None:
    message = refusal(tmp_path, epub_book(doctype=doctype), "EPUB")
    assert message.startswith("the EPUB file's part 'OEBPS/text/02.xhtml' declares") and problem in message
