"""The one settings class shared by every hone process (prefix ``HONE_``).

Servers and workers read the same variables, so an operator sets them once (in ``.env``
for docker compose). Secrets that look like placeholders are refused: a service that
holds weeks of GPU time must fail closed, not start with ``changeme``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from platformdirs import user_config_path
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_DATA_DIR = Path("hone-data")
USER_CONFIG_NAME = "config.env"


def user_config_file() -> Path:
    """The per-user settings file (``~/.config/hone/config.env`` on Linux): the same
    ``HONE_*`` lines as ``.env``, read from any directory. ``hone up`` stores its API URL
    and admin token there. ``HONE_CONFIG_DIR`` names another folder."""
    folder = os.environ.get("HONE_CONFIG_DIR")
    return (Path(folder) if folder else user_config_path("hone")) / USER_CONFIG_NAME


def store_user_config(values: dict[str, str]) -> Path:
    """Set ``values`` (``HONE_*`` names) in the per-user settings file, keeping its other
    lines; the file is private to the user (mode 0600)."""
    path = user_config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line.split("=", 1)[0].strip() not in values]
    lines = [*kept, *(f"{key}={value}" for key, value in values.items())]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


_PLACEHOLDERS = {"changeme", "change-me", "changethis", "secret", "password", "token", "admin", "xxx"}


class Settings(BaseSettings):
    """Configuration of every hone process, read from ``HONE_*`` variables, then ``.env``
    in the working directory, then the per-user file (:func:`user_config_file`)."""

    model_config = SettingsConfigDict(env_prefix="HONE_", env_file=".env", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        user_file = DotEnvSettingsSource(settings_cls, env_file=user_config_file())
        return init_settings, env_settings, dotenv_settings, user_file, file_secret_settings

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'hone.db'}",
        description="SQLAlchemy URL: a SQLite file, or postgresql+psycopg://… for many machines.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin bearer token (compose); tokens can also be created with `hone token create`.",
    )
    worker_token: SecretStr | None = Field(
        default=None,
        description="Bootstrap worker bearer token (compose): the API accepts it with the worker role, so workers can start with the stack.",
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="Where clients and workers reach the API."
    )
    token: SecretStr | None = Field(default=None, description="Bearer token that clients and workers send.")
    heartbeat_interval: float = Field(default=10.0, gt=0, description="Seconds between worker heartbeats.")
    grace_period: float = Field(
        default=60.0,
        gt=0,
        description="Seconds without a heartbeat before a lease is reaped and its trial re-queued.",
    )
    max_retries: int = Field(
        default=2, ge=0, description="How often a reaped or crashed configuration is re-queued."
    )
    reaper_interval: float = Field(
        default=5.0, gt=0, description="Seconds between reaper sweeps inside the API."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Browser origins allowed to call the API."
    )
    token_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Seconds an API process trusts a token it has checked before it reads the database again (0: every request); a revoked token stops working within this time.",
    )
    log_json: bool = Field(default=False, description="Log one JSON object per line.")
    report_overhead: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of a worker slot's time step reports may cost; faster steps are sent together.",
    )

    @field_validator("admin_token", "worker_token", "token")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if not secret:
            # compose passes `${HONE_WORKER_TOKEN:-}` as an empty string: that means unset.
            return None
        if secret.strip().lower() in _PLACEHOLDERS or len(secret) < 16:
            raise ValueError(
                "is a placeholder or shorter than 16 characters; generate one with `hone token create` or `openssl rand -hex 32`"
            )
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # HONE_CORS_ORIGINS=http://a,http://b is friendlier than a JSON list in a .env file.
        if isinstance(value, str) and not value.strip().startswith("["):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_for(*, data_dir: Path | None = None, database_url: str | None = None) -> Settings:
    """Settings for a command that takes ``--data-dir`` / ``--database-url``.

    The one rule for where the database lives: an explicit ``--database-url`` wins, then
    ``HONE_DATABASE_URL`` (environment or ``.env``), then ``sqlite:///DIR/hone.db`` for
    ``--data-dir DIR``, then the default under ``hone-data/``.
    """
    settings = Settings()
    if database_url:
        return settings.model_copy(update={"database_url": database_url})
    if data_dir is not None and "database_url" not in settings.model_fields_set:
        return settings.model_copy(update={"database_url": f"sqlite:///{Path(data_dir) / 'hone.db'}"})
    return settings
