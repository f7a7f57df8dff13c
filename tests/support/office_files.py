"""Slides, workbooks and delimited text generated as Office writes them (python-pptx, openpyxl, Excel's CSV/TSV)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

import openpyxl
from pptx import Presentation
from pptx.presentation import Presentation as Deck
from pptx.util import Inches

# python-pptx's default template: 0 title slide, 5 title only, 6 blank.
_TITLE_SLIDE, _TITLE_ONLY, _BLANK = 0, 5, 6
_ROOMS = ("上海", "广州", "深圳", "北京")
_MEMORY = ("128GB", "256GB", "512GB")


def pptx_deck() -> bytes:
    """Five slides: a title slide, a table slide with notes, an untitled slide of boxes, an empty one, a long title."""
    deck = Presentation()
    cover = deck.slides.add_slide(deck.slide_layouts[_TITLE_SLIDE])
    cover.shapes.title.text = "2026 年度规划"
    cover.placeholders[1].text = "基础设施组"

    goals = deck.slides.add_slide(deck.slide_layouts[_TITLE_ONLY])
    goals.shapes.title.text = "各季度目标"
    goals.shapes.add_textbox(Inches(1), Inches(6), Inches(6), Inches(0.5)).text = "负责人：王工"
    table = goals.shapes.add_table(3, 2, Inches(1), Inches(2.5), Inches(6), Inches(2)).table
    for r, row in enumerate((("季度", "目标"), ("Q1", "采购交换机"), ("Q2", "扩容"))):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    goals.shapes.add_textbox(Inches(1), Inches(1.6), Inches(6), Inches(0.5)).text = "目标按季度拆分"
    goals.notes_slide.notes_text_frame.text = "强调扩容窗口在七月第二周。\n预算另议"

    boxes = deck.slides.add_slide(deck.slide_layouts[_BLANK])
    boxes.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1)).text = "最下面的一段"
    group = boxes.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(5), Inches(3), Inches(3), Inches(1)).text = "组内右边"
    group.shapes.add_textbox(Inches(1), Inches(3), Inches(3), Inches(1)).text = "组内左边"
    box = boxes.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1)).text_frame
    box.text = "最上面的一段"
    box.paragraphs[0].add_line_break()
    box.paragraphs[0].add_run().text = "换行之后"

    deck.slides.add_slide(deck.slide_layouts[_BLANK])
    long_title = deck.slides.add_slide(deck.slide_layouts[_TITLE_ONLY])
    long_title.shapes.title.text = "一个非常长的标题" * 10
    return _saved(deck)


def pptx_table(rows: Sequence[Sequence[str]], header_row: bool = True) -> bytes:
    """One untitled slide holding one table, its first row formatted as a header or not."""
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[_BLANK])
    shape = slide.shapes.add_table(len(rows), len(rows[0]), Inches(1), Inches(1), Inches(8), Inches(3))
    shape.table.first_row = header_row
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    return _saved(deck)


def server_inventory(rows: int = 60) -> list[list[str]]:
    """服务器清单: 编号 / 内存 / 机房, header in row 1; db-07 has 512GB in 北京."""
    return [["编号", "内存", "机房"]] + [[f"db-{i:02d}", _MEMORY[(i + 1) % 3], _ROOMS[i % 4]] for i in range(1, rows)]


def _cache_result(cell: re.Pattern[str], value: str, xml: str) -> str:
    return cell.sub(rf"\g<1>{value}\g<2>", xml)


def xlsx_workbook(
    sheets: dict[str, Sequence[Sequence[object]]],
    hidden: Sequence[str] = (),
    formats: dict[tuple[str, str], str] | None = None,
    cached: dict[tuple[str, str], str] | None = None,
) -> bytes:
    """A workbook of `sheets` (rows from A1), `hidden` sheets hidden, `formats` by (sheet, cell).

    `cached` gives formula cells the result Excel saves beside the formula; openpyxl itself writes none.
    """
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
        if title in hidden:
            sheet.sheet_state = "hidden"
    for (title, ref), number_format in (formats or {}).items():
        workbook[title][ref].number_format = number_format
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()
    for (title, ref), value in (cached or {}).items():
        member = f"xl/worksheets/sheet{list(sheets).index(title) + 1}.xml"
        cell = re.compile(rf'(<c r="{ref}"[^>]*><f>[^<]*</f><v>)(</v>)')
        data = rewrite_member(data, member, partial(_cache_result, cell, value))
    return data


def purchases_sheet() -> list[list[object]]:
    """采购记录, header in row 2 under an empty row: a date, a formula (E3), a boolean, a percent (G3), 0.1 + 0.2."""
    return [
        [],
        ["日期", "项目", "数量", "单价", "金额", "已付", "折扣", "误差"],
        [datetime(2026, 3, 1), "  交换机\n 核心  ", 3, 1250.5, "=C3*D3", True, 0.125, 0.1 + 0.2],
        [datetime(2026, 3, 2, 14, 30), "网线", 40, 12.0, "=C4*D4", False, None, None],
    ]


def rewrite_member(package: bytes, name: str, edit: Callable[[str], str]) -> bytes:
    """The zip `package` with the XML member `name` passed through `edit`, the rest copied as it was."""
    source = zipfile.ZipFile(io.BytesIO(package))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, edit(data.decode()).encode() if info.filename == name else data)
    return buffer.getvalue()


def with_external_entity(package: bytes, member: str, secret_path: str) -> bytes:
    """`member` declaring an external entity on `secret_path` and using it in place of its first text: XXE."""
    doctype = f'<!DOCTYPE root [<!ENTITY xxe SYSTEM "file://{secret_path}">]>'

    def edit(xml: str) -> str:
        prolog = re.match(r"<\?xml[^>]*\?>\s*", xml)  # the DOCTYPE must follow it; openpyxl writes none
        end = prolog.end() if prolog else 0
        xml = xml[:end] + doctype + xml[end:]
        return re.sub(r"(<(?:a:)?t(?: [^>]*)?>)[^<]*(</(?:a:)?t>)", r"\g<1>&xxe;\g<2>", xml, count=1)

    return rewrite_member(package, member, edit)


def delimited_text(rows: Sequence[Sequence[str]], encoding: str = "gbk", delimiter: str = ",") -> bytes:
    """Rows as Excel saves them as CSV or tab-separated text: CRLF line ends, quotes only where needed."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    if encoding == "utf-16":  # Excel's "Unicode text": UTF-16 little-endian behind a byte-order mark
        return b"\xff\xfe" + buffer.getvalue().encode("utf-16-le")
    return buffer.getvalue().encode(encoding)


def _saved(deck: Deck) -> bytes:
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()
