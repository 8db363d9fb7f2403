"""The embedded broker: kombu's filesystem transport, with messages written atomically.

Kombu's own `_put` opens the message file under its final name and only then writes to it,
while `_get` takes any file with that name without a lock. A worker polling at the wrong
moment moves away an empty file, fails to decode it, and the message is gone: a run that stays
queued for ever (the likely cause of a CI run whose loop test waited 25 minutes on its 9th
run). Here the message is written under a name no queue matches and renamed into place, which
POSIX makes atomic within a folder, so a reader sees the whole message or nothing.

No torch here: the web process sends through this transport too."""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # Kombu's name: millisecond prefix (so listing order is sending order), then the queue.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # "_writing" has no dot after the prefix's first one, so no queue's filter matches it.
        partial = os.path.join(self.data_folder_out, f"{uuid.uuid4()}_writing")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
