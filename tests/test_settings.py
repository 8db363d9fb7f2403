"""app.settings: environment variables, defaults under the data folder, the secret key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import MIN_SECRET_KEY_LENGTH, SECRET_KEY_FILE, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever SMILEY_ variables the machine has, these tests start from none."""
    for name in list(os.environ):
        if name.startswith("SMILEY_"):
            monkeypatch.delenv(name)


def test_smiley_environment_variables_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("SMILEY_DATABASE_URL", "postgresql+psycopg://smiley@db/smiley")
    monkeypatch.setenv("SMILEY_BROKER_URL", "redis://cache:6379/0")
    monkeypatch.setenv("SMILEY_COOKIE_SECURE", "true")
    monkeypatch.setenv("SMILEY_SESSION_HOURS", "1.5")
    monkeypatch.setenv("SMILEY_LOGIN_MAX_FAILURES", "7")
    monkeypatch.setenv("SMILEY_LOGIN_MAX_FAILURES_PER_IP", "70")
    monkeypatch.setenv("SMILEY_WORKER_STALE_SECONDS", "90")
    # Without the prefix nothing is read.
    monkeypatch.setenv("LOGIN_WINDOW_SECONDS", "1")

    settings = Settings()
    assert settings.data_dir == (tmp_path / "from-env").resolve()
    assert settings.resolved_database_url == "postgresql+psycopg://smiley@db/smiley"
    assert settings.broker_url == "redis://cache:6379/0"
    assert settings.uses_embedded_broker is False
    assert settings.cookie_secure is True
    assert settings.session_hours == 1.5
    assert settings.login_max_failures == 7
    assert settings.login_max_failures_per_ip == 70
    assert settings.worker_stale_seconds == 90.0
    assert settings.login_window_seconds == 900


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == tmp_path.resolve() / "smiley-data"
    assert settings.broker_url == "filesystem://"
    assert settings.uses_embedded_broker is True
    assert settings.secret_key is None
    assert settings.cookie_secure is False
    assert (settings.session_hours, settings.login_window_seconds) == (12.0, 900)
    assert (settings.login_max_failures, settings.login_max_failures_per_ip) == (5, 20)
    assert (settings.worker_heartbeat_seconds, settings.worker_stale_seconds) == (5.0, 30.0)


def test_default_database_is_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    expected = f"sqlite:///{tmp_path.resolve() / 'data' / 'smiley.sqlite3'}"
    assert settings.resolved_database_url == expected


def test_data_dir_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings(data_dir=Path("relative")).data_dir == tmp_path.resolve() / "relative"
    assert Settings(data_dir=Path("~/smiley")).data_dir == (tmp_path / "home" / "smiley").resolve()


def test_model_folders_default_to_the_data_folders_models_and_the_import_folder(
    tmp_path: Path,
) -> None:
    data = tmp_path.resolve() / "data"
    assert Settings(data_dir=data).model_folders == [data / "models", data / "runs"]
    with_imports = Settings(data_dir=data, import_dir=tmp_path / "imports")
    assert with_imports.model_folders == [
        data / "models",
        (tmp_path / "imports").resolve(),
        data / "runs",
    ]


def test_model_roots_are_read_like_path_and_the_runs_folder_stays(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SMILEY_DATA_DIR", "data")
    monkeypatch.setenv("SMILEY_MODEL_ROOTS", "/srv/models::relative:~/weights")
    settings = Settings()
    root = tmp_path.resolve()
    assert settings.model_roots == [
        Path("/srv/models"),
        root / "relative",
        (tmp_path / "home" / "weights").resolve(),
    ]
    assert settings.model_folders == [*settings.model_roots, root / "data" / "runs"]
    # Empty means not set, as for the import folder: the defaults apply.
    monkeypatch.setenv("SMILEY_MODEL_ROOTS", "")
    assert Settings().model_folders == [root / "data" / "models", root / "data" / "runs"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMILEY_LOGIN_MAX_FAILURES", "0"),
        ("SMILEY_SESSION_HOURS", "0"),
        ("SMILEY_WORKER_STALE_SECONDS", "-1"),
    ],
)
def test_out_of_range_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_ensure_data_dir_creates_the_embedded_broker_folders(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_data_dir()
    assert (settings.broker_dir / "queue").is_dir()
    assert (settings.broker_dir / "processed").is_dir()
    assert settings.broker_dir == settings.data_dir / "broker"


def test_ensure_data_dir_with_redis_creates_no_broker_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", broker_url="redis://cache:6379/0")
    settings.ensure_data_dir()
    assert settings.data_dir.is_dir()
    assert not settings.broker_dir.exists()


# --- the secret key ---------------------------------------------------------------------------


def test_generated_secret_key_is_kept_private_and_stable(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = Settings(data_dir=data_dir).resolved_secret_key
    assert len(key) >= MIN_SECRET_KEY_LENGTH

    path = data_dir / SECRET_KEY_FILE
    assert path.read_text() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The aside file it was written through is gone.
    assert sorted(p.name for p in data_dir.iterdir()) == [SECRET_KEY_FILE]

    assert Settings(data_dir=data_dir).resolved_secret_key == key


def test_each_data_dir_gets_its_own_secret_key(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "a").resolved_secret_key
    second = Settings(data_dir=tmp_path / "b").resolved_secret_key
    assert first != second


def test_configured_secret_key_is_used_as_is(tmp_path: Path) -> None:
    key = "k" * MIN_SECRET_KEY_LENGTH
    settings = Settings(data_dir=tmp_path / "data", secret_key=key)
    assert settings.resolved_secret_key == key
    assert not (tmp_path / "data" / SECRET_KEY_FILE).exists()


def test_too_short_configured_secret_key_raises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMILEY_SECRET_KEY", "k" * (MIN_SECRET_KEY_LENGTH - 1))
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(ValueError, match="SMILEY_SECRET_KEY must be at least 32 characters"):
        _ = settings.resolved_secret_key


def test_too_short_key_file_raises(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / SECRET_KEY_FILE).write_text("short\n")
    with pytest.raises(ValueError, match="shorter than 32 characters"):
        _ = Settings(data_dir=data_dir).resolved_secret_key
