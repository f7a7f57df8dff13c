"""The one settings class: read from the environment and `.env` (as the wow-rag seed's dotenv did)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LLMProvider = Literal["zhipu", "openai_compatible", "extractive"]
ZHIPU_OPENAI_COMPATIBLE_URL = "https://open.bigmodel.cn/api/paas/v4"
EmbedProvider = Literal["zhipu", "local", "openai_compatible"]
RerankProvider = Literal["none", "openai_compatible", "tei", "zhipu"]


class Settings(BaseSettings):
    """Everything configurable about ragqueue."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    # Connections per Redis pool and process. redis-py 8 caps a pool at 100 even when told None, and the API
    # holds one pub/sub connection per open stream; a full pool makes callers wait up to the timeout.
    REDIS_MAX_CONNECTIONS: int = 10_000
    REDIS_POOL_TIMEOUT_S: float = 10.0
    DATA_DIR: Path = Path("./data")
    # Unset: the embedded SQLite store under DATA_DIR (one machine). postgresql://...: PostgreSQL with pgvector,
    # and API and workers share nothing but Redis and that database (uploads included).
    VECTOR_STORE_URL: str | None = None
    # Connections per process in the PostgreSQL store's pool.
    STORE_POOL_SIZE: int = Field(default=10, ge=1)
    # Candidates the HNSW index visits per vector search (pgvector's hnsw.ef_search): recall against speed.
    HNSW_EF_SEARCH: int = Field(default=100, ge=10, le=1000)
    # The most memory (maintenance_work_mem) a collection's search index build asks PostgreSQL for; a build gets what
    # its HNSW graph takes up to this (shared/store/postgres_indexes.py). A parallel build takes it as shared memory:
    # a PostgreSQL in a container needs a /dev/shm (--shm-size) larger than this.
    PG_INDEX_BUILD_MEMORY_MB: int = Field(default=1024, ge=16)
    # Postings (chunk entries) a keyword search may read: question terms are searched rarest first until their
    # chunk counts reach this, so 是/的/什么 in a large collection cost nothing (shared/store/keywords.py).
    # Unset: the engine's own (embedded 20,000; PostgreSQL 5,000, whose cost per candidate row is higher).
    KEYWORD_POSTINGS_BUDGET: int | None = Field(default=None, ge=100)
    # Extra roots an index job may read from; DATA_DIR/import and the sample knowledge base are always allowed.
    IMPORT_ROOTS: list[Path] = Field(default_factory=list)
    SAMPLE_DOCS_DIR: Path = Path(__file__).resolve().parent.parent / "docs" / "kb"

    ZHIPU_API_KEY: str | None = None
    # The zhipuai SDK reads ZHIPUAI_BASE_URL itself; we pass it explicitly so settings stay the one source.
    ZHIPUAI_BASE_URL: str | None = None
    LLM_PROVIDER: LLMProvider | None = None
    EMBED_PROVIDER: EmbedProvider | None = None
    CHAT_MODEL: str = "glm-4-flash"
    EMBED_MODEL: str = "embedding-2"
    # EMBED_PROVIDER=openai_compatible: a self-hosted or hosted OpenAI-compatible /embeddings (TEI, vLLM, Ollama,
    # Infinity, OpenAI) at EMBED_BASE_URL with EMBED_MODEL, its key if it needs one, the texts per request, and
    # the instruction prefixes some models were trained with (e5: "query: " / "passage: ").
    EMBED_BASE_URL: str | None = None
    EMBED_API_KEY: SecretStr | None = None
    EMBED_TEXTS_PER_REQUEST: int = Field(default=32, ge=1, le=2048)
    EMBED_QUERY_PREFIX: str = ""
    EMBED_PASSAGE_PREFIX: str = ""
    # The reranking stage (shared/providers/rerankers.py): `none` (default); `openai_compatible`, the Cohere/Jina
    # `POST /rerank` of vLLM, Jina, Infinity, Xinference at RERANK_BASE_URL; `tei`, Text Embeddings Inference's
    # own; `zhipu`, Zhipu's /rerank with ZHIPU_API_KEY. Retrieval fuses RERANK_CANDIDATES chunks, the reranker
    # orders them and the best top_k are kept; one that fails or takes longer than RERANK_TIMEOUT_S leaves the
    # fused order (the answer says so), never a failed answer.
    RERANK_PROVIDER: RerankProvider = "none"
    RERANK_BASE_URL: str | None = None
    RERANK_API_KEY: SecretStr | None = None
    RERANK_MODEL: str = "rerank"
    RERANK_CANDIDATES: int = Field(default=20, ge=1, le=200)
    RERANK_TIMEOUT_S: float = Field(default=5.0, gt=0)
    UPSTREAM_TIMEOUT_S: float = 60.0
    UPSTREAM_MAX_RETRIES: int = 2
    # LLM_PROVIDER=openai_compatible: any OpenAI-compatible server (vLLM, Ollama, DeepSeek; Zhipu's /api/paas/v4
    # by default) and its key; unset, they fall back to ZHIPUAI_BASE_URL and ZHIPU_API_KEY.
    LLM_BASE_URL: str | None = None
    LLM_API_KEY: SecretStr | None = None
    # Answers one query worker process generates at once on its event loop (no thread each); a task waits for a
    # free slot beyond this. The extractive answerer, whose work is CPU, takes fewer (its `max_answers`).
    LOOP_MAX_ANSWERS: int = Field(default=1000, ge=1)
    # Questions an API process received while it was sending the previous query task go out together, as one
    # task message of at most this many (api/query_dispatch.py); 1 sends one message per question.
    QUERY_BATCH_MAX: int = Field(default=64, ge=1, le=1000)
    # API and worker processes freeze what start-up built and collect young objects every this many
    # allocations (shared/ops/gc_tuning.py); 0 keeps CPython's defaults (700).
    GC_THRESHOLD: int = Field(default=20_000, ge=0)

    DEFAULT_COLLECTION: str = "default"
    CHUNK_SIZE: int = 512
    CHUNK_OVERLAP: int = 64
    TOP_K: int = 4
    MAX_QUESTION_CHARS: int = 2000
    # Earlier turns a chat request (POST /v1/chat/completions) may carry, and their characters together: more gets
    # 422 `history_too_long` instead of reaching the worker (without a bound, megabytes of history
    # would be accepted and sent on to the LLM).
    MAX_HISTORY_TURNS: int = Field(default=20, ge=0)
    MAX_HISTORY_CHARS: int = Field(default=20_000, ge=0)
    # Texts handed to the embedding model per call (the Zhipu embedding splits them into requests).
    EMBED_BATCH_SIZE: int = 64
    # Texts per Zhipu /embeddings request: at most 64 (embedding-3); embedding-2 allows 8K tokens per list,
    # i.e. 16 chunks at CHUNK_SIZE 512.
    ZHIPU_EMBED_BATCH_SIZE: int = Field(default=16, ge=1, le=64)
    # Zhipu /embeddings requests in flight at once, per worker process.
    EMBED_CONCURRENCY: int = Field(default=4, ge=1)
    # An index job is split into batch tasks of this many files, shared by all index workers.
    INDEX_BATCH_FILES: int = 16

    # Limits on reading one document (workers/loaders/limits.py); past one, that document fails with a message
    # naming the limit and the rest of its job goes on.
    # Pages (PDF pages without a text layer, image frames) one document may send through OCR.
    OCR_MAX_PAGES: int = Field(default=200, ge=1)
    # Seconds OCR may spend on one page (or image) before its document fails.
    OCR_PAGE_TIMEOUT_S: float = Field(default=60.0, gt=0)
    # Recognised lines below this confidence (0-1) are dropped as noise.
    OCR_MIN_CONFIDENCE: float = Field(default=0.5, ge=0, le=1)
    # CPU threads one index worker process gives the OCR models (ONNX Runtime's intra-op threads).
    OCR_THREADS: int = Field(default=2, ge=1)
    # Pixels of one image or rendered page: a larger one (a decompression bomb) is refused before it is decoded.
    MAX_IMAGE_PIXELS: int = Field(default=50_000_000, ge=10_000)
    # Cells one spreadsheet or CSV may hold (all sheets together).
    MAX_SHEET_CELLS: int = Field(default=2_000_000, ge=100)
    # What a zip-based document (DOCX, PPTX, XLSX, EPUB) may unpack to, in all, and how many parts it may hold.
    MAX_ARCHIVE_BYTES: int = Field(default=500 * 1024 * 1024, ge=1024 * 1024)
    MAX_ARCHIVE_MEMBERS: int = Field(default=10_000, ge=10)

    MAX_UPLOAD_FILE_BYTES: int = 50 * 1024 * 1024
    MAX_UPLOAD_REQUEST_BYTES: int = 512 * 1024 * 1024
    MAX_UPLOAD_FILES: int = 2000
    # Body of any request but an upload, counted while it is read (api/body_limit.py): more gets 413 at once.
    MAX_JSON_BODY_BYTES: int = Field(default=1024 * 1024, ge=1024)
    # Cases an evaluation set may hold (POST /v1/collections/{c}/evaluations); its body is bounded by
    # MAX_JSON_BODY_BYTES like any request's.
    EVAL_MAX_CASES: int = Field(default=1000, ge=1)

    # API keys (docs/security.md): comma-separated; unset (and no API_KEYS_FILE) = every route open, development
    # only. API_KEYS_FILE adds keys with limits (TOML: [[key]] with key or sha256, optional name, collections).
    API_KEYS: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    API_KEYS_FILE: Path | None = None
    # Seconds between checks of API_KEYS_FILE's modification time; a change is read and checked like at start-up
    # and replaces the keys only if it passes (api/keyring_reload.py). 0: re-read on SIGHUP only.
    KEYS_FILE_POLL_S: float = Field(default=5.0, ge=0)
    # Per-key limits for keys that do not set their own in API_KEYS_FILE (and for API_KEYS); unset = no limit.
    # Enforced in Redis across every API process (api/key_limits.py); past one: 429 naming it.
    KEY_REQUESTS_PER_MINUTE: int | None = Field(default=None, ge=1)
    KEY_MAX_STREAMS: int | None = Field(default=None, ge=1)
    KEY_QUESTIONS_PER_DAY: int | None = Field(default=None, ge=1)
    KEY_TOKENS_PER_DAY: int | None = Field(default=None, ge=1)
    KEY_UPLOAD_BYTES_PER_DAY: int | None = Field(default=None, ge=1)
    # Signs the stream URLs POST /v1/queries returns (HMAC-SHA256); no default: required when keys are on.
    STREAM_TOKEN_SECRET: SecretStr | None = None
    STREAM_TOKEN_TTL_S: int = Field(default=3600, ge=10)
    # Origins allowed to call the API from a browser. Unset: every origin when keys are off, none when they are on.
    CORS_ORIGINS: list[str] | None = None
    # Seconds uvicorn keeps an idle keep-alive connection open. It must outlast every client's and proxy's
    # idle timeout (httpx 5 s, nginx upstream keepalive 60 s), or a request sent on a connection the server
    # is closing dies with "Server disconnected without sending a response" (docs/operations.md, "Keep-alive and
    # proxies"; uvicorn's default: 5).
    API_KEEPALIVE_S: int = Field(default=75, ge=1)
    # How long an Idempotency-Key remembers the job it created (POST /v1/queries, uploads, index jobs).
    IDEMPOTENCY_TTL_S: int = Field(default=24 * 3600, ge=60)
    # How long a request waits for a concurrent one with the same Idempotency-Key to answer before it gets 409
    # `idempotency_key_in_progress`.
    IDEMPOTENCY_WAIT_S: float = Field(default=30.0, gt=0, le=300)
    REPLAY_TTL_S: int = 3600
    # Answer text is published as one `token` event per window at most (the first piece at once): fewer events,
    # less CPU per answer in worker and API (docs/benchmarks.md). 0 publishes every piece as its own event.
    TOKEN_COALESCE_MS: float = Field(default=15.0, ge=0, le=1000)
    JOB_TTL_S: int = 7 * 24 * 3600
    # How long feedback on an answer is kept (renewed when it is given again). Longer than JOB_TTL_S: ratings are
    # collected into evaluation sets over months, and each keeps its own copy of the question and sources.
    FEEDBACK_TTL_S: int = Field(default=180 * 24 * 3600, ge=3600)
    PING_INTERVAL_S: float = 15.0
    # A query job no worker has picked up after this long ends with `error` `queue_timeout`.
    QUEUE_TIMEOUT_S: float = 120.0
    # A running job's worker refreshes its heartbeat every interval; a heartbeat older than the TTL means the
    # worker is gone, and the job's stream ends with `error` `worker_lost` (so within about TTL + interval + 1 s:
    # a missing heartbeat is looked for again one interval later, as a machine that paused expires it at once).
    HEARTBEAT_INTERVAL_S: float = 2.0
    HEARTBEAT_TTL_S: float = 10.0
    TASK_SOFT_TIME_LIMIT_S: int = 1800
    TASK_TIME_LIMIT_S: int = 1900

    # Admission control (api/admission.py): past this many query jobs queued or running (all API processes together),
    # new questions get 429 with Retry-After ADMISSION_RETRY_AFTER_S instead of waiting in the queue.
    MAX_QUEUED_QUERIES: int = Field(default=1000, ge=1)
    ADMISSION_RETRY_AFTER_S: int = Field(default=5, ge=1)
    # With no worker consuming the `query` queue, new questions get 503 naming it. Turn off when workers are
    # scaled from zero on queue depth (KEDA and the like): then a question must be allowed to wait for one.
    ADMISSION_REQUIRE_CONSUMER: bool = True
    # Which workers consume each queue comes from one Celery broadcast per process, cached this long.
    WORKER_PING_TIMEOUT_S: float = Field(default=1.0, gt=0)
    WORKER_PING_CACHE_S: float = Field(default=5.0, ge=0)

    # The reaper (Celery beat sends it to the `maintenance` queue this often; one run at a time via a Redis lock)
    # ends queries whose worker died and queries left queued past QUEUE_TIMEOUT_S, with or without a listener.
    REAPER_INTERVAL_S: float = Field(default=5.0, gt=0)
    # Uploads no document of any collection refers to are deleted once older than UPLOAD_GC_GRACE_S (so a file
    # whose index job has not run yet is kept), by the reaper at most every UPLOAD_GC_INTERVAL_S, so uploads
    # never indexed do not fill the disk.
    UPLOAD_GC_GRACE_S: float = Field(default=24 * 3600.0, ge=0)
    UPLOAD_GC_INTERVAL_S: float = Field(default=3600.0, gt=0)

    # A `/stream_chat` or streaming `/v1/chat/completions` answer whose client left is cancelled upstream when no
    # client is back on its stream within this many seconds (an EventSource reconnect resumes it), so the LLM
    # stops generating for nobody.
    STREAM_ABANDON_GRACE_S: float = Field(default=10.0, ge=0)

    # Log lines as JSON objects (with the job id) instead of text; secrets are redacted either way.
    LOG_JSON: bool = False

    # Flower's basic auth, `user:password` (comma-separated for several users). Named as Flower's own option
    # because Flower reads every FLOWER_* environment variable as an option and exits on one it does not know.
    # No default, which every deployment would share: `make up` generates one into .env on first run.
    FLOWER_BASIC_AUTH: SecretStr | None = None

    @field_validator("FLOWER_BASIC_AUTH", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`FLOWER_BASIC_AUTH=` (as in .env.example) means not set yet."""
        return None if value == "" else value

    @field_validator("API_KEYS", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`API_KEYS=key1,key2` (spaces around commas ignored; empty means none)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("STREAM_TOKEN_SECRET", "API_KEYS_FILE", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("FLOWER_BASIC_AUTH")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        """Every entry must be `user:password` with both parts set, or Flower would accept an empty password."""
        if value is not None:
            for entry in value.get_secret_value().split(","):
                user, _, password = entry.partition(":")
                if not user or not password:
                    raise ValueError("FLOWER_BASIC_AUTH must be user:password (comma-separated for several users)")
        return value

    @model_validator(mode="after")
    def _pick_providers(self) -> Settings:
        """Default to Zhipu when a key is set, else to the offline local embedding + extractive answerer."""
        if self.LLM_PROVIDER is None:
            self.LLM_PROVIDER = "zhipu" if self.ZHIPU_API_KEY else "extractive"
        if self.EMBED_PROVIDER is None:
            self.EMBED_PROVIDER = "zhipu" if self.ZHIPU_API_KEY else "local"
        if self.EMBED_PROVIDER == "openai_compatible" and not self.EMBED_BASE_URL:
            raise ValueError("EMBED_PROVIDER is 'openai_compatible' but EMBED_BASE_URL is not set")
        if self.RERANK_PROVIDER in ("openai_compatible", "tei") and not self.RERANK_BASE_URL:
            raise ValueError(f"RERANK_PROVIDER is '{self.RERANK_PROVIDER}' but RERANK_BASE_URL is not set")
        needs_key = "zhipu" in (self.LLM_PROVIDER, self.EMBED_PROVIDER, self.RERANK_PROVIDER)
        if needs_key and not self.ZHIPU_API_KEY:
            raise ValueError("LLM_PROVIDER, EMBED_PROVIDER or RERANK_PROVIDER is 'zhipu' but ZHIPU_API_KEY is not set")
        return self

    @property
    def keys_on(self) -> bool:
        """API keys are required on every protected route (docs/security.md)."""
        return bool(self.API_KEYS) or self.API_KEYS_FILE is not None

    @property
    def cors_origins(self) -> list[str]:
        """CORS_ORIGINS if set; else every origin while keys are off, and none once they are on."""
        if self.CORS_ORIGINS is not None:
            return self.CORS_ORIGINS
        return [] if self.keys_on else ["*"]

    @property
    def rerank_api_key(self) -> str:
        return self.RERANK_API_KEY.get_secret_value() if self.RERANK_API_KEY else ""

    @property
    def embed_base_url(self) -> str:
        return self.EMBED_BASE_URL or ""

    @property
    def embed_api_key(self) -> str:
        """EMBED_API_KEY, or a placeholder: self-hosted servers take none, and the openai client needs one."""
        return self.EMBED_API_KEY.get_secret_value() if self.EMBED_API_KEY else "none"

    @property
    def llm_base_url(self) -> str:
        return self.LLM_BASE_URL or self.ZHIPUAI_BASE_URL or ZHIPU_OPENAI_COMPATIBLE_URL

    @property
    def llm_api_key(self) -> str:
        """The openai_compatible server's key; servers that need none (Ollama, vLLM) get a placeholder."""
        if self.LLM_API_KEY is not None:
            return self.LLM_API_KEY.get_secret_value()
        return self.ZHIPU_API_KEY or "unused"

    @property
    def import_dir(self) -> Path:
        """Where relative paths in an index job are resolved from."""
        return (self.DATA_DIR / "import").resolve()

    @property
    def allowed_roots(self) -> list[Path]:
        """Directories an index job may read; anything outside is refused."""
        roots = [self.import_dir, self.SAMPLE_DOCS_DIR.resolve(), *(p.resolve() for p in self.IMPORT_ROOTS)]
        return roots

    @property
    def uploads_dir(self) -> Path:
        """Uploaded files, content-addressed: uploads/<sha256[:2]>/<sha256><suffix>."""
        return (self.DATA_DIR / "uploads").resolve()

    @property
    def collections_dir(self) -> Path:
        return (self.DATA_DIR / "collections").resolve()


@lru_cache
def get_settings() -> Settings:
    """Settings for this process, read once."""
    return Settings()
