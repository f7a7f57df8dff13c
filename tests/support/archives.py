"""Zip-based documents, ordinary and hostile: EPUB books, Office files from their own libraries, zip bombs.

Every generator returns the same bytes on every call: members carry a fixed time, document properties a fixed date.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from pathlib import Path
from urllib.parse import quote

import docx
import openpyxl
from pptx import Presentation

FIXED_TIME = (2026, 1, 1, 0, 0, 0)
_CORE_DATES = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*")
XHTML11_DOCTYPE = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">'
# The book's chapters by file name; the spine reads 02, then 01, then the appendix (file names sort otherwise).
FIRST_CHAPTER = (
    "text/02.xhtml",
    "第一章 起源",
    "<h1>第一章 起源</h1><p>队列最早用于<b>批处理</b>系统。</p><h2>先进先出</h2><p>先到的任务先被处理。</p>",
)
SECOND_CHAPTER = ("text/01.xhtml", "第二章 发展", "<h1>第二章 发展</h1><p>后来出现了<em>优先级</em>队列。</p>")
APPENDIX = ("text/附录.xhtml", "附录 术语表", "<p>术语：吞吐量、延迟。</p>")
SPINE = (FIRST_CHAPTER, SECOND_CHAPTER, APPENDIX)


def zip_of(parts: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding `parts` in order, each with the fixed time."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED if name == "mimetype" else compression
            archive.writestr(info, data)
    return buffer.getvalue()


def parts_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def normalized(data: bytes) -> bytes:
    """An Office file as its library wrote it, with the fixed time on its members and in its properties."""
    parts = parts_of(data)
    if "docProps/core.xml" in parts:
        parts["docProps/core.xml"] = _CORE_DATES.sub(rb"\g<1>2026-01-01T00:00:00Z", parts["docProps/core.xml"])
    return zip_of(parts)


def epub_book(toc: str | None = "nav", encryption: str | None = None, doctype: str = "<!DOCTYPE html>") -> bytes:
    """A Chinese EPUB 3 in an OEBPS folder: three spine documents in an order their file names do not sort in.

    `toc`: "nav" (EPUB 3 navigation document), "ncx" (EPUB 2 table of contents) or None. `encryption`:
    "chapters" (a DRM-style encryption.xml listing a chapter) or "fonts" (font obfuscation only). `doctype`
    opens the first chapter (the others carry the XHTML 1.1 one).
    """
    files = {"mimetype": b"application/epub+zip", "META-INF/container.xml": _CONTAINER.encode()}
    items, refs = [], []
    for number, (href, _, body) in enumerate(SPINE, 1):
        items.append(f'<item id="c{number}" href="{quote(href)}" media-type="application/xhtml+xml"/>')
        refs.append(f'<itemref idref="c{number}"/>')
        head = doctype if number == 1 else XHTML11_DOCTYPE
        files[f"OEBPS/{href}"] = _XHTML.format(doctype=head, body=body).encode()
    spine_toc = ""
    if toc == "nav":
        items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
        links = "".join(f'<li><a href="{quote(href)}">{title}</a></li>' for href, title, _ in SPINE)
        files["OEBPS/nav.xhtml"] = _NAV.format(links=links).encode()
    elif toc == "ncx":
        items.append('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>')
        points = "".join(
            f'<navPoint id="p{n}" playOrder="{n}"><navLabel><text>{title}</text></navLabel>'
            f'<content src="{quote(href)}#top"/></navPoint>'
            for n, (href, title, _) in enumerate(SPINE, 1)
        )
        files["OEBPS/toc.ncx"] = _NCX.format(points=points).encode()
        spine_toc = ' toc="ncx"'
    if encryption:
        target = "OEBPS/fonts/song.otf" if encryption == "fonts" else f"OEBPS/{quote(SECOND_CHAPTER[0])}"
        algorithm = "http://www.idpf.org/2008/embedding" if encryption == "fonts" else _AES
        files["META-INF/encryption.xml"] = _ENCRYPTION.format(algorithm=algorithm, uri=target).encode()
        if encryption == "chapters":
            files[f"OEBPS/{SECOND_CHAPTER[0]}"] = bytes(range(256)) * 4  # ciphertext, not markup
    files["OEBPS/content.opf"] = _OPF.format(items="".join(items), refs="".join(refs), toc=spine_toc).encode()
    return zip_of(files)


def epub_without(member: str) -> bytes:
    """The book above missing one of its members (META-INF/container.xml, OEBPS/content.opf)."""
    parts = parts_of(epub_book())
    del parts[member]
    return zip_of(parts)


def docx_file() -> bytes:
    document = docx.Document()
    document.add_heading("季度报告", level=1)
    document.add_paragraph("收入增长。")
    buffer = io.BytesIO()
    document.save(buffer)
    return normalized(buffer.getvalue())


def pptx_file(title: str = "年度规划") -> bytes:
    deck = Presentation()
    deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = title  # layout 5: title only
    buffer = io.BytesIO()
    deck.save(buffer)
    return normalized(buffer.getvalue())


def xlsx_file() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["编号", "内存"])
    sheet.append(["db-07", "512GB"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return normalized(buffer.getvalue())


def pptx_with_external_entity(target: Path) -> bytes:
    """A real python-pptx deck whose slide title is an entity reading `target` (XXE)."""
    parts = parts_of(pptx_file(title="TITLE"))
    slide = parts["ppt/slides/slide1.xml"]
    declaration, rest = slide.split(b"?>", 1)
    dtd = f'<!DOCTYPE p:sld [<!ENTITY secret SYSTEM "{target.as_uri()}">]>'.encode()
    parts["ppt/slides/slide1.xml"] = declaration + b"?>" + dtd + rest.replace(b">TITLE<", b">&secret;<")
    return zip_of(parts)


def zip_bomb_docx(unpacked_bytes: int) -> bytes:
    """A .docx whose document part is `unpacked_bytes` of zeros, written in steps (about 1 KB per MB)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("[Content_Types].xml", FIXED_TIME), _CONTENT_TYPES)
        info = zipfile.ZipInfo("word/document.xml", FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=unpacked_bytes > zipfile.ZIP64_LIMIT) as part:
            step = b"\0" * (1 << 20)
            for offset in range(0, unpacked_bytes, len(step)):
                part.write(step[: unpacked_bytes - offset])
    return buffer.getvalue()


