"""Spreadsheets (XLSX) and delimited text (CSV, TSV): one section per sheet, each data row told with its header.

Deliberate choices:
- The header is a sheet's first non-empty row; each later non-empty row becomes `编号: db-07 | 内存: 512GB`
  (empty cells left out, a column without a header named by its letter), so a row found alone says what its
  values mean. A sheet holding only its header is still a section, its text the header line.
- Only visible sheets are read: a hidden sheet is what the author took out of the reader's view (lookup lists,
  superseded figures), and answers drawn from it would cite what nobody sees when opening the file.
- Values read as Excel shows them: the result a formula had when the file was last saved (a tool that does not
  calculate saves none, and such cells read empty), at most 15 significant digits, dates in ISO form,
  TRUE/FALSE, percentages for percent formats, whitespace collapsed so that a row stays one line.
- Cells are counted as they are read, all sheets of a file together, and reading stops as soon as the count
  passes MAX_SHEET_CELLS: a huge sheet fails before it fills the worker's memory.
- CSV is `;`-separated only when its first line holds semicolons and no comma (Excel's export where the
  decimal mark is a comma), else `,`. TSV is read in Excel's dialect: quotes around fields holding tabs or
  line breaks. Both are decoded by the project's one rule (shared/ingest/text_decoding.py).
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from lxml.etree import XMLSyntaxError

from shared.ingest.text_decoding import decode_bytes
from workers.loaders.limits import LoadLimits
from workers.loaders.sections import Row, Section, UnreadableDocument

if TYPE_CHECKING:
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

# What openpyxl raises on a file that is not a well-formed workbook (defusedxml's refusals are ValueErrors).
_BROKEN_WORKBOOK = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    OSError,
    ParseError,
    XMLSyntaxError,
)
_SIGNIFICANT_DIGITS = 15  # what Excel displays of a double


class CellBudget:
    """Cells read so far from one file, all sheets together; reading fails as soon as they pass the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.read = 0

    def spend(self, cells: int) -> None:
        self.read += cells
        if self.read > self.limit:
            raise UnreadableDocument(
                f"the file holds more than {self.limit:,} cells (the MAX_SHEET_CELLS limit): "
                "split it into smaller files, or raise MAX_SHEET_CELLS"
            )


def load_xlsx(path: Path, limits: LoadLimits) -> list[Section]:
    # Imported here: openpyxl takes some 0.4 s to import, and CSV and slides (read with this module) need none of it.
    import openpyxl

    budget = CellBudget(limits.max_sheet_cells)
    try:
        with path.open("rb") as fh:  # a file object, because openpyxl refuses a path by its suffix
            workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True)
            try:
                sheets = [s for s in workbook.worksheets if s.sheet_state == "visible"]
                sections = [sheet_section(_cells(sheet, budget), f"sheet {sheet.title}") for sheet in sheets]
            finally:
                workbook.close()
    except UnreadableDocument:  # the cell limit's own message, not a broken file (it is a ValueError too)
        raise
    except _BROKEN_WORKBOOK as exc:
        raise UnreadableDocument(
            f"not a valid Excel .xlsx file ({failure_reason(exc)}): open it in Excel and save it again as .xlsx"
        ) from exc
    return [s for s in sections if s is not None]


def failure_reason(exc: BaseException) -> str:
    """Why a reader gave up on a file, in a line: the root of the chain, as readers re-raise in their own words."""
    while exc.__cause__ or exc.__context__:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if isinstance(exc, DefusedXmlException):
        return "its XML declares entities, which are refused"
    if isinstance(exc, zipfile.BadZipFile):
        return "it is not a zip package"
    return (str(exc) or type(exc).__name__).splitlines()[0]


def load_csv(path: Path, limits: LoadLimits) -> list[Section]:
    text = decode_bytes(path.read_bytes())
    head = text[:65536].lstrip("\r\n").partition("\n")[0]
    delimiter = ";" if ";" in head and "," not in head else ","
    return _delimited(text, csv.excel, delimiter, "CSV", limits)


def load_tsv(path: Path, limits: LoadLimits) -> list[Section]:
    return _delimited(decode_bytes(path.read_bytes()), csv.excel_tab, "\t", "TSV", limits)


def _delimited(text: str, dialect: type[csv.Dialect], delimiter: str, kind: str, limits: LoadLimits) -> list[Section]:
    """The records of a delimited text as one sheet, numbered as a spreadsheet numbers its rows."""
    budget = CellBudget(limits.max_sheet_cells)
    reader = csv.reader(io.StringIO(text, newline=""), dialect, delimiter=delimiter)

    def records() -> Iterator[tuple[int, list[str]]]:
        for number, record in enumerate(reader, 1):
            budget.spend(len(record))
            yield number, [_one_line(v) for v in record]

    try:
        section = sheet_section(records(), "")
    except csv.Error as exc:  # a field past the csv module's size limit: mostly a quote never closed
        raise UnreadableDocument(f"not a valid {kind} file (line {reader.line_num}: {exc})") from exc
    return [section] if section is not None else []


def _cells(sheet: ReadOnlyWorksheet, budget: CellBudget) -> Iterator[tuple[int, list[str]]]:
    """(row number, cell texts) of a sheet, streamed from its XML; empty rows come as empty lists."""
    # A sheet's declared size can be wrong, or huge: rows are read as the XML holds them, not padded to it.
    sheet.reset_dimensions()
    for number, row in enumerate(sheet.iter_rows(min_row=1, min_col=1), 1):
        budget.spend(len(row))
        yield number, [cell_text(cell.value, cell.number_format or "") for cell in row]


def sheet_section(rows: Iterable[tuple[int, Sequence[str]]], location: str) -> Section | None:
    """A sheet's section: its header line as text, each later non-empty row rendered with it; None if empty."""
    header: Sequence[str] | None = None
    data: list[Row] = []
    for number, values in rows:
        if not any(values):
            continue
        if header is None:
            header = values
            continue
        names = [header[i] if i < len(header) and header[i] else column_letter(i + 1) for i in range(len(values))]
        data.append(Row(number, labelled_row(names, values)))
    if header is None:
        return None
    return Section(" | ".join(v for v in header if v), location, tuple(data))


def labelled_row(names: Sequence[str], values: Sequence[str]) -> str:
    """`name: value | …` over the non-empty values; a value under an empty name stands alone."""
    return " | ".join(
        f"{name}: {value}" if name else value for name, value in zip(names, values, strict=False) if value
    )


def column_letter(number: int) -> str:
    """A column's name as a spreadsheet shows it: 1 is A, 27 is AA; it names a column without a header."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def cell_text(value: object, number_format: str = "General") -> str:
    """A cell's value as a person reads it in Excel's default display."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.time() == time():
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, int | float):
        if "%" in number_format:
            return f"{value * 100:.{_SIGNIFICANT_DIGITS}g}%"
        return str(value) if isinstance(value, int) else f"{value:.{_SIGNIFICANT_DIGITS}g}"
    return _one_line(str(value))


def _one_line(text: str) -> str:
    return " ".join(text.split())
