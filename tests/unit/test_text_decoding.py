"""The one decoding rule shared by the upload check and the loaders: accepted text is read right, the rest refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shared.ingest.text_decoding import TextDecoder, UndecodableText, declared_charset, decode_bytes, detect_encoding
from shared.ingest.uploads import UploadRejected, store_upload

TEXT = "页面置换：内存已满时换出一页（FIFO、LRU）。扩展汉字𠀀。"
HTML = f'<html><head><meta charset="gbk"><title>页面</title></head><body><p>{TEXT}</p></body></html>'


@pytest.mark.parametrize(
    "data, encoding",
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (TEXT.encode("utf-8-sig"), "utf-8-sig"),
        (TEXT.encode("gb18030"), "gb18030"),
        (TEXT.encode("utf-16"), "utf-16"),
        (TEXT.encode("utf-16-be").join([b"\xfe\xff", b""]), "utf-16"),
        (TEXT.encode("utf-32"), "utf-32"),
    ],
    ids=["utf-8", "utf-8 bom", "gb18030", "utf-16 le bom", "utf-16 be bom", "utf-32 bom"],
)
def test_accepted_encodings_decode_to_the_original_text(data: bytes, encoding: str) -> None:
    assert detect_encoding(data) == encoding
    assert decode_bytes(data) == TEXT


@pytest.mark.parametrize(
    "data",
    [
        "caf\xe9".encode("latin-1"),
        TEXT.encode("utf-16-le"),  # no byte-order mark: NULs, or mojibake
        "abc".encode("utf-16-le"),
        "頁面置換演算法".encode("big5"),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\xff\xfe\xfa not utf-8 \xc3\x28",  # a UTF-16 mark, then bytes that read as unassigned code points
    ],
    ids=["latin-1", "utf-16 without bom", "ascii utf-16 without bom", "big5", "binary", "stray utf-16 mark"],
)
def test_text_in_no_accepted_encoding_is_refused_not_read_as_mojibake(data: bytes) -> None:
    with pytest.raises(UndecodableText, match="save it as UTF-8"):
        decode_bytes(data)


def test_an_html_page_is_read_in_the_charset_it_declares() -> None:
    page = HTML.encode("gb18030")
    assert declared_charset(page) == "gb18030"  # GBK and GB2312 labels are read with their superset
    assert decode_bytes(page, html=True) == HTML
    assert declared_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=gb2312">') == "gb18030"
    assert declared_charset(b"<html><body>no declaration</body></html>") is None


def test_a_page_whose_declared_charset_does_not_fit_its_bytes_falls_back() -> None:
    gbk_declared_utf8 = HTML.replace('charset="gbk"', 'charset="utf-8"')
    assert decode_bytes(gbk_declared_utf8.encode("gb18030"), html=True) == gbk_declared_utf8
    utf16_label = HTML.replace('charset="gbk"', 'charset="utf-16"')  # bytes declaring UTF-16 are not UTF-16
    assert decode_bytes(utf16_label.encode("utf-8"), html=True) == utf16_label


def test_feeding_blocks_that_split_characters_gives_the_same_answer() -> None:
    for data in (TEXT.encode("gb18030") * 500, TEXT.encode("utf-16") + TEXT.encode("utf-16-le") * 500):
        decoder = TextDecoder()
        for i in range(0, len(data), 7):
            decoder.feed(data[i : i + 7])
        assert decoder.finish() == detect_encoding(data)


@pytest.mark.parametrize(
    "name, data",
    [
        ("a.txt", TEXT.encode("gb18030")),
        ("a.md", TEXT.encode("utf-16")),
        ("a.html", HTML.encode("gb18030")),
        ("a.txt", "caf\xe9".encode("latin-1")),
        ("a.txt", TEXT.encode("utf-16-le")),
        ("a.htm", "頁面".encode("big5") * 3),
    ],
)
def test_the_upload_check_accepts_exactly_what_the_loaders_can_decode(name: str, data: bytes, tmp_path: Path) -> None:
    try:
        decode_bytes(data, html=name.endswith((".html", ".htm")))
        readable = True
    except UndecodableText:
        readable = False
    try:
        store_upload(io.BytesIO(data), name, tmp_path, max_bytes=1 << 20)
        accepted = True
    except UploadRejected as exc:
        assert exc.code == "invalid_encoding" and "UTF-8" in exc.message
        accepted = False
    assert accepted == readable