def docx_lying_about_size(unpacked_bytes: int, declared_bytes: int = 1000) -> bytes:
    """A .docx whose document part inflates to `unpacked_bytes` but declares `declared_bytes`, CRC to match.

    Read by `ZipFile.read`, the part comes back as its first `declared_bytes` with a valid CRC, after zipfile
    inflated all of it (below 2 GiB) into memory.
    """
    data = bytearray(zip_bomb_docx(unpacked_bytes))
    crc = zlib.crc32(b"\0" * declared_bytes)
    for signature, crc_at in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        at = data.rfind(signature)  # the document part is the last member
        struct.pack_into("<I", data, at + crc_at, crc)
        struct.pack_into("<I", data, at + crc_at + 8, declared_bytes)  # the size follows CRC and compressed size
    return bytes(data)


def docx_with_member(name: str, data: bytes = b"<x/>") -> bytes:
    """A real .docx with one more member, e.g. `../evil.xml`."""
    return zip_of({**parts_of(docx_file()), name: data})


def encrypted_docx() -> bytes:
    """A .docx whose document part is flagged as encrypted (traditional PKWARE encryption)."""
    data = bytearray(docx_file())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = 0
        while (at := data.find(signature, at)) >= 0:
            struct.pack_into("<H", data, at + flags_at, struct.unpack_from("<H", data, at + flags_at)[0] | 1)
            at += 4
    return bytes(data)


def truncated_xlsx() -> bytes:
    """A real .xlsx cut short, as an interrupted download leaves it."""
    data = xlsx_file()
    return data[: len(data) // 2]


def zip_with_members(count: int) -> bytes:
    return zip_of({f"ppt/media/{n}.txt": b"" for n in range(count)}, compression=zipfile.ZIP_STORED)


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
)
_AES = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
_OPF = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:uuid:0</dc:identifier>
    <dc:title>队列简史</dc:title><dc:language>zh</dc:language></metadata>
  <manifest>{items}</manifest>
  <spine{toc}>{refs}</spine>
</package>"""
_XHTML = """<?xml version="1.0" encoding="utf-8"?>
{doctype}
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>队列简史</title>
<link rel="stylesheet" href="../style.css"/></head><body>{body}</body></html>"""
_NAV = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>目录</title></head>
<body><nav epub:type="toc"><h1>目录</h1><ol>{links}</ol></nav></body></html>"""
_NCX = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE ncx PUBLIC "-//NISO//DTD ncx 2005-1//EN" "http://www.daisy.org/z3986/2005/ncx-2005-1.dtd">
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><navMap>{points}</navMap></ncx>"""
_ENCRYPTION = """<?xml version="1.0" encoding="UTF-8"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
  <enc:EncryptedData><enc:EncryptionMethod Algorithm="{algorithm}"/>
    <enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData>
</encryption>"""
