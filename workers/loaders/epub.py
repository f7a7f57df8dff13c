"""EPUB: the book's text in reading order (its spine), each chapter's XHTML read as HTML and cut at its headings.

An EPUB is a zip: META-INF/container.xml names the package file (.opf), whose manifest maps ids to files and
whose spine lists them in reading order. The container, package, NCX and encryption.xml are parsed with
defusedxml; chapters are decoded by the project's rule and read by html_sections (no DTD, no entities beyond
HTML's own). check_archive (archive.py) has already refused hostile zips before this runs.

Deliberate choices:
- Every spine document is read once, linear="no" ones too (notes, answers: text a reader reaches by links);
  spine items that are not (X)HTML (a full-page SVG or image) hold no text to read and are skipped.
- A chapter's <title> is left out: readers never show it, and books repeat their own title in every chapter.
- Text before a chapter's first heading, or in a chapter without headings, is located by that chapter's title
  in the table of contents (the EPUB 3 navigation document, else the EPUB 2 NCX: one small file, already
  there), else by `chapter N`, N its place in the spine (cover and front matter count).
- Manifest hrefs are URLs relative to the package file: percent-decoded, then resolved against its folder; one
  that leads out of the archive is refused, never followed. A spine file missing from the archive is refused.
- A book whose encryption.xml lists a spine document is DRM-protected and refused; font obfuscation (listed
  fonts only) leaves the text readable.
- Members are read through zipfile in bounded reads, MAX_ARCHIVE_BYTES for the whole book.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from bs4 import BeautifulSoup
from defusedxml import DefusedXmlException

from shared.ingest.text_decoding import UndecodableText, decode_bytes
from workers.loaders.archive import size_text
from workers.loaders.html import html_sections
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import Section, UnreadableDocument

CONTAINER = "META-INF/container.xml"
ENCRYPTION = "META-INF/encryption.xml"
_PACKAGE_TYPE = "application/oebps-package+xml"
_HTML_TYPES = {"application/xhtml+xml", "text/html"}
_TITLE = re.compile(r"<title\b[^>]*>.*?</title\s*>", re.IGNORECASE | re.DOTALL)
_BODY = re.compile(r"<body\b", re.IGNORECASE)


def load_epub(path: Path, limits: LoadLimits) -> list[Section]:
    try:
        with zipfile.ZipFile(path) as archive:
            return _Book(archive, limits).sections()
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UnreadableDocument(f"not a valid EPUB: {exc}") from exc


class _Book:
    """One open EPUB: its members read within the byte budget, its package parsed once."""

    def __init__(self, archive: zipfile.ZipFile, limits: LoadLimits) -> None:
        self._archive = archive
        self._names = set(archive.namelist())
        self._left = limits.max_archive_bytes
        self._limit = limits.max_archive_bytes

    def sections(self) -> list[Section]:
        package_path = self._package_path()
        package = self._xml(package_path)
        folder = posixpath.dirname(package_path)
        manifest = {
            item.get("id", ""): item
            for item in package.iter()
            if _local(item.tag) == "item" and item.get("id") and item.get("href")
        }
        spine = next((e for e in package.iter() if _local(e.tag) == "spine"), None)
        if spine is None:
            raise UnreadableDocument(f"not a valid EPUB: its package file {package_path} has no spine")
        chapters = _reading_order(spine, manifest, folder)
        self._refuse_drm(set(chapters))
        titles = self._toc_titles(manifest, spine.get("toc"), folder)
        sections: list[Section] = []
        for number, (member, media_type) in enumerate(chapters.items(), 1):
            if media_type not in _HTML_TYPES and not member.lower().endswith((".xhtml", ".html", ".htm")):
                continue
            label = titles.get(member) or f"chapter {number}"
            for section in self._chapter(member, number):
                sections.append(section if section.location else Section(section.text, label, section.rows))
        return sections

    def _package_path(self) -> str:
        container = self._xml(CONTAINER)
        for rootfile in container.iter():
            full_path = rootfile.get("full-path") if _local(rootfile.tag) == "rootfile" else None
            if full_path and rootfile.get("media-type", _PACKAGE_TYPE) == _PACKAGE_TYPE:
                path = posixpath.normpath(full_path)
                if not _inside(path):
                    raise UnreadableDocument(f"not a valid EPUB: its package file {path} is outside the archive")
                return path
        raise UnreadableDocument(f"not a valid EPUB: {CONTAINER} names no package (.opf) file")

    def _chapter(self, member: str, number: int) -> list[Section]:
        try:
            markup = decode_bytes(self._read(member), html=True)
        except UndecodableText as exc:
            raise UnreadableDocument(f"chapter {number} ({member}) is {exc}") from exc
        body = _BODY.search(markup)
        head_end = body.start() if body else len(markup)
        return html_sections(_TITLE.sub("", markup[:head_end], count=1) + markup[head_end:])

    def _refuse_drm(self, chapters: set[str]) -> None:
        if ENCRYPTION not in self._names:
            return
        encrypted = {
            posixpath.normpath(unquote(e.get("URI", "")))
            for e in self._xml(ENCRYPTION).iter()
            if _local(e.tag) == "CipherReference"
        }
        if encrypted & chapters:
            raise UnreadableDocument(
                f"the EPUB is DRM-protected: its chapters are encrypted ({ENCRYPTION}); upload a DRM-free edition"
            )

    def _toc_titles(self, manifest: dict[str, Element], ncx_id: str | None, folder: str) -> dict[str, str]:
        """Chapter file -> its title in the table of contents (the first entry pointing into the file).

        Readers open a book whose table of contents is missing or broken, so such a book is read too, its
        chapters then located by their place in the spine.
        """
        nav = next((i for i in manifest.values() if "nav" in i.get("properties", "").split()), None)
        toc = nav if nav is not None else manifest.get(ncx_id or "")
        path = _member(folder, toc.get("href", "")) if toc is not None else None
        if not path or not _inside(path) or path not in self._names:
            return {}
        try:
            entries = self._nav_entries(path) if toc is nav else self._ncx_entries(path)
        except (UndecodableText, ParseError, DefusedXmlException):
            return {}
        titles: dict[str, str] = {}
        for href, title in entries:
            target = _member(posixpath.dirname(path), href)
            if target and _inside(target) and " ".join(title.split()):
                titles.setdefault(target, " ".join(title.split()))
        return titles

    def _nav_entries(self, path: str) -> list[tuple[str, str]]:
        """(href, title) of the EPUB 3 navigation document's table of contents, in order."""
        soup = BeautifulSoup(decode_bytes(self._read(path), html=True), "html.parser")
        navs = soup.find_all("nav")
        toc = next((n for n in navs if "toc" in str(n.get("epub:type", "")).split()), navs[0] if navs else None)
        return [(str(a["href"]), a.get_text(" ")) for a in toc.find_all("a", href=True)] if toc else []

    def _ncx_entries(self, path: str) -> list[tuple[str, str]]:
        """(src, label) of the EPUB 2 NCX's navigation points, in document order."""
        entries = []
        for point in SafeET.fromstring(self._read(path)).iter():
            label = next((e for e in point.iter() if _local(e.tag) == "text"), None)
            content = next((e for e in point if _local(e.tag) == "content"), None)
            if _local(point.tag) == "navPoint" and label is not None and content is not None:
                entries.append((content.get("src", ""), label.text or ""))
        return entries

    def _xml(self, member: str) -> Element:
        try:
            return SafeET.fromstring(self._read(member))
        except DefusedXmlException as exc:
            raise UnreadableDocument(f"the EPUB's {member} declares XML entities, which are refused") from exc
        except ParseError as exc:
            raise UnreadableDocument(f"not a valid EPUB: {member} is not well-formed XML ({exc})") from exc

    def _read(self, member: str) -> bytes:
        """A member's bytes, never more than what is left of the book's budget."""
        try:
            info = self._archive.getinfo(member)
        except KeyError:
            raise UnreadableDocument(f"not a valid EPUB: it has no {member}") from None
        with self._archive.open(info) as stream:
            data = stream.read(self._left + 1)  # stored or deflate (check_archive refuses the rest): bounded
        if len(data) > self._left:
            raise UnreadableDocument(
                f"the EPUB unpacks to more than MAX_ARCHIVE_BYTES allows ({size_text(self._limit)})"
            )
        self._left -= len(data)
        return data


def _reading_order(spine: Element, manifest: dict[str, Element], folder: str) -> dict[str, str]:
    """Spine documents in reading order, each once: archive path -> media type."""
    chapters: dict[str, str] = {}
    for ref in spine:
        item = manifest.get(ref.get("idref", "")) if _local(ref.tag) == "itemref" else None
        member = _member(folder, item.get("href", "")) if item is not None else None
        if item is None or member is None:
            continue  # an unknown id or a remote file: nothing in the archive to read
        if not _inside(member):
            raise UnreadableDocument(f"not a valid EPUB: its spine lists {member!r}, outside the book")
        chapters.setdefault(member, item.get("media-type", ""))
    return chapters


def _member(folder: str, href: str) -> str | None:
    """The archive path a URL relative to `folder` names (check it with `_inside`); None for a remote URL."""
    url = urlsplit(href)
    if url.scheme or url.netloc:
        return None
    return posixpath.normpath(posixpath.join(folder, unquote(url.path)))


def _inside(path: str) -> bool:
    """Whether a normalised path stays in the archive: zip paths are never followed out of it."""
    return not (path.startswith(("/", "../")) or path == "..")


def _local(tag: object) -> str:
    """An element's name without its namespace (EPUB 2 files use the OPF namespace or none)."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
