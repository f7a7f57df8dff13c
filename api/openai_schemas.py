"""Request and response models of the OpenAI-compatible endpoints (the subset ragqueue serves)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.query_jobs import check_history_texts
from shared.store.retrieval_modes import DEFAULT_MODE, RetrievalMode


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request; `model` names the collection to answer from. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(examples=["default"], description="The collection to answer from")
    messages: list[ChatMessage] = Field(min_length=1, examples=[[{"role": "user", "content": "什么是 KV 缓存？"}]])
    stream: bool = False
    top_k: int | None = Field(default=None, ge=1, le=50, description="ragqueue extension: chunks to retrieve")
    mode: RetrievalMode = Field(default=DEFAULT_MODE, description="ragqueue extension: vector, bm25 or hybrid")


def check_history(request: ChatCompletionRequest, max_turns: int, max_chars: int) -> None:
    """The messages before the question, within MAX_HISTORY_TURNS and MAX_HISTORY_CHARS."""
    check_history_texts([message.text() for message in request.messages[:-1]], max_turns, max_chars)


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    sources: list[dict[str, Any]] = Field(description="ragqueue extension: the retrieved chunks")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragqueue"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
