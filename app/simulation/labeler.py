"""Simulated labelers: scripts that work through queues over the JSON API as a person's client
does, judging with a `Judge` and writing demonstrations from the world's words.

They see only what a labeler sees (the assignment: prompt, responses by id and content) and
send only what a labeler sends, so a demo or test that uses them exercises the same routes,
leases, overlap and idempotent retries as real labeling. The http client is passed in: FastAPI's
TestClient in tests, an httpx.Client on a live server in the demo."""

from __future__ import annotations

import hashlib
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.simulation.judge import Judge, demonstration
from app.simulation.world import topic_of

API = "/api/v1"
# The longest a labeler waits when a 503 says Retry-After; the server asks for seconds.
MAX_RETRY_AFTER_SECONDS = 30.0


class LabelerError(RuntimeError):
    """The API refused a request for a reason retrying will not fix (a 4xx answer)."""


@dataclass(frozen=True)
class WorkSummary:
    submitted: int = 0
    skipped: int = 0
    retries: int = 0  # submit attempts repeated after a lost answer or a server error


@dataclass(frozen=True)
class LabelerAccount:
    user_id: int
    username: str
    token: str


class SimulatedLabeler:
    """One labeler with a taste (`judge`) and a writing habit (`helpful_share` of its
    demonstrations are helpful), holding an API token.

    A 503 (the server's database busy or away: nothing was recorded) is sent again after the
    answer's Retry-After seconds, at most `max_retries` times per request; `sleep` waits them.

    With `order_seed`, a comparison's responses are judged in an order of the labeler's own
    (`seeded_order`) instead of the display order the lease drew at random, so a simulation
    gives the same verdicts on every run while real labelers keep their shuffled display."""

    def __init__(
        self,
        http: httpx.Client,
        token: str,
        judge: Judge,
        *,
        helpful_share: float = 0.5,
        seed: int = 0,
        order_seed: int | None = None,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries is 0 or more")
        if not 0 <= helpful_share <= 1:
            raise ValueError(f"helpful_share is a probability; got {helpful_share}")
        self.http = http
        self.judge = judge
        self.helpful_share = helpful_share
        self.max_retries = max_retries
        self._sleep = sleep
        self._headers = {"Authorization": f"Bearer {token}"}
        self._rng = random.Random(seed)
        self.order_seed = order_seed

    def queues(self) -> list[dict[str, Any]]:
        """The queues this labeler may work on now, as GET /me/queues lists them."""
        return _json(self._send("GET", f"{API}/me/queues"))

    def work(self, queue_id: int, limit: int | None = None) -> WorkSummary:
        """Works through a queue until it has no task left for this labeler (or `limit`
        assignments are done): first the assignments it still holds there, then new leases."""
        submitted = skipped = retries = 0
        held = _json(self._send("GET", f"{API}/assignments", params={"queue_id": queue_id}))
        while limit is None or submitted + skipped < limit:
            if held:
                assignment = held.pop(0)
            else:
                leased = _json(self._send("POST", f"{API}/queues/{queue_id}/lease"))
                if leased["assignment"] is None:
                    break
                assignment = leased["assignment"]
            body = self._label(assignment)
            if body is None:
                self._skip(assignment)
                skipped += 1
                continue
            retries += self._submit(assignment, body)
            submitted += 1
        return WorkSummary(submitted=submitted, skipped=skipped, retries=retries)

    def _label(self, assignment: dict[str, Any]) -> dict[str, Any] | None:
        """The label this labeler gives an assignment, or None when it cannot judge it."""
        if assignment["kind"] == "comparison":
            responses = assignment["responses"]
            if len(responses) < 2:
                return None
            if self.order_seed is not None:
                responses = seeded_order(responses, self.order_seed)
            verdict = self.judge.judge([response["content"] for response in responses])
            items = [
                {"response_id": response["id"], "score": score, "rank": rank}
                for response, score, rank in zip(
                    responses, verdict.scores, verdict.ranks, strict=True
                )
            ]
            return {"items": items}
        prompt = _last_user_turn(assignment["prompt_messages"])
        if prompt is None or topic_of(prompt) is None:
            return None
        text = demonstration(prompt, self._rng, self.helpful_share)
        return {"messages": [{"role": "assistant", "content": text}]}

    def _skip(self, assignment: dict[str, Any]) -> None:
        broken = assignment["kind"] == "comparison"
        reason = "broken_task" if broken else "lacks_expertise"
        _json(
            self._send(
                "POST", f"{API}/assignments/{assignment['id']}/skip", json={"reason": reason}
            )
        )

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, sent again while the server answers 503: a refused request recorded
        nothing, so repeating it (a lease, a skip) does it once."""
        attempt = 0
        while True:
            answer = self.http.request(method, url, headers=self._headers, **kwargs)
            if answer.status_code != 503 or attempt == self.max_retries:
                return answer
            self._wait_as_asked(answer)
            attempt += 1

    def _wait_as_asked(self, answer: httpx.Response) -> None:
        """Waits the Retry-After seconds a 503 gives (capped), so a busy server gets the pause
        it asked for instead of every labeler's repeat at once."""
        asked = answer.headers.get("Retry-After", "").strip()
        if answer.status_code == 503 and asked.isdigit():
            self._sleep(min(float(asked), MAX_RETRY_AFTER_SECONDS))

    def _submit(self, assignment: dict[str, Any], body: dict[str, Any]) -> int:
        """Sends the label, repeating it with the same idempotency key after a lost answer or
        a server error (after a 503, once its Retry-After has passed), so the server keeps one
        label however many attempts reach it. Returns the number of repeats."""
        url = f"{API}/assignments/{assignment['id']}/{assignment['kind']}"
        body = {**body, "idempotency_key": uuid.uuid4().hex}
        attempt = 0
        while True:
            try:
                answer = self.http.post(url, json=body, headers=self._headers)
            except httpx.TransportError:
                if attempt == self.max_retries:
                    raise
            else:
                if answer.status_code < 500 or attempt == self.max_retries:
                    _json(answer)
                    return attempt
                self._wait_as_asked(answer)
            attempt += 1


def seeded_order(responses: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The responses in a permutation fixed by `seed` and their contents, whatever order they
    came in: a digest of (seed, content) sorts them, equal texts by id (a model's answers are
    stored before its compare model's, so A's copy of a shared answer comes first). The noise
    of a Judge depends on the order of the texts it is given; this makes it the simulation's
    own, while the display order a lease draws (app/services/leasing.py) stays random."""

    def key(response: dict[str, Any]) -> tuple[bytes, str, int]:
        content = str(response["content"])
        digest = hashlib.sha256(f"{seed}\0{content}".encode()).digest()
        return digest, content, int(response["id"])

    return sorted(responses, key=key)


def create_labeler_accounts(
    http: httpx.Client, admin_token: str, usernames: list[str], *, token_name: str = "simulation"
) -> list[LabelerAccount]:
    """Creates a labeler account per username and an API token for each, through the JSON
    API as an admin and then the labeler would: POST /users with a password nobody keeps,
    then POST /auth/token with it. A taken username is an error (LabelerError)."""
    accounts = []
    for username in usernames:
        password = secrets.token_urlsafe(24)
        created = _json(
            http.post(
                f"{API}/users",
                json={"username": username, "role": "labeler", "password": password},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
        )
        token = _json(
            http.post(
                f"{API}/auth/token",
                json={"username": username, "password": password, "token_name": token_name},
            )
        )
        accounts.append(LabelerAccount(created["user"]["id"], username, token["token"]))
    return accounts


def _last_user_turn(messages: list[dict[str, str]]) -> str | None:
    users = [message["content"] for message in messages if message["role"] == "user"]
    return users[-1] if users else None


def _json(answer: httpx.Response) -> Any:
    if answer.status_code >= 400:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text
        raise LabelerError(
            f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}: {message}"
        )
    return answer.json()
