"""Hostile file names, model paths and sizes: each a clear 4xx, quickly, with nothing read or
written outside where it belongs and nothing stored."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db import make_engine
from app.main import create_app
from app.models import Role
from app.settings import Settings
from app.web.body_limit import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from tests.api.helpers import API, db_state, error, validation_error
from tests.conftest import (
    PASSWORD,
    MigratedDatabases,
    bearer,
    csrf_from,
    make_token,
    make_user,
    web_login,
)
from tests.factories import make_comparison_tasks, make_project, make_queue

STORED_TABLES = ("dataset_jobs", "models", "runs", "prompts", "responses", "drafts", "projects")
SECRET = '{"prompt": "outside the import folder", "chosen": "a", "rejected": "b"}\n'
TOO_LARGE = error(
    "http_error", f"the request body is larger than the limit of {16 * 1024**2:,} bytes"
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.jsonl"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    return secret


@pytest.fixture
def import_dir(tmp_path: Path, outside: Path) -> Path:
    folder = tmp_path / "imports"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.jsonl").write_text(SECRET)
    (folder / "link.jsonl").symlink_to(outside)
    (folder / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    return folder


@pytest.fixture
def limited_app(private_app: FastAPI, settings: Settings, import_dir: Path) -> FastAPI:
    # The app's own settings object; an app of this test's own, as middleware is added.
    settings.import_dir = import_dir
    settings.max_upload_bytes = 1024
    private_app.add_middleware(BodyLimitMiddleware)
    return private_app


@pytest.fixture
def api(limited_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(limited_app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


@pytest.fixture
def staff(db: Session) -> dict[str, str]:
    return bearer(make_token(db, make_user(db, "root-admin", Role.admin)))


def _nothing_written(settings: Settings) -> None:
    uploads = settings.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_import_names_that_leave_the_import_folder_are_refused(
    api: TestClient, db: Session, settings: Settings, staff: dict[str, str], outside: Path
) -> None:
    project = make_project(db)
    db.commit()
    up = "goes up a folder ('..'); name a file inside the import folder"
    absolute = "is an absolute path; name a file inside the import folder"
    cases = {
        "../outside/secret.jsonl": up,
        "sub/../../outside/secret.jsonl": up,
        "..\\outside\\secret.jsonl": up,
        str(outside): absolute,
        "C:\\outside\\secret.jsonl": absolute,
        "link.jsonl": "leads outside the import folder (a symlink?)",
        "linkdir/secret.jsonl": "leads outside the import folder (a symlink?)",
        "%2e%2e/outside/secret.jsonl": "__missing__",
        "sub": "is not a file",
    }
    before = db_state(db, STORED_TABLES)
    for name, said in cases.items():
        message = (
            f"there is no {name!r} in the import folder"
            if said == "__missing__"
            else f"{name!r} {said}"
        )
        answer = api.post(
            f"{API}/projects/{project.id}/imports", json={"name": name}, headers=staff
        )
        assert (answer.status_code, answer.json()) == (
            422,
            error("invalid_input", message, "name"),
        ), name
    answer = api.post(
        f"{API}/projects/{project.id}/imports", json={"name": "a\x00b.jsonl"}, headers=staff
    )
    # Refused as any text field with a NUL byte is, before the import folder is looked at.
    assert (answer.status_code, answer.json()) == (
        422,
        validation_error("Value error, text may not contain NUL bytes", "name"),
    )
    assert db_state(db, STORED_TABLES) == before
    assert outside.read_text() == SECRET
    _nothing_written(settings)


def test_an_uploaded_file_name_with_folders_is_stored_under_a_random_name(
    api: TestClient, db: Session, settings: Settings, staff: dict[str, str], tmp_path: Path
) -> None:
    project = make_project(db)
    db.commit()
    answer = api.post(
        f"{API}/projects/{project.id}/imports",
        files={"file": ("../../../escaped.jsonl", SECRET.encode(), "application/x-ndjson")},
        headers=staff,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["source_name"] == "escaped.jsonl"
    stored = list((settings.data_dir / "uploads").iterdir())
    assert [path.suffix for path in stored] == [".jsonl"]
    assert stored[0].name != "escaped.jsonl"
    assert not list(tmp_path.rglob("escaped.jsonl"))


def test_an_upload_past_the_upload_limit_is_413_and_not_kept(
    api: TestClient, db: Session, settings: Settings, staff: dict[str, str]
) -> None:
    project = make_project(db)
    db.commit()
    before = db_state(db, STORED_TABLES)
    big = b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n' * 100  # > 1024 bytes
    answer = api.post(
        f"{API}/projects/{project.id}/imports",
        files={"file": ("big.jsonl", big, "application/x-ndjson")},
        headers=staff,
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "upload_too_large"
    assert db_state(db, STORED_TABLES) == before
    _nothing_written(settings)


def test_model_paths_and_hub_names_are_checked(
    api: TestClient, db: Session, settings: Settings, staff: dict[str, str]
) -> None:
    project = make_project(db)
    db.commit()
    before = db_state(db, STORED_TABLES)
    url = f"{API}/projects/{project.id}/models"
    folders = ", ".join(str(folder) for folder in settings.model_folders)
    outside = error(
        "invalid_input",
        f"the model path must be inside one of the model folders ({folders}); "
        "SMILEY_MODEL_ROOTS sets them",
        "path",
    )
    for path in ("../../../../etc", "/etc", "/nonexistent/model", "models/../../..", "~"):
        answer = api.post(url, json={"name": "evil", "path": path}, headers=staff)
        # The same answer whether the path exists or not: it tells nothing about the server.
        assert (answer.status_code, answer.json()) == (422, outside), path
    hub = api.post(url, json={"name": "hub", "hub_name": "owner/name"}, headers=staff)
    assert (hub.status_code, hub.json()) == (
        422,
        error(
            "invalid_input",
            "hub downloads are off on this server (SMILEY_ALLOW_HUB_MODELS); register a folder",
            "hub_name",
        ),
    )
    run = api.post(
        f"{API}/projects/{project.id}/runs",
        json={"kind": "sft", "base_model_ref": "owner/name"},
        headers=staff,
    )
    assert run.status_code == 422, run.text
    assert run.json()["error"]["field"] == "base_model_ref"
    assert db_state(db, STORED_TABLES) == before


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app/settings.py",
        "/static/%2e%2e/app/settings.py",
        "/static/..%2fapp%2fsettings.py",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static//etc/passwd",
    ],
)
def test_static_files_stay_in_the_static_folder(api: TestClient, path: str) -> None:
    answer = api.get(path)
    assert answer.status_code == 404, answer.text[:200]
    assert "class Settings" not in answer.text
    assert "root:" not in answer.text


def test_a_20_mb_json_body_is_413_before_it_is_read(
    api: TestClient, db: Session, labeler: object
) -> None:
    project = make_project(db)
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    headers = bearer(make_token(db, labeler))  # type: ignore[arg-type]
    lease = api.post(f"{API}/queues/{queue.id}/lease", headers=headers).json()["assignment"]
    before = db_state(db, STORED_TABLES)
    huge = b'{"content": {"comment": "' + b"x" * (20 * 1024**2) + b'"}}'
    started = time.monotonic()
    answer = api.put(
        f"{API}/assignments/{lease['id']}/draft",
        content=huge,
        headers=headers | {"Content-Type": "application/json"},
    )
    assert (answer.status_code, answer.json()) == (413, TOO_LARGE)
    # Sent without a length (a generator is sent chunked): counted as it arrives, then refused.
    answer = api.put(
        f"{API}/assignments/{lease['id']}/draft",
        content=(b"x" * 1024**2 for _ in range(20)),
        headers=headers | {"Content-Type": "application/json"},
    )
    assert (answer.status_code, answer.json()) == (413, TOO_LARGE)
    assert time.monotonic() - started < 10
    assert db_state(db, STORED_TABLES) == before


def test_a_huge_form_post_is_413(api: TestClient, db: Session, labeler: object) -> None:
    csrf = web_login(api, "lena")
    before = db_state(db, STORED_TABLES)
    answer = api.post(
        "/work/preview",
        data={"csrf_token": csrf, "turn_0": "y" * (DEFAULT_MAX_BODY_BYTES + 1)},
    )
    assert answer.status_code == 413
    assert answer.text == (
        f"Request refused: the request body is larger than the limit of "
        f"{DEFAULT_MAX_BODY_BYTES:,} bytes."
    )
    assert db_state(db, STORED_TABLES) == before
    # A normal post still works on the same app.
    assert api.post("/work/preview", data={"csrf_token": csrf, "turn_0": "hi"}).status_code == 200


# --- login brute force across both doors -----------------------------------------------------


def _web_attempt(client: TestClient, username: str, password: str) -> int:
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
    )
    return answer.status_code


def _api_attempt(client: TestClient, username: str, password: str) -> int:
    answer = client.post(f"{API}/auth/token", json={"username": username, "password": password})
    return answer.status_code


def test_failures_on_one_door_lock_the_other_even_for_the_right_password(
    api: TestClient, db: Session, labeler: object
) -> None:
    # Three wrong passwords through the form, two through the token API: five in all.
    assert [_web_attempt(api, "lena", f"wrong {n}") for n in range(3)] == [401, 401, 401]
    assert [_api_attempt(api, "lena", f"wrong {n}") for n in range(2)] == [401, 401]
    before = db_state(db, ("login_attempts", "user_sessions", "api_tokens"))

    assert _api_attempt(api, "lena", PASSWORD) == 429
    assert _web_attempt(api, "lena", PASSWORD) == 429
    assert db_state(db, ("login_attempts", "user_sessions", "api_tokens")) == before


def test_failures_from_one_address_through_the_form_lock_the_token_api(
    api: TestClient, settings: Settings, labeler: object
) -> None:
    settings.login_max_failures_per_ip = 3
    assert [_web_attempt(api, name, "wrong") for name in ("alpha", "beta", "gamma")] == [401] * 3

    assert _api_attempt(api, "lena", PASSWORD) == 429
    assert _web_attempt(api, "lena", PASSWORD) == 429


# --- through a real server --------------------------------------------------------------------


def _raw_request(url: str, head: bytes, chunks: Iterable[bytes] = ()) -> bytes:
    """Sends `head`, then `chunks` until the server stops reading; returns what it answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.fixture
