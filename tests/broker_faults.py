"""Stand-ins for `connected_sender` that fail as a broker does: at the connect, or after it,
before the send (the short window the end-to-end fault tests cannot aim at)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.services.runs.queueing import BROKER_DOWN, BrokerUnreachable, Send
from app.settings import Settings


@contextmanager
def dies_before_the_send(_: Settings) -> Iterator[Send]:
    def send(task: str, job_id: int, queue: str | None) -> None:
        raise BrokerUnreachable(BROKER_DOWN)

    yield send


@contextmanager
def refuses_the_connection(_: Settings) -> Iterator[Send]:
    raise BrokerUnreachable(BROKER_DOWN)
    yield  # pragma: no cover - a generator, for contextmanager
