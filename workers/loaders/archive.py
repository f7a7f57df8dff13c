"""Zip-based documents (DOCX, PPTX, XLSX, EPUB) checked before any library opens them: a hostile one fails alone.

Each rule is a refusal naming the problem (docs/security.md):
- Not a zip: truncated, damaged, or an OLE file (a password-protected Office file, or a .doc/.xls/.ppt renamed).
- More parts than MAX_ARCHIVE_MEMBERS, counted from the end record before zipfile lists them: zipfile builds
  an object per part, and 400 000 empty parts (33 MB) took it 20 s and 200 MB.
- More than MAX_ARCHIVE_BYTES unpacked, by the parts' declared sizes. zipfile returns no more of a part than
  its declared `file_size` (ZipExtFile._read1 cuts its output at `_left`, which starts there), but a whole
  read inflates up to 1 GiB before cutting: a 300 KB part declaring 1000 bytes took 600 MB in ZipFile.read.
  So every part is inflated here too, 1 MiB at a time, and refused if it holds more than it declares; only
  then is the declared total a true bound on what the libraries' reads allocate.
- No compression ratio limit: with true sizes checked it bounds nothing the total does not, and any threshold
  would be a guess refusing some real file.
- Compression other than stored and deflate, which are all OOXML and EPUB use: zipfile inflates bzip2 and LZMA
  with no output bound per read. Part names that are absolute or hold a `..` step. Encrypted parts.
- A DTD in markup: `<!ENTITY` before the root element, and any `<!DOCTYPE` in package parts (.xml, .rels,
  .opf, …: Office and EPUB never need one). (X)HTML, NCX and SVG parts may have a DOCTYPE without an internal
  subset whose identifiers, if any, are standard ones (_PUBLIC_IDS, _SYSTEM_IDS): names no parser here fetches,
  where a DOCTYPE naming a file or another URL is how a parser is made to read files or call out. A DTD is
  only legal before the root element, so the scan stops there; every part is scanned whatever its name
  ([Content_Types].xml can give an XML part any name), in each encoding a parser could read it in.
"""

from __future__ import annotations

import codecs
import copy
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from workers.loaders.limits import LoadLimits
from workers.loaders.sections import UnreadableDocument

OLE_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
_CHUNK = 1 << 20  # inflated per read; also the most markup a part may hold before its root element
_HEAD = 4096  # scanned first: a real part's prolog fits, so most parts are decoded no further
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, UnicodeDecodeError, struct.error)
_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_ENCRYPTED = 0x1 | 0x40  # general purpose flags: traditional and strong encryption
_DOCTYPE_PARTS = (".xhtml", ".xht", ".html", ".htm", ".ncx", ".svg")
_PUBLIC_IDS = {
    *("-//W3C//DTD XHTML 1.0 Strict//EN", "-//W3C//DTD XHTML 1.0 Transitional//EN"),
    *("-//W3C//DTD XHTML 1.0 Frameset//EN", "-//W3C//DTD XHTML 1.1//EN", "-//W3C//DTD XHTML Basic 1.1//EN"),
    "-//W3C//DTD XHTML 1.1 plus MathML 2.0 plus SVG 1.1//EN",
    *("-//W3C//DTD HTML 4.01//EN", "-//W3C//DTD HTML 4.01 Transitional//EN", "-//NISO//DTD ncx 2005-1//EN"),
    *("-//W3C//DTD SVG 1.1//EN", "-//W3C//DTD SVG 20010904//EN"),
}
_SYSTEM_IDS = {
    *("//www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd", "//www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd"),
    *("//www.w3.org/TR/xhtml1/DTD/xhtml1-frameset.dtd", "//www.w3.org/TR/xhtml11/DTD/xhtml11.dtd"),
    *("//www.w3.org/TR/xhtml-basic/xhtml-basic11.dtd", "//www.w3.org/2002/04/xhtml-math-svg/xhtml-math-svg.dtd"),
    *("//www.w3.org/TR/html4/strict.dtd", "//www.w3.org/TR/html4/loose.dtd"),
    *("//www.daisy.org/z3986/2005/ncx-2005-1.dtd", "//www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"),
    "//www.w3.org/TR/2001/REC-SVG-20010904/DTD/svg10.dtd",
}
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# How an XML parser recognises `<` in a file without a byte-order mark (XML 1.0, appendix F).
_FIRST_BYTES = ((b"\0\0\0<", "utf-32-be"), (b"<\0\0\0", "utf-32-le"), (b"\0<", "utf-16-be"), (b"<\0", "utf-16-le"))
_EBCDIC = b"\x4c\x6f\xa7\x94"  # `<?xm` in EBCDIC, which libxml2 reads and Python cannot tell apart by page
_DECLARED = re.compile(r"""\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([^"']*)""")
_TOKEN = re.compile(r"""\s*("[^"]*"|'[^']*'|[\[>]|[^\s"'\[>]+)""")
_WIDEST_OPENING = len("<!DOCTYPE ")