def limited_server(tmp_path: Path, migrated_databases: MigratedDatabases) -> Iterator[str]:
    """A real uvicorn (httptools, as deployed) serving the app with the body limit."""
    url = migrated_databases.sqlite(tmp_path / "server.sqlite3")
    engine = make_engine(url)
    app = create_app(
        Settings(data_dir=tmp_path / "data", database_url=url, secret_key="s" * 40), engine
    )
    app.add_middleware(BodyLimitMiddleware)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.mark.slow
def test_a_giant_header_is_refused(limited_server: str) -> None:
    started = time.monotonic()
    answer = _raw_request(
        limited_server,
        b"GET /login HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1024**2 + b"\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert body == (
        b"Request refused: the request headers are larger than the limit of 65,536 bytes."
    )
    assert time.monotonic() - started < 10
    # The server is still up and answers normal requests.
    ok = _raw_request(
        limited_server, b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert ok.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.slow
def test_a_chunked_20_mb_post_to_a_real_server_is_413(limited_server: str) -> None:
    started = time.monotonic()
    chunk = b"x" * 1024**2
    head = (
        b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20 + [b"0\r\n\r\n"]
    answer = _raw_request(limited_server, head, chunks)
    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert b'"code":"http_error"' in answer.replace(b" ", b"")
    assert time.monotonic() - started < 10
