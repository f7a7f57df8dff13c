"""When a retrieved chunk counts as relevant to an evaluation case (docs/api.md, "Evaluation jobs").

A chunk is relevant when, for one of the case's `relevant` entries:
1. the entry has a `chunk_id` equal to the chunk's; or else
2. the entry's `text` is not empty and, both normalised (NFKC as the indexed text is, every whitespace run
   removed), the chunk's text contains the entry's text or the entry's text contains the chunk's; or else
3. the entry's `text` is empty (only a document is given) and the chunk's document is the entry's `document`,
   or ends with "/" + it (an entry may name `a.md` for a chunk of `kb/a.md`).

Whitespace is removed, not collapsed: a splitter's line breaks fall between Chinese characters, where the text
has no space at all.
"""

from __future__ import annotations

import re

from shared.eval_set import RelevantChunk
from shared.ingest.text_normalize import normalize_text

_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The form texts are compared in: NFKC (as indexed), no whitespace."""
    return _WHITESPACE.sub("", normalize_text(text))


class RelevanceRule:
    """The relevant entries of one case, normalised once, to test retrieved chunks against."""

    def __init__(self, relevant: list[RelevantChunk]) -> None:
        self.chunk_ids = {r.chunk_id for r in relevant if r.chunk_id}
        self.texts = [t for t in (normalise(r.text) for r in relevant) if t]
        self.documents = [r.document for r in relevant if not normalise(r.text) and r.document]

    def is_relevant(self, chunk_id: str, text: str, document: str) -> bool:
        if chunk_id in self.chunk_ids:
            return True
        chunk = normalise(text)
        if chunk and any(t in chunk or chunk in t for t in self.texts):
            return True
        return any(document == d or document.endswith("/" + d) for d in self.documents)
