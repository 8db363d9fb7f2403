"""Settings: the only module that reads the environment (prefix SMILEY_)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EMBEDDED_BROKER_URL = "filesystem://"
SECRET_KEY_FILE = "secret_key"
MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMILEY_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default=Path("smiley-data"),
        description="Folder for the SQLite database, the embedded broker, snapshots and models.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under data_dir when not given."
    )
    broker_url: str = Field(
        default=EMBEDDED_BROKER_URL,
        description="Celery broker; 'filesystem://' is the embedded broker under data_dir.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Signs CSRF cookies; generated once into data_dir/secret_key when not given.",
    )
    cookie_secure: bool = Field(
        default=False, description="Mark cookies Secure (set it when served over HTTPS)."
    )
    session_hours: float = Field(default=12.0, gt=0, description="How long a login lasts.")
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins per username within the window before 429."
    )
    login_max_failures_per_ip: int = Field(
        default=20, ge=1, description="Failed logins per client address within the window."
    )
    login_window_seconds: int = Field(default=900, ge=1)
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    worker_stale_seconds: float = Field(
        default=30.0, gt=0, description="A worker silent for longer counts as down."
    )
    run_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often a worker running a training job says so."
    )
    run_stale_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A running run whose heartbeat is older is marked 'worker lost' (resumable).",
    )
    dataset_job_stale_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A running import or export that wrote no progress for longer is marked "
        "'worker lost' (nothing of it was stored).",
    )
    queued_resend_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A run or dataset job still queued after this long whose message the broker "
        "no longer holds (a Redis without persistence restarted, a worker killed while holding "
        "it) is sent to the workers again, at most once per this period.",
    )
    allow_hub_models: bool = Field(
        default=False,
        description="Accept hub model names (owner/name) as base models; only where workers "
        "can download them (through huggingface_hub, from HF_ENDPOINT with HF_TOKEN, into "
        "data_dir/models/hub, once).",
    )
    import_dir: Path | None = Field(
        default=None,
        description="The admin's import folder: datasets named by path are read from here "
        "only. Imports by name are refused while it is not set.",
    )
    # NoDecode: the environment gives folders the way PATH does (separated by ':'), not JSON.
    model_roots: Annotated[list[Path] | None, NoDecode] = Field(
        default=None,
        description="The folders model paths may lie in (registered models, base models named "
        "by folder), separated by ':' like PATH; a path outside them is refused, symlinks and "
        "'..' resolved first. Not set: data_dir/models and the import folder. data_dir/runs, "
        "where Smiley's own runs save their models, is always allowed.",
    )
    max_request_bytes: int = Field(
        default=16 * 1024**2,
        ge=1024,
        description="The largest request body accepted, except dataset uploads "
        "(SMILEY_MAX_UPLOAD_BYTES).",
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="The largest dataset file accepted as an upload."
    )

    api_token_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="How long a web process reuses an API token it has checked (0: never), "
        "sparing a labeling client's every request a query. A revoked token, a deactivated "
        "user or a changed role takes effect within this time in every process, and at once "
        "in the one that made the change.",
    )
    web_database_pool_size: int = Field(
        default=20,
        ge=1,
        description="PostgreSQL connections each web process keeps open; also how many "
        "requests it serves at once on worker threads, so that no request opens a connection "
        "of its own.",
    )
    web_worker_start_seconds: int = Field(
        default=60,
        ge=5,
        description="With `smiley web --workers N`, how long a web process may take to answer "
        "its supervisor's health check before it is replaced: a start on a busy host can take "
        "far longer than uvicorn's 5 s, which replaced each worker before it was up.",
    )

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text for a terminal, or one JSON object a line for a server's "
        "log collector.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="The least severe log records written."
    )
    # Off in tests that share one database, whose rows the recorder's own connection would
    # commit outside each test's rolled-back transaction.
    task_events_record: bool = True
    task_events_keep: int = Field(
        default=10_000,
        ge=100,
        description="How many of the newest Celery task events the task events table keeps.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("import_dir", mode="before")
    @classmethod
    def _absolute_or_unset(cls, value: object) -> object:
        # SMILEY_IMPORT_DIR= (empty) means "not set", not the current folder.
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return Path(str(value)).expanduser().resolve()

    @field_validator("model_roots", mode="before")
    @classmethod
    def _folders_or_unset(cls, value: object) -> object:
        # SMILEY_MODEL_ROOTS= (empty) means "not set", as for the import folder.
        if isinstance(value, str):
            value = [part for part in value.split(os.pathsep) if part.strip()]
        if value is None or (isinstance(value, list) and not value):
            return None
        if isinstance(value, list):
            return [Path(str(part).strip()).expanduser().resolve() for part in value]
        return value

    @property
    def model_folders(self) -> list[Path]:
        """Where model paths may point: model_roots, or its default, and the runs folder."""
        if self.model_roots is not None:
            roots = list(self.model_roots)
        else:
            roots = [self.data_dir / "models"]
            if self.import_dir is not None:
                roots.append(self.import_dir)
        runs = self.data_dir / "runs"
        return roots if runs in roots else [*roots, runs]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'smiley.sqlite3'}"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def prometheus_dir(self) -> Path:
        """Where web processes share metric files when `smiley web --workers` runs several."""
        return self.data_dir / "prometheus"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.uses_embedded_broker:
            for sub in ("queue", "processed", "control"):
                (self.broker_dir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def resolved_secret_key(self) -> str:
        """The configured key, else one generated once and kept (mode 0600) in the data folder."""
        if self.secret_key:
            if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
                raise ValueError(
                    f"SMILEY_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters"
                )
            return self.secret_key
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Written aside then hard-linked into place: when web and worker start together,
            # exactly one key wins and nobody reads a half-written file.
            tmp = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_text().strip()
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"{path} holds a key shorter than {MIN_SECRET_KEY_LENGTH} characters")
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
