"""load_epub: a book's text in reading order, located by its headings or its table of contents, or refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.archives import epub_book, epub_without, parts_of, zip_of
from workers.loaders.archive import check_archive
from workers.loaders.epub import load_epub
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import Section, UnreadableDocument

BOOK = [
    Section("第一章 起源\n队列最早用于批处理系统。", "第一章 起源"),
    Section("先进先出\n先到的任务先被处理。", "第一章 起源 › 先进先出"),
    Section("第二章 发展\n后来出现了优先级队列。", "第二章 发展"),
    Section("术语：吞吐量、延迟。", "附录 术语表"),
]


def book_path(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "book.epub"
    path.write_bytes(data)
    return path


def refusal(tmp_path: Path, data: bytes, limits: LoadLimits | None = None) -> str:
    with pytest.raises(UnreadableDocument) as refused:
        load_epub(book_path(tmp_path, data), limits or LoadLimits())
    return str(refused.value)


def with_package(replace: tuple[str, str]) -> bytes:
    """The book with one substitution in its package file (content.opf)."""
    parts = parts_of(epub_book())
    parts["OEBPS/content.opf"] = parts["OEBPS/content.opf"].decode().replace(*replace).encode()
    return zip_of(parts)


@pytest.mark.parametrize("toc", ["nav", "ncx"])
def test_chapters_come_in_spine_order_located_by_headings_or_their_contents_entry(tmp_path: Path, toc: str) -> None:
    path = book_path(tmp_path, epub_book(toc=toc))
    check_archive(path, LoadLimits(), "EPUB")  # as the registry does before loading
    sections = load_epub(path, LoadLimits())
    # Spine order (02.xhtml, 01.xhtml, 附录.xhtml), not file-name order; no markup, and no <title> (the book's
    # own title, repeated in every chapter's head).
    assert sections == BOOK
    assert not any("<" in s.text or "队列简史" in s.text for s in sections)


def test_a_chapter_without_headings_or_contents_entry_is_located_by_its_place_in_the_spine(tmp_path: Path) -> None:
    sections = load_epub(book_path(tmp_path, epub_book(toc=None)), LoadLimits())
    assert sections == [*BOOK[:3], Section("术语：吞吐量、延迟。", "chapter 3")]


@pytest.mark.parametrize("broken", [b"", b"<ncx><navMap><navPoint>"])
def test_a_book_whose_table_of_contents_is_missing_or_broken_is_still_read(tmp_path: Path, broken: bytes) -> None:
    parts = parts_of(epub_book(toc="ncx"))
    if broken:
        parts["OEBPS/toc.ncx"] = broken
    else:
        del parts["OEBPS/toc.ncx"]
    assert load_epub(book_path(tmp_path, zip_of(parts)), LoadLimits())[-1] == Section(
        "术语：吞吐量、延迟。", "chapter 3"
    )


def test_a_chapter_in_a_legacy_chinese_encoding_is_decoded_by_its_declaration(tmp_path: Path) -> None:
    parts = parts_of(epub_book())
    chapter = parts["OEBPS/text/01.xhtml"].decode()
    parts["OEBPS/text/01.xhtml"] = chapter.replace('encoding="utf-8"', 'encoding="gbk"').encode("gbk")
    path = book_path(tmp_path, zip_of(parts))
    check_archive(path, LoadLimits(), "EPUB")
    assert load_epub(path, LoadLimits()) == BOOK


def test_a_drm_protected_book_is_refused_and_font_obfuscation_is_not(tmp_path: Path) -> None:
    message = refusal(tmp_path, epub_book(encryption="chapters"))
    assert message.startswith("the EPUB is DRM-protected: its chapters are encrypted (META-INF/encryption.xml)")
    assert load_epub(book_path(tmp_path, epub_book(encryption="fonts")), LoadLimits()) == BOOK


@pytest.mark.parametrize("member", ["META-INF/container.xml", "OEBPS/content.opf"])
def test_a_book_without_its_container_or_package_is_not_a_valid_epub(tmp_path: Path, member: str) -> None:
    assert refusal(tmp_path, epub_without(member)) == f"not a valid EPUB: it has no {member}"


def test_a_spine_file_outside_the_book_is_refused_never_read(tmp_path: Path) -> None:
    message = refusal(tmp_path, with_package(("text/01.xhtml", "../../etc/passwd")))
    assert message == "not a valid EPUB: its spine lists '../etc/passwd', outside the book"
    message = refusal(tmp_path, with_package(("text/01.xhtml", "/etc/passwd")))
    assert message == "not a valid EPUB: its spine lists '/etc/passwd', outside the book"


def test_a_spine_file_missing_from_the_archive_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, with_package(("text/01.xhtml", "text/03.xhtml")))
    assert message == "not a valid EPUB: it has no OEBPS/text/03.xhtml"


def test_a_package_with_entities_is_refused(tmp_path: Path) -> None:
    declaration = '<?xml version="1.0" encoding="UTF-8"?>'
    message = refusal(tmp_path, with_package((declaration, declaration + '<!DOCTYPE p [<!ENTITY e "e">]>')))
    assert message == "the EPUB's OEBPS/content.opf declares XML entities, which are refused"


def test_reading_stops_at_the_byte_limit(tmp_path: Path) -> None:
    message = refusal(tmp_path, epub_book(), LoadLimits(max_archive_bytes=1500))
    assert message == "the EPUB unpacks to more than MAX_ARCHIVE_BYTES allows (1500 bytes)"
