import pytest

from shared.settings import Settings


def test_offline_default_without_a_key() -> None:
    s = Settings(ZHIPU_API_KEY=None, _env_file=None)  # type: ignore[call-arg]
    assert (s.LLM_PROVIDER, s.EMBED_PROVIDER) == ("extractive", "local")


def test_zhipu_default_with_a_key() -> None:
    s = Settings(ZHIPU_API_KEY="k.s", _env_file=None)  # type: ignore[call-arg]
    assert (s.LLM_PROVIDER, s.EMBED_PROVIDER) == ("zhipu", "zhipu")
    assert (s.CHAT_MODEL, s.EMBED_MODEL) == ("glm-4-flash", "embedding-2")


def test_asking_for_zhipu_without_a_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ZHIPU_API_KEY is not set"):
        Settings(ZHIPU_API_KEY=None, LLM_PROVIDER="zhipu", _env_file=None)  # type: ignore[call-arg]
