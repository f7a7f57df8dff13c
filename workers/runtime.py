"""Per-process resources of a worker: Redis client, embedding model, answerer, open collection stores.

Created lazily on first use inside the worker process (and warmed by `worker_process_init`), never at
import time: the local embedding engine is not fork-safe.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from llama_index.core.base.embeddings.base import BaseEmbedding
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff

from shared.ops.gc_tuning import tune_gc
from shared.providers.answerers import Answerer
from shared.providers.factory import build_answerer, build_embedding
from shared.providers.identity import embedding_model_name
from shared.providers.rerankers import HttpReranker, build_reranker
from shared.settings import Settings, get_settings
from shared.store import CollectionStore, Store, open_store
from shared.streams.append_batcher import AppendBatcher
from workers.event_loop import EventLoopThread
from workers.loop_answers import LoopAnswers


@dataclass
class Runtime:
    settings: Settings
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _built: dict[str, Any] = field(default_factory=dict)

    def _once(self, name: str, factory: Callable[[], Any]) -> Any:
        """Build a resource once per process, even when a threaded pool asks for it concurrently."""
        with self._lock:
            if name not in self._built:
                self._built[name] = factory()
            return self._built[name]

    @property
    def redis(self) -> redis.Redis:
        def connect() -> redis.Redis:
            # Blocking pool sized by settings: a threaded pool's tasks and their heartbeats share it.
            pool = redis.BlockingConnectionPool.from_url(
                self.settings.REDIS_URL,
                decode_responses=True,
                health_check_interval=30,
                max_connections=self.settings.REDIS_MAX_CONNECTIONS,
                timeout=self.settings.REDIS_POOL_TIMEOUT_S,
            )
            return redis.Redis(connection_pool=pool)

        return self._once("redis", connect)

    @property
    def loop(self) -> EventLoopThread:
        """The process's event loop for asynchronous generation (workers/event_loop.py)."""
        return self._once("loop", EventLoopThread)

    @property
    def answers(self) -> LoopAnswers:
        """The answers this process generates on its event loop (workers/loop_answers.py)."""
        s, loop, client, aclient = self.settings, self.loop, self.redis, self.aredis  # outside _once's lock
        capacity = min(s.LOOP_MAX_ANSWERS, self.answerer.max_answers or s.LOOP_MAX_ANSWERS)
        return self._once(
            "answers",
            lambda: LoopAnswers(loop, client, aclient, capacity, s.HEARTBEAT_INTERVAL_S, s.HEARTBEAT_TTL_S),
        )

    def drain_answers(self, timeout_s: float) -> bool:
        """Wait for the event loop's answers, if this process started any; False if some were still running."""
        answers: LoopAnswers | None = self._built.get("answers")
        return answers.drain(timeout_s) if answers else True

    @property
    def aredis(self) -> aioredis.Redis:
        """A Redis client for the event loop only (its connections belong to that loop)."""

        def connect() -> aioredis.Redis:
            # A pool built here gives its connections no retry (redis-py's asyncio Connection default); with the
            # client's own default retries, a connection Redis closed (a restart) is replaced instead of failing
            # the answer that next appends on it.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.settings.REDIS_URL,
                decode_responses=True,
                health_check_interval=30,
                max_connections=self.settings.REDIS_MAX_CONNECTIONS,
                timeout=self.settings.REDIS_POOL_TIMEOUT_S,
                retry=AsyncRetry(ExponentialWithJitterBackoff(base=1, cap=10), retries=3),
            )
            return aioredis.Redis(connection_pool=pool)

        return self._once("aredis", connect)

    @property
    def append_batcher(self) -> AppendBatcher:
        """The event loop's answers' appends, sent to Redis together (shared/streams/append_batcher.py)."""
        client = self.aredis  # outside _once's lock
        return self._once("append_batcher", lambda: AppendBatcher(client))

    @property
    def embed_model(self) -> BaseEmbedding:
        return self._once("embed", lambda: build_embedding(self.settings))

    @property
    def embed_model_name(self) -> str:
        return embedding_model_name(self.settings)

    @property
    def answerer(self) -> Answerer:
        embed = self.embed_model
        return self._once("answerer", lambda: build_answerer(self.settings, embed))

    @property
    def reranker(self) -> HttpReranker | None:
        return self._once("reranker", lambda: build_reranker(self.settings))

    @property
    def stores(self) -> Store:
        """The deployment's store (embedded or PostgreSQL), opened once per process, after any fork."""
        return self._once("stores", lambda: open_store(self.settings))

    def store(self, collection: str) -> CollectionStore:
        """One object per collection per process, so its caches are shared by every thread."""
        return self.stores.collection(collection)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(settings=get_settings())
        return _runtime


def warm_up(indexes: bool = True) -> None:
    """Load the models, readers and tokenizers now, so the first task does not pay for them (~0.5 s); the readers
    and splitters only for a worker that `indexes`."""
    from shared.store.keywords import tokenize

    rt = get_runtime()
    _ = rt.embed_model, rt.answerer, rt.stores
    tokenize("预热分词词典")  # jieba's dictionary: about a second, which the first keyword search would pay
    if indexes:
        warm_up_splitting(rt.settings.CHUNK_SIZE)
    tune_gc(rt.settings.GC_THRESHOLD)  # last: the models and readers built above are frozen


def warm_up_splitting(chunk_size: int) -> None:
    """Load what reading and splitting a document loads on first use: the Markdown reader, the token counter and
    NLTK's sentence tokenizer (only reached by a text longer than a chunk: about 0.3 s of a batch's CPU otherwise,
    in every new process)."""
    from llama_index.core.utils import globals_helper

    from shared.ingest.items import path_item
    from workers.chunk_splitter import ChunkSplitter
    from workers.indexing import load_and_split

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "warm-up.md"
        sample.write_text("# 预热\n\n加载读取器与分词器。", encoding="utf-8")
        load_and_split(path_item(sample), ChunkSplitter(chunk_size=chunk_size, chunk_overlap=0))
    _ = globals_helper.punkt_tokenizer
