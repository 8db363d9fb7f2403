"""The embedded broker's transport (worker/broker.py): a message is never visible half-written."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection
from kombu.exceptions import ChannelError

from app.settings import Settings
from worker import broker
from worker.celery_app import make_celery


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[Any]:
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "store_processed": False,
    }
    with Connection("filesystem://", transport=broker.Transport, transport_options=options) as c:
        yield c.default_channel


def test_a_message_goes_through_whole(channel: Any, tmp_path: Path) -> None:
    channel._put("gpu", {"body": "run 9"})
    (name,) = os.listdir(tmp_path / "queue")
    assert name.endswith(".gpu.msg")
    assert channel._size("gpu") == 1
    assert channel._get("gpu") == {"body": "run 9"}
    assert os.listdir(tmp_path / "queue") == []
    with pytest.raises(Empty):
        channel._get("gpu")


def test_a_reader_mid_write_sees_nothing_then_the_whole_message(
    channel: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []
    real_fsync = os.fsync

    def read_while_writing(fd: int) -> None:
        # The bytes are in the file, under a name no queue matches: a polling worker skips it
        # (kombu's own transport would hand it an empty file here and drop the message).
        assert len(os.listdir(tmp_path / "queue")) == 1
        try:
            seen.append(channel._get("gpu"))
        except Empty:
            seen.append("empty")
        seen.append(channel._size("gpu"))
        real_fsync(fd)

    monkeypatch.setattr(broker.os, "fsync", read_while_writing)
    channel._put("gpu", {"body": "run 9"})
    assert seen == ["empty", 0]
    assert channel._get("gpu") == {"body": "run 9"}


def test_a_failed_write_raises_and_leaves_no_file(
    channel: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(broker.os, "replace", no_space)
    with pytest.raises(ChannelError, match="Cannot add file"):
        channel._put("gpu", {"body": "run 9"})
    assert os.listdir(tmp_path / "queue") == []


def test_the_embedded_broker_uses_it_and_redis_does_not(settings: Settings) -> None:
    assert settings.uses_embedded_broker
    assert make_celery(settings).conf.broker_transport == "worker.broker:Transport"
    with make_celery(settings).connection_for_write() as connection:
        assert type(connection.transport) is broker.Transport
    redis = settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/0"})
    assert make_celery(redis).conf.broker_transport is None
