"""Markdown headings from markdown-it's Rust port are the ones markdown-it-py's CommonMark parser finds.

Sections (and so chunks and their locations) are cut at these headings, so the parser behind them must not change
them: the cases below are CommonMark's tricky corners and every Markdown file in this repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from workers.loaders.text import markdown_headings

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    "# 标题\n\n## 小节一\n正文一\n\n```\n# 代码里的井号\n```\n\n## 小节二 ##\n正文二\n",
    "总览\n====\n\n正文\n\n细节\n第二行\n----\n正文\n",
    "# 标题一\r\n正文\r\n\r\n标题二\r\n===\r\n内容 # 非标题\r\n",
    "#\tTab 标题 #\n\n   ### 缩进三格 ###   \n\n    # 缩进四格是代码\n",
    "- # 列表里的标题\n- 条目\n\n> # 引用里的标题\n\n<div>\n# HTML 块里的井号\n</div>\n",
    "#不是标题\n\n#\n\n# \x0c\n\n####### 七个井号\n\n# foo \\#\\#\n\n# `代码` *强调* [链接](u) \\*\n",
    "\u3000标题\u3000\n===\n\n#  \u00a0x\u00a0 #\n\nFoo *bar\nbaz*\n====\n\n---\n\n段落\n---\n",
    "# a\0b\n\nx\u2028# y\n\n# z\x0c\n\n~~~\n# 围栏\n~~~~\n\n# 结尾",
    "",
]
DOCS = sorted(p for p in ROOT.rglob("*.md") if ".venv" not in p.parts and "node_modules" not in p.parts)


def _reference(text: str) -> list[tuple[int, int, int, str]]:
    """Top-level headings as markdown-it-py's block parser reports them."""
    tokens = MarkdownIt("commonmark").disable("inline").parse(text)
    return [
        (tok.map[0], tok.map[1], int(tok.tag[1]), tokens[i + 1].content)
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.level == 0 and tok.map
    ]


@pytest.mark.parametrize("text", CASES)
def test_the_headings_of_tricky_markdown_are_the_reference_parsers(text: str) -> None:
    assert markdown_headings(text) == _reference(text)


def test_the_headings_of_this_repositorys_markdown_are_the_reference_parsers() -> None:
    assert len(DOCS) > 10
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        assert markdown_headings(text) == _reference(text), path
