"""Every ``COE_*`` environment variable, in one place (pydantic-settings).

``settings()`` reads the environment afresh on each call, so a variable set by a test or a wrapper script
takes effect at once; an empty value counts as unset."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COE_", env_ignore_empty=True, extra="ignore")

    home: Path = Path.home() / ".cache" / "coe"  # models, index, traces, caches
    models_dir: Path | None = None  # default: HOME/models
    chroma_dir: Path | None = None  # default: HOME/chroma
    chroma_url: str | None = None  # a Chroma server instead of the local directory
    scienceqa_dir: Path | None = None
    eval_cache: Path | None = None  # default: HOME/eval-cache
    nltk_data: Path | None = None  # default: HOME/nltk_data
    offline: bool = False  # refuse hub ids at once (HF_HUB_OFFLINE does too)
    debug: bool = False  # full tracebacks instead of one-line errors
    # plugins by entry-point name (coe.plugins.registry); unset: the built-in one, and no image embedder
    text_embedder: str | None = None  # coe.text_embedders (minilm-static)
    vector_store: str | None = None  # coe.vector_stores (chroma)
    image_reader: str | None = None  # coe.image_readers (ocr-caption)
    image_embedder: str | None = None  # retrieval's image embedder plugin (e.g. open-clip)
    image_model: str | None = None
    image_weights: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_images: bool = True  # send images to the server
    openai_json_mode: str = "auto"
    services: str | None = None  # module:function giving the console and server their models
    model: str | None = None  # the default --model (and the LangGraph server's model)

    @field_validator("home", "models_dir", "chroma_dir", "scienceqa_dir", "eval_cache", "nltk_data")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


def settings() -> CoeSettings:
    try:
        return CoeSettings()
    except ValidationError as exc:
        from coe.errors import ConfigError

        first = exc.errors()[0]
        name = "COE_" + str(first["loc"][0]).upper() if first.get("loc") else "a COE_* variable"
        raise ConfigError(f"{name}={first.get('input')!r}: {first['msg']}") from None
