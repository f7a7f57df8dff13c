"""The reranking stage's providers: a cross-encoder behind an HTTP `/rerank`, scoring each candidate chunk
against the question (RERANK_PROVIDER; docs/configuration.md).

Two wire forms:
- `cohere`: `POST {base}/rerank {"model", "query", "documents", "top_n"}` -> `{"results": [{"index",
  "relevance_score"}]}`, as Cohere, Jina, vLLM, Infinity, Xinference and Zhipu (`/api/paas/v4/rerank`, model
  `rerank`) serve it;
- `tei`: Text Embeddings Inference's own `POST {base}/rerank {"query", "texts"}` -> `[{"index", "score"}]`.
A reranker answers within RERANK_TIMEOUT_S or not at all: the caller keeps the fused order then (workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from shared.settings import Settings

RerankApi = Literal["cohere", "tei"]


@dataclass
class HttpReranker:
    """Scores texts against a query through one `/rerank` request; one pooled client per process."""

    client: httpx.Client
    model: str
    api: RerankApi
    name: str

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in the order of `texts` (higher is more relevant)."""
        if self.api == "tei":
            body: dict[str, Any] = {"query": query, "texts": list(texts), "truncate": True}
        else:
            body = {"model": self.model, "query": query, "documents": list(texts), "top_n": len(texts)}
        response = self.client.post("rerank", json=body)
        response.raise_for_status()
        payload = response.json()
        items = payload if self.api == "tei" else payload["results"]
        scores: list[float | None] = [None] * len(texts)
        for item in items:
            scores[int(item["index"])] = float(item["score" if self.api == "tei" else "relevance_score"])
        if any(score is None for score in scores):
            raise ValueError(f"the reranker scored {sum(s is not None for s in scores)} of {len(texts)} texts")
        return [float(score) for score in scores if score is not None]


def build_reranker(settings: Settings) -> HttpReranker | None:
    """The configured reranker, or None (RERANK_PROVIDER=none, the offline default)."""
    if settings.RERANK_PROVIDER == "none":
        return None
    api: RerankApi = "tei" if settings.RERANK_PROVIDER == "tei" else "cohere"
    if settings.RERANK_PROVIDER == "zhipu":
        base, key = settings.llm_base_url, settings.ZHIPU_API_KEY or ""
    else:
        base, key = settings.RERANK_BASE_URL or "", settings.rerank_api_key
    model = settings.RERANK_MODEL
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    client = httpx.Client(base_url=base.rstrip("/") + "/", headers=headers, timeout=settings.RERANK_TIMEOUT_S)
    return HttpReranker(client=client, model=model, api=api, name=f"{settings.RERANK_PROVIDER}/{model}")