class _Incomplete(Exception):
    """The text ends before the prolog does: scan a longer stretch."""


def check_archive(path: Path, limits: LoadLimits, kind: str) -> None:
    """Refuse a zip document (`kind`, e.g. "Word .docx") that a library could not read safely within `limits`."""
    with path.open("rb") as file:
        if file.read(len(OLE_SIGNATURE)) == OLE_SIGNATURE:
            raise UnreadableDocument(
                f"not a valid {kind} file: it is an OLE file, which is what a password-protected Office document "
                f"or an older binary one renamed is; remove the password or save it as {kind}"
            )
        declared = _declared_member_count(file)
    if declared is not None and declared > limits.max_archive_members:
        raise _too_many(kind, declared, limits)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_listing(members, limits, kind)
            for info in members:
                _check_member(archive, info, kind)  # folders too: python-pptx reads every listed name
    except UnreadableDocument:
        raise
    except _CORRUPT as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if type(exc) is OSError:  # the file opened; a failed seek means an offset beyond its ends
            reason = "its directory points outside the file"
        raise UnreadableDocument(
            f"not a valid {kind} file ({reason}): it is truncated or damaged; open it and save it again"
        ) from exc


def _declared_member_count(file: BinaryIO) -> int | None:
    """Parts the end-of-central-directory record (and its zip64 form) declare; None where there is none."""
    file.seek(max(0, file.seek(0, os.SEEK_END) - (22 + 0xFFFF)))
    tail = file.read()
    # Both records found where zipfile looks for them (zipfile._EndRecData): a comment-less end record in the
    # last 22 bytes, else the last signature; the zip64 record right before the zip64 locator.
    at = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\0\0" else tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    counts = [struct.unpack_from("<H", tail, at + 10)[0]]
    record = at - 20 - 56
    if record >= 0 and tail[record : record + 4] == b"PK\x06\x06":
        counts += struct.unpack_from("<QQ", tail, record + 24)
    return max(counts)


def _check_listing(members: list[zipfile.ZipInfo], limits: LoadLimits, kind: str) -> None:
    """Refuse on what the central directory says: count, total size, names, encryption, compression."""
    if len(members) > limits.max_archive_members:
        raise _too_many(kind, len(members), limits)
    total = sum(info.file_size for info in members)
    if total > limits.max_archive_bytes:
        raise UnreadableDocument(
            f"the {kind} file would unpack to {size_text(total)}, more than MAX_ARCHIVE_BYTES allows "
            f"({size_text(limits.max_archive_bytes)}): a zip bomb, or a document too large to index"
        )
    for info in members:
        name = info.filename
        steps = re.split(r"[/\\]", name)
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in steps:
            raise UnreadableDocument(f"the {kind} file holds a part named {name!r}, a path outside the archive")
        if info.flag_bits & _ENCRYPTED:
            raise UnreadableDocument(
                f"the {kind} file is encrypted (part {name!r}): remove the password and upload it again"
            )
        if info.compress_type not in _COMPRESSIONS:
            raise UnreadableDocument(
                f"the {kind} file compresses part {name!r} with method {info.compress_type}; "
                f"{kind} files use only stored or deflate: save it again with the usual program"
            )


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str) -> None:
    """Inflate one part in bounded steps: refuse it if it holds more than it declares or its prolog has a DTD."""
    # zipfile stops a part at its declared size: declaring one byte more shows whether the data runs on. Its
    # CRC check would fail that byte first, so the probe has none and the CRC is checked here.
    probe = copy.copy(info)
    probe.file_size = info.file_size + 1
    del probe.CRC
    size = crc = 0
    with archive.open(probe) as stream:
        while chunk := stream.read(_CHUNK):
            if size == 0:
                problem = _markup_problem(chunk, whole=len(chunk) < _CHUNK, name=info.filename)
                if problem:
                    raise UnreadableDocument(f"the {kind} file's part {info.filename!r} {problem}")
            size += len(chunk)
            if size > info.file_size:
                raise UnreadableDocument(
                    f"the {kind} file's part {info.filename!r} unpacks to more than the {info.file_size} bytes "
                    "it declares: a zip bomb"
                )
            crc = zlib.crc32(chunk, crc)
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 for part {info.filename!r}")


def _markup_problem(head: bytes, whole: bool, name: str) -> str | None:
    """What is refused in the markup before the root element of a part starting with `head`; None if nothing."""
    if head.startswith(_EBCDIC):
        return "is XML in EBCDIC, which Office and EPUB files never use"
    doctype_allowed = name.lower().endswith(_DOCTYPE_PARTS)
    encodings = _encodings(head)
    if isinstance(encodings, str):
        return encodings
    for encoding in encodings:
        for window, complete in ((head[:_HEAD], whole and len(head) <= _HEAD), (head, whole)):
            try:
                problem = _prolog_problem(_decode(window, encoding), complete, doctype_allowed)
            except _Incomplete:
                continue
            if problem:
                return problem
            break
        else:
            return f"holds over {size_text(_CHUNK)} of markup before its first element"
    return None


