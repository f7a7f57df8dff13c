"""Request and response models of the OpenAI-compatible endpoints (the subset ragqueue serves)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from shared.store.retrieval import DEFAULT_MODE, RetrievalMode


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
    """Bound the earlier turns (MAX_HISTORY_TURNS, MAX_HISTORY_CHARS): each costs worker and upstream work."""
    earlier = request.messages[:-1]
    if len(earlier) > max_turns:
        raise ApiError(
            422,
            "history_too_long",
            f"{len(earlier)} messages before the question; the limit is {max_turns} (MAX_HISTORY_TURNS)",
        )
    chars = 0
    for number, message in enumerate(earlier, start=1):
        size = len(message.text())
        chars += size
        if chars > max_chars:  # a single huge message is named, the total is the limit
            raise ApiError(
                422,
                "history_too_long",
                f"message {number} brings the earlier messages to {chars} characters ({size} in it); "
                f"the limit is {max_chars} together (MAX_HISTORY_CHARS)",
            )


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
