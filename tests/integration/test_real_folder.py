"""A team's folder as teams keep it, uploaded in one request and indexed by a real worker: every file answerable.

Ten files, each holding one fact found nowhere else: a scan, a whiteboard photo, slides, a workbook, a CSV
exported by Excel in GBK, an e-book, and four documents with tables. Five hostile or broken files ride along
and each fails alone with a reason a person can act on, while the job as a whole succeeds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader, PdfWriter

from harness.processes import Stack
from harness.sse import iter_events
from tests.conftest import client_for
from tests.support.archives import epub_book, pptx_with_external_entity, truncated_xlsx, zip_bomb_docx
from tests.support.documents import docx_document, pdf_pages
from tests.support.jobs import wait_for_job
from tests.support.office_files import delimited_text, pptx_deck, purchases_sheet, server_inventory, xlsx_workbook
from tests.support.scans import image_bomb_png, scanned_pdf, whiteboard_png

pytestmark = pytest.mark.integration
COLLECTION = "team-folder"

MARKDOWN = """# 机房巡检

| 项目 | 周期 | 负责人 |
|---|---|---|
| 空调滤网 | 每月 | 赵磊 |
| 蓄电池放电测试 | 每季度 | 孙倩 |
"""

HTML = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>值班表</title></head><body>
<h1>节假日值班</h1><table><tr><th>日期</th><th>值班人</th></tr>
<tr><td>国庆</td><td>周敏</td></tr><tr><td>春节</td><td>吴昊</td></tr></table></body></html>"""


def encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_pages([["需要密码的页面。"]]))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def team_folder(secret: Path) -> dict[str, bytes]:
    contacts = [["姓名", "工号", "部门"], ["张伟", "E1024", "财务部"], ["李娜", "E2048", "采购部"]]
    return {
        "扫描件.pdf": scanned_pdf([["差旅报销须在出差结束后十五日内提交。"]]),
        "白板.png": whiteboard_png(["发布冻结期从十二月二十日开始。"]),
        "年度规划.pptx": pptx_deck(),
        "资产.xlsx": xlsx_workbook({"服务器清单": server_inventory(), "采购记录": purchases_sheet()}),
        "通讯录.csv": delimited_text(contacts, encoding="gbk"),
        "队列简史.epub": epub_book(),
        "设备手册.docx": docx_document(
            "设备手册", [(1, "打印机"), (None, "型号与楼层见下表。")], [["型号", "楼层"], ["HP-M428", "三楼东侧"]]
        ),
        "巡检.md": MARKDOWN.encode(),
        "值班.html": HTML.encode(),
        "报价.pdf": pdf_pages([["报价单", "型号 | 单价 | 数量", "光模块 QSFP28 | 1800 元 | 24"]]),
        # each fails alone
        "损坏.xlsx": truncated_xlsx(),
        "炸弹图.png": image_bomb_png(),
        "炸弹.docx": zip_bomb_docx(600 * 1024 * 1024),
        "实体.pptx": pptx_with_external_entity(secret),
        "加密.pdf": encrypted_pdf(),
    }


# file, question, the cited location (a prefix of it for OCR and row ranges), text the passage must hold
ANSWERABLE = [
    ("扫描件.pdf", "差旅报销要在出差结束后多少天内提交？", "p. 1 (OCR)", "十五日内提交"),
    ("白板.png", "发布冻结期从哪天开始？", "(OCR)", "十二月二十日"),
    ("年度规划.pptx", "扩容窗口在什么时候？", "slide 2: 各季度目标", "七月第二周"),
    (
        "资产.xlsx",
        "db-07 服务器的内存是多少，在哪个机房？",
        "sheet 服务器清单, rows",
        "编号: db-07 | 内存: 512GB | 机房: 北京",
    ),
    ("通讯录.csv", "工号 E2048 是谁，在哪个部门？", "rows 2–3", "姓名: 李娜 | 工号: E2048 | 部门: 采购部"),
    ("队列简史.epub", "队列最早用于什么系统？", "第一章 起源", "队列最早用于批处理系统"),
    ("设备手册.docx", "打印机 HP-M428 在几楼？", "设备手册 › 打印机", "HP-M428 | 三楼东侧"),
    ("巡检.md", "蓄电池放电测试多久做一次，谁负责？", "机房巡检", "蓄电池放电测试 | 每季度 | 孙倩"),
    ("值班.html", "春节谁值班？", "节假日值班", "春节 吴昊"),
    ("报价.pdf", "光模块 QSFP28 的单价是多少？", "p. 1", "光模块 QSFP28 | 1800 元"),
]

# file, words its error must hold
FAILING = {
    "损坏.xlsx": ["not a valid Excel .xlsx file"],
    "炸弹图.png": ["MAX_IMAGE_PIXELS"],
    "炸弹.docx": ["MAX_ARCHIVE_BYTES"],
    "实体.pptx": ["declares its own DTD"],
    "加密.pdf": ["password-protected"],
}


@pytest.fixture(scope="module")
def client(offline_stack: Stack) -> Iterator[httpx.Client]:
    with client_for(offline_stack) as c:
        yield c


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "secret.txt"
    path.write_text("SECRET-MARKER-7731")
    return path


@pytest.fixture(scope="module")
def indexed(client: httpx.Client, secret: Path) -> dict[str, Any]:
    """The whole folder in one upload; the finished job and its documents by name."""
    parts = [
        ("files", (name, io.BytesIO(data), "application/octet-stream")) for name, data in team_folder(secret).items()
    ]
    response = client.post(f"/v1/collections/{COLLECTION}/documents", files=parts, params={"skip_invalid": "true"})
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == []
    job, _ = wait_for_job(client, response.json()["job_id"], timeout=170)
    documents = client.get(f"/v1/jobs/{job['id']}/documents").json()["documents"]
    return {"job": job, "documents": {d["name"]: d for d in documents}}


def sources(client: httpx.Client, question: str) -> list[dict[str, Any]]:
    query = client.post("/v1/queries", json={"collection": COLLECTION, "question": question, "top_k": 4})
    assert query.status_code == 202, query.text
    with client.stream("GET", query.json()["stream_url"]) as stream:
        first = next(iter_events(stream))
    assert first.event == "sources", first
    return list(first.data)


def test_every_real_file_is_indexed_and_each_bad_one_fails_alone(indexed: dict[str, Any]) -> None:
    job, documents = indexed["job"], indexed["documents"]
    assert job["state"] == "succeeded", job
    statuses = {name: doc["status"] for name, doc in documents.items()}
    assert statuses == {**{f: "indexed" for f, *_ in ANSWERABLE}, **dict.fromkeys(FAILING, "failed")}
    for name, words in FAILING.items():
        for word in words:
            assert word in documents[name]["error"], (name, documents[name]["error"])
    assert not any("SECRET-MARKER" in (doc["error"] or "") for doc in documents.values())


@pytest.mark.parametrize("filename, question, location, text", ANSWERABLE, ids=[a[0] for a in ANSWERABLE])
def test_a_question_about_each_file_finds_its_fact(
    client: httpx.Client, indexed: dict[str, Any], filename: str, question: str, location: str, text: str
) -> None:
    found = sources(client, question)
    cited = [s for s in found if s["document"] == filename]
    assert cited, f"{filename} not among {[(s['document'], s['location']) for s in found]}"
    passage = next((s for s in cited if text in " ".join(s["text"].split())), None)
    assert passage is not None, [s["text"] for s in cited]
    assert passage["location"].startswith(location), passage["location"]
