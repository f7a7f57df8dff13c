"""Reading an uploaded evaluation set: every line checked, a refusal naming the line (docs/api.md, "Evaluation jobs").

Stricter than `read_eval_set`, which reads sets a person wrote or exported: a case must name at least one relevant
chunk, and each relevant chunk a text, a chunk id or a document, or nothing could ever count as found.
"""

from __future__ import annotations

from pydantic import ValidationError

from shared.eval_set import EvalCase

# A refusal names at most this many bad lines.
MAX_LINES_NAMED = 5


class EvalSetError(ValueError):
    """The set cannot be evaluated; the message names the bad lines."""


def parse_eval_set(body: bytes, max_cases: int) -> tuple[list[EvalCase], list[int]]:
    """The cases of a JSON Lines body and the 1-based line each came from; blank lines are skipped."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvalSetError(f"the evaluation set is not UTF-8 (byte {exc.start})") from exc
    cases: list[EvalCase] = []
    lines: list[int] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = EvalCase.model_validate_json(line)
        except ValidationError as exc:
            problems.append(f"line {number}: {_describe(exc)}")
        else:
            problem = _unusable(case)
            if problem:
                problems.append(f"line {number}: {problem}")
            cases.append(case)
            lines.append(number)
        if len(problems) >= MAX_LINES_NAMED:
            break
        if len(cases) > max_cases:
            raise EvalSetError(f"the evaluation set has more than {max_cases} cases (EVAL_MAX_CASES)")
    if problems:
        raise EvalSetError("; ".join(problems))
    if not cases:
        raise EvalSetError("the evaluation set has no cases: one JSON object per line, {question, relevant: [...]}")
    return cases, lines


def _unusable(case: EvalCase) -> str | None:
    if not case.question.strip():
        return "question is empty"
    if not case.relevant:
        return "relevant is empty: name at least one relevant chunk"
    for i, chunk in enumerate(case.relevant):
        if not (chunk.text.strip() or chunk.chunk_id or chunk.document.strip()):
            return f"relevant.{i}: give a text, a chunk_id or a document"
    return None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return f"not JSON ({first['msg']})"
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"
