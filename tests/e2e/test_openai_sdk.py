"""The official `openai` SDK as a client of /v1/chat/completions and /v1/models."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack
from tests.conftest import client_for, copy_sample_docs
from tests.support.jobs import index_and_wait

pytestmark = pytest.mark.e2e

TOKENS = ["投机", "解码", "用", "小", "模型", "起草", "，", "大", "模型", "验证", "。"]


@pytest.fixture(scope="module")
def sdk(zhipu_stack: Stack) -> Iterator[openai.OpenAI]:
    copy_sample_docs(zhipu_stack, "kb")
    with client_for(zhipu_stack) as client:
        job = index_and_wait(client, "oai", ["kb"])
        assert job["state"] == "succeeded", job
    with openai.OpenAI(base_url=f"{zhipu_stack.base_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_the_sdk_streams_an_answer_with_sources(sdk: openai.OpenAI, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS)
    stream = sdk.chat.completions.create(
        model="oai", messages=[{"role": "user", "content": "什么是投机解码？"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(TOKENS)
    assert chunks[-1].choices[0].finish_reason == "stop"
    sources = (chunks[0].model_extra or {})["sources"]
    assert sources and sources[0]["text"]


def test_the_sdk_gets_a_whole_completion(sdk: openai.OpenAI, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS)
    completion = sdk.chat.completions.create(model="oai", messages=[{"role": "user", "content": "投机解码？"}])
    assert completion.choices[0].message.content == "".join(TOKENS)
    assert (completion.model_extra or {})["sources"]


def test_earlier_turns_are_condensed_into_the_question(sdk: openai.OpenAI, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(tokens=TOKENS)
    sdk.chat.completions.create(
        model="oai",
        messages=[
            {"role": "system", "content": "你是助手"},
            {"role": "user", "content": "什么是 KV 缓存？"},
            {"role": "assistant", "content": "KV 缓存保存历史词元的键和值。"},
            {"role": "user", "content": "它的显存开销怎么算？"},
        ],
    )
    prompts = [r["body"]["messages"][-1]["content"] for r in zhipu.requests("/chat/completions")]
    condense, answer = prompts[-2], prompts[-1]
    assert "什么是 KV 缓存？" in condense and "它的显存开销怎么算？" in condense  # the history went to the LLM
    assert "".join(TOKENS) in answer  # ...and its standalone question (the fake's reply) was answered


def test_models_lists_collections(sdk: openai.OpenAI) -> None:
    assert "oai" in [m.id for m in sdk.models.list()]


def test_an_unknown_collection_is_a_clear_sdk_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "q"}])


def test_an_upstream_failure_is_raised_by_the_sdk_stream(sdk: openai.OpenAI, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(chat_fail_status=500)
    stream = sdk.chat.completions.create(model="oai", messages=[{"role": "user", "content": "q"}], stream=True)
    with pytest.raises(openai.APIError, match="HTTP 500"):
        list(stream)
