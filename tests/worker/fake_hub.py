"""A Hugging Face Hub endpoint on loopback serving model folders, for HF_ENDPOINT.

It answers the requests huggingface_hub's snapshot_download makes (read from its source,
huggingface_hub 2.x): the revision look-up (GET /api/models/{repo}/revision/{rev}: id and sha),
the recursive file listing (GET /api/models/{repo}/tree/{commit}), and each file's
HEAD and GET at /{repo}/resolve/{commit}/{file}, with the headers hf_hub_download refuses to go
without (X-Repo-Commit, ETag) and Content-Length. An unknown repo gets the hub's 404 with
X-Error-Code: RepoNotFound. Every file GET is counted, so a test can say how often a file was
downloaded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "c0ffee" + "0" * 34


@dataclass
class FakeHub:
    url: str
    repos: dict[str, Path]
    downloads: Counter[str] = field(default_factory=Counter)
    # Seconds each file GET pauses before answering: room for a concurrent download to overlap.
    delay: float = 0.0


def _files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, value: object) -> None:
            self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def _not_found(self, code: str) -> None:
            self._send(404, b'{"error": "not found"}', {"X-Error-Code": code})

        def _route(self) -> None:
            path = unquote(urlsplit(self.path).path)
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo, what = "/".join(parts[2:4]), parts[4]
                files = _files(hub.repos[repo]) if repo in hub.repos else None
                if files is None:
                    return self._not_found("RepoNotFound")
                if what == "revision":
                    return self._json(
                        {
                            "id": repo,
                            "sha": COMMIT,
                            "siblings": [{"rfilename": name} for name in files],
                        }
                    )
                if what == "tree":
                    return self._json(
                        [
                            {
                                "type": "file",
                                "path": name,
                                "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest(),
                            }
                            for name, data in files.items()
                        ]
                    )
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                if repo not in hub.repos:
                    return self._not_found("RepoNotFound")
                files = _files(hub.repos[repo])
                if name not in files:
                    return self._not_found("EntryNotFound")
                data = files[name]
                if self.command == "GET":
                    hub.downloads[f"{repo}/{name}"] += 1
                    if hub.delay:
                        threading.Event().wait(hub.delay)
                return self._send(
                    200,
                    data,
                    {
                        "X-Repo-Commit": COMMIT,
                        "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                        "Content-Type": "application/octet-stream",
                    },
                )
            self._not_found("EntryNotFound")

        do_GET = _route
        do_HEAD = _route

    return Handler


@contextmanager
def serve_hub(repos: dict[str, Path]) -> Iterator[FakeHub]:
    """A fake hub on a free loopback port serving `repos` (name -> model folder)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeHub("", {})))
    hub = FakeHub(f"http://127.0.0.1:{server.server_address[1]}", dict(repos))
    server.RequestHandlerClass = _handler(hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
