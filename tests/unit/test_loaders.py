"""Per-format loaders: the text a reader sees, cut into sections that know their page or heading path."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from llama_index.core.node_parser import SentenceSplitter
from pypdf import PdfReader, PdfWriter

from shared.ingest.import_paths import SUPPORTED_SUFFIXES
from shared.ingest.items import IndexItem
from shared.ingest.text_decoding import UndecodableText
from tests.support.documents import docx_document, pdf_pages, pdf_without_text
from workers.indexing import load_and_split
from workers.loaders import LOADERS, Section, UnreadableDocument, load_sections
from workers.loaders.html import html_sections
from workers.loaders.text import markdown_sections


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_every_supported_suffix_has_a_loader() -> None:
    assert set(LOADERS) == set(SUPPORTED_SUFFIXES)


def test_markdown_sections_carry_their_heading_path() -> None:
    text = (
        "# 标题\n\n## 小节一\n正文一\n\n```\n# 代码里的井号\n```\n\n## 小节二\n正文二\n\n### 细节\n正文三\n\n# 另一章\n"
    )
    sections = markdown_sections(text + "正文四\n")
    assert [s.location for s in sections] == ["标题 › 小节一", "标题 › 小节二", "标题 › 小节二 › 细节", "另一章"]
    assert sections[0].text.startswith("标题\n小节一\n正文一") and "# 代码里的井号" in sections[0].text
    assert markdown_sections("没有标题的笔记。\n第二行。") == [Section("没有标题的笔记。\n第二行。", "")]


def test_setext_headings_count_too() -> None:
    sections = markdown_sections("总览\n====\n\n正文\n\n细节\n----\n正文\n")
    assert [s.location for s in sections] == ["总览", "总览 › 细节"]


def test_html_keeps_title_headings_and_text_and_drops_markup_scripts_and_styles() -> None:
    page = """<html><head><title>页面标题</title><style>p { color: red }</style><script>var secret = 1;</script></head>
    <body><!-- 注释 --><nav><a href="/">首页</a></nav><h1>算法</h1><p>第一段<b>加粗</b>文字。</p>
    <h2>先进先出</h2><ul><li>一</li><li>二</li></ul><table><tr><td>甲</td><td>乙</td></tr></table>
    <div hidden>隐藏</div><noscript>请启用</noscript><script>document.write("动态")</script></body></html>"""
    sections = html_sections(page)
    assert sections == [
        Section("页面标题", ""),
        Section("算法\n第一段加粗文字。", "算法"),
        Section("先进先出\n一\n二\n甲 乙", "算法 › 先进先出"),
    ]


def test_pdf_pages_are_sections_located_by_page_number(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pdf", pdf_pages([["第一页的内容。"], ["第二页的内容。"]]))
    sections = load_sections(path)
    assert [s.location for s in sections] == ["p. 1", "p. 2"]
    assert "第二页的内容。" in sections[1].text


def test_a_pdf_without_a_text_layer_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableDocument, match="no extractable text.*OCR"):
        load_sections(write(tmp_path, "scan.pdf", pdf_without_text()))


def test_docx_headings_and_tables_in_document_order(tmp_path: Path) -> None:
    data = docx_document("手册", [(1, "安装"), (None, "先装依赖。"), (2, "验证"), (None, "运行测试。")], [["键", "值"]])
    sections = load_sections(write(tmp_path, "a.docx", data))
    assert sections == [
        Section("手册\n安装\n先装依赖。", "手册 › 安装"),
        Section("验证\n运行测试。\n键 | 值", "手册 › 安装 › 验证"),
    ]


def test_text_in_another_encoding_is_decoded_or_refused(tmp_path: Path) -> None:
    assert load_sections(write(tmp_path, "gb.txt", "国标文本。".encode("gb18030"))) == [Section("国标文本。")]
    with pytest.raises(UndecodableText):
        load_sections(write(tmp_path, "bad.txt", "café".encode("latin-1")))


def test_chunks_keep_the_location_of_their_section(tmp_path: Path) -> None:
    markdown = "# 总览\n\n" + "第一章的句子。" * 300 + "\n\n## 细节\n\n细节的句子。\n"
    path = write(tmp_path, "a.md", markdown.encode())
    item = IndexItem(doc_id="d", name="a.md", path=str(path))
    document = load_and_split(item, SentenceSplitter(chunk_size=256, chunk_overlap=16))
    locations = [c.location for c in document.chunks]
    assert locations[-1] == "总览 › 细节" and document.chunks[-1].text == "细节\n\n细节的句子。"
    assert set(locations[:-1]) == {"总览"} and len(locations) > 2  # a long section splits, keeping its location
    assert [c.position for c in document.chunks] == list(range(len(locations)))


def test_a_file_with_no_text_once_read_is_unreadable(tmp_path: Path) -> None:
    item = IndexItem(doc_id="d", name="a.html", path=str(write(tmp_path, "a.html", b"<script>x()</script>")))
    with pytest.raises(UnreadableDocument, match="no extractable text"):
        load_and_split(item, SentenceSplitter())


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_a_pdf_with_an_empty_password_is_read_and_one_needing_a_password_is_unreadable(
    tmp_path: Path, algorithm: str
) -> None:
    for password, readable in (("", True), ("secret", False)):
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_pages([["加密的页面。"]]))))
        writer.encrypt(user_password=password, owner_password="owner", algorithm=algorithm)
        path = tmp_path / f"locked-{readable}.pdf"
        writer.write(path)
        if readable:
            assert "加密的页面。" in load_sections(path)[0].text
        else:
            with pytest.raises(UnreadableDocument, match="password"):
                load_sections(path)
