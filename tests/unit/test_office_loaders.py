"""Slides, workbooks, CSV and TSV: the text a reader sees, located by slide, sheet and row; rows never cut."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.node_parser import SentenceSplitter

from shared.ingest.text_normalize import normalize_text
from tests.support.office_files import (
    delimited_text,
    pptx_deck,
    pptx_table,
    purchases_sheet,
    rewrite_member,
    server_inventory,
    with_external_entity,
    xlsx_workbook,
)
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import Row, Section, UnreadableDocument
from workers.loaders.sheets import column_letter, load_csv, load_tsv, load_xlsx
from workers.loaders.slides import load_pptx
from workers.row_chunks import row_chunks

LIMITS = LoadLimits()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def chunks(sections: list[Section]) -> list[tuple[str, str]]:
    """(text, location) per chunk, as the index pipeline cuts sections: rows whole, other text as prose."""
    splitter = SentenceSplitter(chunk_size=512, chunk_overlap=64)
    pieces: list[tuple[str, str]] = []
    for section in sections:
        if section.rows:
            pieces += row_chunks(section.rows, normalize_text(section.location), splitter)
        else:
            pieces += [(p, normalize_text(section.location)) for p in splitter.split_text(normalize_text(section.text))]
    return pieces


def holding(pieces: list[tuple[str, str]], fact: str) -> list[tuple[str, str]]:
    return [(text, location) for text, location in pieces if fact in text]


def assert_rows_whole(section: Section, pieces: list[tuple[str, str]]) -> None:
    """Every chunk is whole rows of `section`, located by their first and last row; each row is in one chunk."""
    numbers = {normalize_text(row.text): row.number for row in section.rows}
    seen: list[int] = []
    for text, location in pieces:
        held = [numbers[line] for line in text.split("\n")]  # a KeyError here is a row cut in two
        rows = f"rows {held[0]}–{held[-1]}"
        assert location == (normalize_text(f"{section.location}, {rows}") if section.location else rows)
        seen += held
    assert seen == [row.number for row in section.rows]


def test_each_slide_with_text_is_a_section_located_by_its_number_and_title(tmp_path: Path) -> None:
    sections = load_pptx(write(tmp_path, "plan.pptx", pptx_deck()), LIMITS)
    long_title = "一个非常长的标题" * 10
    assert (
        [s.location for s in sections]
        == [
            "slide 1: 2026 年度规划",
            "slide 2: 各季度目标",
            "slide 3",  # no title placeholder; slide 4 holds no text and is left out
            f"slide 5: {long_title[:59]}…",
        ]
    )
    assert sections[0].text == "2026 年度规划\n基础设施组"
    assert sections[3].text == long_title


def test_a_slide_reads_title_then_text_and_tables_by_position_then_notes(tmp_path: Path) -> None:
    sections = load_pptx(write(tmp_path, "plan.pptx", pptx_deck()), LIMITS)
    assert sections[1].text == (
        "各季度目标\n目标按季度拆分\n季度 | 目标\n季度: Q1 | 目标: 采购交换机\n季度: Q2 | 目标: 扩容\n负责人：王工\n"
        "Notes: 强调扩容窗口在七月第二周。\n预算另议"
    )
    # added bottom first, group right before left, a line break inside a paragraph: read top-down, left-right
    assert sections[2].text == "最上面的一段\n换行之后\n组内左边\n组内右边\n最下面的一段"


def test_a_slide_table_without_a_header_row_is_read_cell_by_cell(tmp_path: Path) -> None:
    rows = [["收入", "10"], ["支出", "7"]]
    assert load_pptx(write(tmp_path, "t.pptx", pptx_table(rows, header_row=False)), LIMITS) == [
        Section("收入 | 10\n支出 | 7", "slide 1")
    ]
    with_header = load_pptx(write(tmp_path, "h.pptx", pptx_table([["", "Q1"], *rows], header_row=True)), LIMITS)
    assert with_header[0].text == "Q1\n收入 | Q1: 10\n支出 | Q1: 7"  # an unnamed column's value stands alone


def test_a_fact_in_the_speaker_notes_is_in_one_chunk_located_by_its_slide(tmp_path: Path) -> None:
    pieces = chunks(load_pptx(write(tmp_path, "plan.pptx", pptx_deck()), LIMITS))
    assert [location for _, location in holding(pieces, "七月第二周")] == ["slide 2: 各季度目标"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04 not really a zip", "not a valid PowerPoint .pptx file"),
        (pptx_deck()[:2000], "not a valid PowerPoint .pptx file"),
        (xlsx_workbook({"表": [["甲"]]}), "not a valid PowerPoint .pptx file .*not a PowerPoint file"),
    ],
    ids=["not-a-zip", "truncated", "a-workbook"],
)
def test_a_file_that_is_not_a_pptx_is_unreadable(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(UnreadableDocument, match=message):
        load_pptx(write(tmp_path, "broken.pptx", data), LIMITS)


def test_a_slide_never_expands_an_external_entity(tmp_path: Path) -> None:
    secret = write(tmp_path, "secret.txt", "机密口令".encode())
    data = with_external_entity(pptx_deck(), "ppt/slides/slide2.xml", str(secret))
    sections = load_pptx(write(tmp_path, "xxe.pptx", data), LIMITS)
    assert sections and not any("机密口令" in s.text for s in sections)


def inventory_workbook() -> bytes:
    return xlsx_workbook(
        {
            "服务器清单": server_inventory(),
            "采购记录": purchases_sheet(),
            "隐藏": [["说明"], ["隐藏的旧数据"]],
            "空白": [],
            "只有表头": [["负责人", "电话"]],
        },
        hidden=["隐藏"],
        formats={("采购记录", "G3"): "0.0%"},
        cached={("采购记录", "E3"): "3751.5", ("采购记录", "E4"): "480"},
    )


def test_each_visible_sheet_is_a_section_of_header_rendered_rows(tmp_path: Path) -> None:
    sections = load_xlsx(write(tmp_path, "a.xlsx", inventory_workbook()), LIMITS)
    assert [s.location for s in sections] == ["sheet 服务器清单", "sheet 采购记录", "sheet 只有表头"]
    inventory = sections[0]
    assert inventory.text == "编号 | 内存 | 机房"
    assert inventory.rows[6] == Row(8, "编号: db-07 | 内存: 512GB | 机房: 北京")
    assert [r.number for r in inventory.rows] == list(range(2, 61))
    assert sections[2] == Section("负责人 | 电话", "sheet 只有表头")  # findable by its header alone


def test_sheet_values_read_as_excel_shows_them(tmp_path: Path) -> None:
    purchases = load_xlsx(write(tmp_path, "a.xlsx", inventory_workbook()), LIMITS)[1]
    assert purchases.rows == (  # header in row 2 under an empty row; formulas give their saved results
        Row(
            3,
            "日期: 2026-03-01 | 项目: 交换机 核心 | 数量: 3 | 单价: 1250.5 | 金额: 3751.5 | 已付: TRUE"
            " | 折扣: 12.5% | 误差: 0.3",
        ),
        Row(4, "日期: 2026-03-02 14:30:00 | 项目: 网线 | 数量: 40 | 单价: 12 | 金额: 480 | 已付: FALSE"),
    )


def test_a_sheet_row_is_never_cut_and_a_fact_is_in_one_chunk_located_by_its_rows(tmp_path: Path) -> None:
    sections = load_xlsx(write(tmp_path, "a.xlsx", inventory_workbook()), LIMITS)
    inventory = chunks(sections[:1])
    assert len(inventory) > 1
    assert_rows_whole(sections[0], inventory)
    [(text, location)] = holding(chunks(sections), "db-07")
    assert "编号: db-07 | 内存: 512GB | 机房: 北京" in text.split("\n") and location.startswith(
        "sheet 服务器清单, rows "
    )
    assert chunks(sections[2:]) == [("负责人 | 电话", "sheet 只有表头")]


def test_cells_past_the_limit_fail_the_workbook_naming_the_setting(tmp_path: Path) -> None:
    two_sheets = xlsx_workbook({"一": server_inventory(20), "二": server_inventory(20)})  # 60 cells each
    path = write(tmp_path, "two.xlsx", two_sheets)
    assert len(load_xlsx(path, LoadLimits(max_sheet_cells=120))) == 2
    with pytest.raises(UnreadableDocument, match="more than 100 cells .*MAX_SHEET_CELLS"):
        load_xlsx(path, LoadLimits(max_sheet_cells=100))  # counted over all sheets together


def test_reading_a_sheet_stops_as_soon_as_the_limit_is_passed(tmp_path: Path) -> None:
    big = xlsx_workbook({"大表": server_inventory(5000)})
    broken_tail = rewrite_member(big, "xl/worksheets/sheet1.xml", lambda xml: xml[: len(xml) * 3 // 4] + "<c <<")
    path = write(tmp_path, "big.xlsx", broken_tail)
    with pytest.raises(UnreadableDocument, match="not a valid Excel .xlsx file"):
        load_xlsx(path, LIMITS)
    with pytest.raises(UnreadableDocument, match="MAX_SHEET_CELLS"):  # stopped long before the broken end
        load_xlsx(path, LoadLimits(max_sheet_cells=300))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip at all", "not a valid Excel .xlsx file \\(it is not a zip package\\)"),
        (inventory_workbook()[:3000], "not a valid Excel .xlsx file"),
        (pptx_deck(), "not a valid Excel .xlsx file"),
    ],
    ids=["not-a-zip", "truncated", "a-presentation"],
)
def test_a_file_that_is_not_an_xlsx_is_unreadable(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(UnreadableDocument, match=message):
        load_xlsx(write(tmp_path, "broken.xlsx", data), LIMITS)


def test_a_sheet_declaring_an_external_entity_is_refused_unread(tmp_path: Path) -> None:
    secret = write(tmp_path, "secret.txt", "机密口令".encode())
    data = with_external_entity(xlsx_workbook({"表": server_inventory(3)}), "xl/worksheets/sheet1.xml", str(secret))
    with pytest.raises(UnreadableDocument, match="declares entities") as refused:
        load_xlsx(write(tmp_path, "xxe.xlsx", data), LIMITS)
    assert "机密口令" not in str(refused.value)


def test_a_gbk_csv_from_excel_decodes_and_counts_rows_as_excel_does(tmp_path: Path) -> None:
    rows = [["编号", "备注", "机房"], ["db-01", "第一行\n第二行", "北京"], [], ["db-02", "含,逗号", "上海"]]
    data = delimited_text(rows, encoding="gbk")
    assert b"\r\n" in data and "编号".encode("gbk") in data
    assert load_csv(write(tmp_path, "a.csv", data), LIMITS) == [
        Section(
            "编号 | 备注 | 机房",
            "",
            (
                Row(2, "编号: db-01 | 备注: 第一行 第二行 | 机房: 北京"),
                Row(4, "编号: db-02 | 备注: 含,逗号 | 机房: 上海"),
            ),
        )
    ]


def test_a_utf8_csv_with_excels_byte_order_mark_and_a_semicolon_csv_read_alike(tmp_path: Path) -> None:
    rows = [["编号", "机房"], ["db-01", "北京"]]
    expected = [Section("编号 | 机房", "", (Row(2, "编号: db-01 | 机房: 北京"),))]
    assert load_csv(write(tmp_path, "bom.csv", delimited_text(rows, encoding="utf-8-sig")), LIMITS) == expected
    assert load_csv(write(tmp_path, "semi.csv", delimited_text(rows, "utf-8", delimiter=";")), LIMITS) == expected


def test_a_column_without_a_header_is_named_by_its_letter(tmp_path: Path) -> None:
    data = delimited_text([["编号", "", "机房"], ["db-99", "1TB", "北京", "备用"]], encoding="utf-8")
    assert load_csv(write(tmp_path, "a.csv", data), LIMITS)[0].rows == (
        Row(2, "编号: db-99 | B: 1TB | 机房: 北京 | D: 备用"),
    )
    assert [column_letter(n) for n in (1, 26, 27, 703)] == ["A", "Z", "AA", "AAA"]


def test_excels_unicode_text_tsv_is_read_by_tabs(tmp_path: Path) -> None:
    data = delimited_text([["编号", "备注"], ["db-01", "有\t制表符"]], encoding="utf-16", delimiter="\t")
    assert load_tsv(write(tmp_path, "a.tsv", data), LIMITS) == [
        Section("编号 | 备注", "", (Row(2, "编号: db-01 | 备注: 有 制表符"),))
    ]


def test_a_csv_row_is_never_cut_and_a_fact_is_in_one_chunk_located_by_its_rows(tmp_path: Path) -> None:
    sections = load_csv(write(tmp_path, "a.csv", delimited_text(server_inventory(), encoding="gbk")), LIMITS)
    pieces = chunks(sections)
    assert len(pieces) > 1
    assert_rows_whole(sections[0], pieces)
    [(text, location)] = holding(pieces, "db-07")
    assert "编号: db-07 | 内存: 512GB | 机房: 北京" in text.split("\n") and location.startswith("rows ")


def test_a_csv_past_the_cell_limit_fails_before_reading_the_rest(tmp_path: Path) -> None:
    rows = server_inventory(200)
    data = delimited_text(rows, encoding="utf-8") + b'db-x,"' + b"x" * 200_000 + b"\r\n"  # a quote never closed
    path = write(tmp_path, "a.csv", data)
    with pytest.raises(UnreadableDocument, match="not a valid CSV file \\(line 201"):
        load_csv(path, LIMITS)
    with pytest.raises(UnreadableDocument, match="more than 300 cells .*MAX_SHEET_CELLS"):
        load_csv(path, LoadLimits(max_sheet_cells=300))