def _decode(data: bytes, encoding: str) -> str:
    """`data` decoded as a parser would, undecodable bytes replaced (a parser refuses them, so they hide nothing)."""
    return data.decode(encoding, errors="replace")


def _encodings(head: bytes) -> list[str] | str:
    """The encodings an XML parser might read this part in, or why it cannot be checked."""
    found = next((enc for bom, enc in _BOMS if head.startswith(bom)), None)
    found = found or next((enc for first, enc in _FIRST_BYTES if head.startswith(first)), "utf-8")
    declaration = _DECLARED.match(head[:_HEAD].decode(found, errors="replace"))
    if not declaration:
        return [found]
    try:
        declared = codecs.lookup(declaration.group(1)).name
    except LookupError:
        return f"declares the encoding {declaration.group(1)!r}, which this service cannot read to check it"
    if declared.startswith(("utf-16", "utf-32")) and not found.startswith(("utf-16", "utf-32")):
        return [found]  # a 16/32-bit name in a declaration read as 8-bit text is ignored by parsers
    return [found] if declared == found.removesuffix("-sig") else [found, declared]


def _prolog_problem(text: str, complete: bool, doctype_allowed: bool) -> str | None:
    """Walk the XML prolog (declaration, comments, processing instructions, DOCTYPE) up to the root element."""
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if not complete and len(text) - pos < _WIDEST_OPENING:
            raise _Incomplete
        if not text.startswith("<", pos):
            return None  # the content has started: a parser takes no DTD after it
        for opening, closing in (("<?", "?>"), ("<!--", "-->")):
            if text.startswith(opening, pos):
                end = text.find(closing, pos + len(opening))
                if end < 0:
                    if complete:
                        return None  # never closed: no parser reads past it
                    raise _Incomplete
                pos = end + len(closing)
                break
        else:
            if text[pos : pos + 9].upper() == "<!DOCTYPE":
                problem, pos = _doctype_problem(text, pos, complete, doctype_allowed)
                if problem:
                    return problem
            elif text.startswith("<!", pos):
                if text[pos : pos + 8].upper() == "<!ENTITY":
                    return "declares XML entities (<!ENTITY …>), which can read local files or expand without bound"
                return f"declares {text[pos : pos + 12]!r}… before its first element, which only a DTD does"
            else:
                return None  # the root element


def _doctype_problem(text: str, pos: int, complete: bool, doctype_allowed: bool) -> tuple[str | None, int]:
    """Why the DOCTYPE at `pos` is refused (None if it is not), and where it ends."""
    words: list[str] = []
    pos += len("<!DOCTYPE")
    while match := _TOKEN.match(text, pos):
        token, pos = match.group(1), match.end()
        if token == "[":
            return (
                "declares its own DTD (<!DOCTYPE … [ … ]>): its entities can read local files or expand without bound",
                pos,
            )
        if token == ">":
            break
        words.append(token[1:-1] if token[0] in "\"'" else token)
    else:
        if not complete:
            raise _Incomplete
        return "holds a DOCTYPE that never ends", pos
    if not doctype_allowed:
        return "declares a DTD (<!DOCTYPE …>), which Office and EPUB package parts never need", pos
    if _standard_doctype(words[1:]):
        return None, pos
    return f"declares a DOCTYPE naming {' '.join(words[1:])!r}, not one of the standard (X)HTML, NCX or SVG DTDs", pos


def _standard_doctype(identifiers: list[str]) -> bool:
    """`<!DOCTYPE html>`, `SYSTEM "about:legacy-compat"`, or a standard public id and, if any, a standard URL."""
    if not identifiers:
        return True
    keyword, literals = identifiers[0].upper(), [" ".join(x.split()) for x in identifiers[1:]]
    if keyword == "SYSTEM":
        return literals == ["about:legacy-compat"]
    if keyword != "PUBLIC" or not 1 <= len(literals) <= 2 or literals[0] not in _PUBLIC_IDS:
        return False
    return len(literals) == 1 or re.sub(r"^https?:", "", literals[1]) in _SYSTEM_IDS


def _too_many(kind: str, count: int, limits: LoadLimits) -> UnreadableDocument:
    return UnreadableDocument(
        f"the {kind} file holds {count} parts, more than MAX_ARCHIVE_MEMBERS allows ({limits.max_archive_members})"
    )


def size_text(size: int) -> str:
    """A byte count as the limits' messages give it."""
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size} bytes"
