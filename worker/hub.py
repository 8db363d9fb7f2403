"""Hub models: a base model named `owner/name` downloads through huggingface_hub into the data
folder's model cache, once.

The cache is huggingface_hub's own layout (models--owner--name/blobs, snapshots/<commit>) under
data_dir/models/hub, inside the model folders, so an adapter trained on a downloaded base names
a folder the registry accepts. A second run of the same model finds every file there and
downloads nothing (one look-up of the revision, or none when the hub cannot be reached and the
cache has the snapshot). Concurrent runs are safe by huggingface_hub's own locking: each blob
is written under a file lock (cache/.locks) to a temporary name and renamed into place, and a
run that waited on the lock finds the blob there and does not fetch it again.

Only what a model folder needs is fetched: configuration, safetensors weights and tokenizer
files; pickled checkpoints (.bin, .pt) never, as the registry never loads them.

The endpoint and token come from huggingface_hub's own environment (HF_ENDPOINT, HF_TOKEN):
a mirror or a private hub is set on the workers, not per run. No torch here.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Configuration, weights and tokenizer files (tokenizer.json, tokenizer.model, vocab.txt,
# merges.txt, chat_template.jinja); no pickles.
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]
# Progress reaches the run at most this often (one database write each).
PROGRESS_EVERY_SECONDS = 1.0


def hub_cache(data_dir: Path) -> Path:
    return data_dir / "models" / "hub"


@dataclass
class DownloadProgress:
    """What the run page shows while a hub model downloads (run.artifacts["downloads"])."""

    model: str
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    # "downloading", then "done" (with the snapshot's commit), "cached" when nothing had to
    # be fetched.
    state: str = "downloading"
    commit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class HubDownloadError(RuntimeError):
    """A hub model could not be downloaded; the message says which, from where, and why."""


class DownloadStopped(Exception):
    """The run was cancelled while its model downloaded."""


Progress = Callable[[DownloadProgress], None]


def download_model(
    repo_id: str,
    cache_dir: Path,
    *,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    endpoint: str | None = None,
    revision: str | None = None,
) -> Path:
    """The snapshot folder of `repo_id` in `cache_dir`, downloaded first where it is not
    there. Raises HubDownloadError with a sentence a researcher can act on."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = endpoint or constants.ENDPOINT
    tracker = _Tracker(repo_id, on_progress, should_stop)
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=MODEL_FILES,
                endpoint=endpoint,
                tqdm_class=tracker.bar_class(),
                # A few files at a time: a model is a handful of files, the weights the largest.
                max_workers=4,
            )
        )
    except DownloadStopped:
        raise
    except (RepositoryNotFoundError, GatedRepoError) as error:
        raise HubDownloadError(
            f"the hub at {where} has no model {repo_id!r} this worker may read (a private or "
            "gated model needs HF_TOKEN set on the workers)"
        ) from error
    except RevisionNotFoundError as error:
        raise HubDownloadError(
            f"the hub at {where} has {repo_id!r} but not its revision {revision or 'main'!r}"
        ) from error
    except LocalEntryNotFoundError as error:
        # snapshot_download's answer when the hub cannot be reached and the cache has nothing.
        cause = error.__cause__ or error
        raise HubDownloadError(
            f"could not reach the hub at {where} to download {repo_id!r}, and the model cache "
            f"({cache_dir}) does not hold it: {type(cause).__name__}: {_first_line(cause)}"
        ) from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise HubDownloadError(
            f"the hub at {where} answered {status} while {repo_id!r} downloaded: "
            f"{_first_line(error)}"
        ) from error
    except OSError as error:
        raise HubDownloadError(
            f"{repo_id!r} could not be written to the model cache ({cache_dir}): {error}"
        ) from error
    if not any(folder.glob("*.safetensors")):
        raise HubDownloadError(
            f"{repo_id!r} on the hub at {where} has no safetensors weights (pickled .bin "
            "checkpoints are not loaded)"
        )
    if not (folder / "config.json").is_file():
        raise HubDownloadError(f"{repo_id!r} on the hub at {where} has no config.json")
    tracker.finish(folder.name)
    return folder


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


class _Tracker:
    """Turns huggingface_hub's progress bars into DownloadProgress, at most once a second.

    snapshot_download draws one bar counting files (unit "it") and byte bars (unit "B": bytes
    written, and for Xet storage bytes received too); the byte bar furthest along is the one
    shown. A bar class that is not huggingface_hub's own is used as given (its
    _create_progress_bar), so this one writes its bars to nowhere."""

    def __init__(self, model: str, on_progress: Progress | None, should_stop: Callable[[], bool]):
        self.progress = DownloadProgress(model)
        self._on_progress = on_progress
        self._should_stop = should_stop
        self._lock = threading.Lock()
        self._bars: list[Any] = []
        self._last = 0.0
        self._fetched = False

    def bar_class(self) -> type:
        from tqdm import tqdm

        tracker = self

        class RunBar(tqdm):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("name", None)
                kwargs["file"] = io.StringIO()
                kwargs["disable"] = False
                super().__init__(*args, **kwargs)
                with tracker._lock:
                    tracker._bars.append(self)

            def update(self, n: float | None = 1) -> bool | None:
                shown = super().update(n)
                tracker.changed()
                return shown

        return RunBar

    def changed(self) -> None:
        if self._should_stop():
            # Raised in a download thread, it ends snapshot_download (hf_thread_map re-raises
            # the first failure and cancels the files not started).
            raise DownloadStopped()
        now = time.monotonic()
        with self._lock:
            self._read_bars()
            if now - self._last < PROGRESS_EVERY_SECONDS:
                return
            self._last = now
            snapshot = DownloadProgress(**self.progress.as_dict())
        if self._on_progress is not None:
            self._on_progress(snapshot)

    def _read_bars(self) -> None:
        files = [bar for bar in self._bars if bar.unit != "B"]
        byte_bars = [bar for bar in self._bars if bar.unit == "B"]
        if files:
            self.progress.files_done = int(files[-1].n)
            self.progress.files_total = int(files[-1].total or 0)
        if byte_bars:
            furthest = max(byte_bars, key=lambda bar: bar.n)
            self.progress.bytes_done = int(furthest.n)
            self.progress.bytes_total = int(max(furthest.total or 0, furthest.n))
            self._fetched = self._fetched or furthest.n > 0

    def finish(self, commit: str) -> None:
        with self._lock:
            self._read_bars()
            self.progress.state = "done" if self._fetched else "cached"
            self.progress.commit = commit
            self.progress.files_done = self.progress.files_total
            snapshot = DownloadProgress(**self.progress.as_dict())
        if self._on_progress is not None:
            self._on_progress(snapshot)
