"""Every advertised format, uploaded through the API and indexed by a real worker: clean text, the right location.

Each file carries a marker word (KP2, KD3, ...) in one passage; a BM25 query for it must cite that passage with
its text as a reader would see it and the place it came from (page, heading path), or the document must fail
alone with an error a person can act on.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.processes import Stack
from harness.sse import iter_events
from tests.conftest import client_for
from tests.support.documents import docx_document, pdf_pages, pdf_without_text
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.integration
COLLECTION = "formats"

HTML_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="gbk"><title>页面置换算法 - 操作系统笔记</title>
<style>.nav { color: red } p.secret::after { content: "样式里的字" }</style>
<script>var trackingPixel = "脚本里的字 KH-SCRIPT"; document.write("<p>动态</p>");</script></head>
<body><nav><a href="/">首页</a></nav>
<h1>页面置换算法</h1><p>内存已满时，操作系统必须选出一页换出。</p>
<h2>先进先出</h2><p>换出<b>最早</b>调入内存的页面，代号 KH4。</p>
<script>console.log("KH-SCRIPT")</script><noscript>请启用 JavaScript</noscript>
</body></html>"""

MARKDOWN = """# 任务队列

接口只负责投递任务。

## 重新投递

```
# 代码块里的井号不是标题
```
开启 acks_late 之后，崩溃的任务会重新投递，代号 KM7。
"""

FILES: dict[str, bytes] = {
    "cid.pdf": pdf_pages([["第一页：页面置换算法。"], ["第二页：最近最久未使用算法换出最久未访问的页", "代号 KP2。"]]),
    "headings.docx": docx_document(
        "操作系统",
        [(1, "内存管理"), (None, "分页把内存分成固定的页。"), (2, "页面置换"), (None, "缺页时换出一页，代号 KD3。")],
    ),
    "page.html": HTML_PAGE.encode("gbk"),
    "gb18030.txt": "国标编码的文本，含扩展汉字𠀀，代号 KG5。".encode("gb18030"),
    "utf16.txt": "带字节顺序标记的 UTF-16 文本，代号 KU6。".encode("utf-16"),
    "notes.md": MARKDOWN.encode(),
    "scanned.pdf": pdf_without_text(),
}

# file, marker, the cited passage's location, text the passage must hold (exactly as a reader would see it)
CITED = [
    ("cid.pdf", "KP2", "p. 2", "第二页：最近最久未使用算法换出最久未访问的页\n代号 KP2。"),
    ("headings.docx", "KD3", "操作系统 › 内存管理 › 页面置换", "页面置换\n缺页时换出一页，代号 KD3。"),
    ("page.html", "KH4", "页面置换算法 › 先进先出", "先进先出\n换出最早调入内存的页面，代号 KH4。"),
    ("gb18030.txt", "KG5", "", "国标编码的文本，含扩展汉字𠀀，代号 KG5。"),
    ("utf16.txt", "KU6", "", "带字节顺序标记的 UTF-16 文本，代号 KU6。"),
    ("notes.md", "KM7", "任务队列 › 重新投递", "开启 acks_late 之后，崩溃的任务会重新投递，代号 KM7。"),
]


@pytest.fixture(scope="module")
def client(offline_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(offline_stack) as c:
        yield c


@pytest.fixture(scope="module")
def indexed(client: httpx.Client) -> dict[str, Any]:
    """Every format uploaded in one request; the finished job."""
    parts = [("files", (name, io.BytesIO(data), "application/octet-stream")) for name, data in FILES.items()]
    response = client.post(f"/v1/collections/{COLLECTION}/documents", files=parts)
    assert response.status_code == 202, response.text
    job, _ = wait_for_job(client, response.json()["job_id"])
    return job


def sources(client: httpx.Client, question: str, mode: str = "bm25") -> list[dict[str, Any]]:
    query = client.post("/v1/queries", json={"collection": COLLECTION, "question": question, "mode": mode})
    assert query.status_code == 202, query.text
    with client.stream("GET", query.json()["stream_url"]) as stream:
        first = next(iter_events(stream))
    assert first.event == "sources", first
    return list(first.data)


def test_every_format_but_the_scanned_pdf_is_indexed(client: httpx.Client, indexed: dict[str, Any]) -> None:
    assert indexed["state"] == "succeeded", indexed
    assert indexed["result"]["documents_indexed"] == len(FILES) - 1
    documents = client.get(f"/v1/collections/{COLLECTION}/documents").json()["documents"]
    assert sorted(d["source"] for d in documents) == sorted(set(FILES) - {"scanned.pdf"})


def test_a_pdf_without_a_text_layer_fails_alone_saying_so(client: httpx.Client, indexed: dict[str, Any]) -> None:
    failed = client.get(f"/v1/jobs/{indexed['id']}/documents", params={"status": "failed"}).json()["documents"]
    assert [d["name"] for d in failed] == ["scanned.pdf"]
    assert "no extractable text" in failed[0]["error"] and "OCR" in failed[0]["error"]


@pytest.mark.parametrize("filename, marker, location, text", CITED, ids=[c[0] for c in CITED])
def test_a_query_cites_clean_text_and_where_it_came_from(
    client: httpx.Client, indexed: dict[str, Any], filename: str, marker: str, location: str, text: str
) -> None:
    cited = [s for s in sources(client, f"代号 {marker}") if marker in s["text"]]
    assert len(cited) == 1, cited
    assert (cited[0]["document"], cited[0]["location"]) == (filename, location)
    assert text in cited[0]["text"]
    assert "\ufffd" not in cited[0]["text"]  # nothing was decoded with replacement characters


def test_html_is_indexed_as_text_without_markup_scripts_or_styles(
    client: httpx.Client, indexed: dict[str, Any]
) -> None:
    cited = sources(client, "页面置换算法 操作系统 先进先出 内存", mode="hybrid")
    page = [s for s in cited if s["document"] == "page.html"]
    assert page, "the HTML page was not cited"
    text = "\n".join(s["text"] for s in page)
    assert "页面置换算法 - 操作系统笔记" in text  # the title is kept as text
    for leaked in ("<", ">", "trackingPixel", "KH-SCRIPT", "color", "样式里的字", "动态", "请启用"):
        assert leaked not in text
    # Had the script been indexed, a keyword search for its words would cite it.
    assert not [s for s in sources(client, "trackingPixel 脚本里的字") if "trackingPixel" in s["text"]]
