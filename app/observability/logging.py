"""Log records that carry the request id, and a formatter that writes one JSON object a line.

`SMILEY_LOG_FORMAT=text` (the default) is for a person at a terminal; `json` is for servers
whose log collector parses lines. Every record gets a `request_id` attribute (None outside a
request) from a record factory, so any handler, pytest's caplog included, sees it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from app.observability.context import current_request_id
from app.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    | {"message", "asctime", "request_id", "taskName"}
)

_base_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = current_request_id()
    return record


def install_record_factory() -> None:
    """Idempotent: every record made from now on carries the current request id."""
    if logging.getLogRecordFactory() is not _record_with_request_id:
        logging.setLogRecordFactory(_record_with_request_id)


install_record_factory()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        # default=str: an extra value that JSON cannot hold is logged as text, not lost.
        return json.dumps(entry, default=str, ensure_ascii=False)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(settings: Settings) -> None:
    """Root logger to stderr in the chosen format; uvicorn's loggers go through it too."""
    install_record_factory()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(settings.log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "smiley_handler", False):
            root.removeHandler(old)
    handler.smiley_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # The middleware writes the access line (with route, duration and request id) instead.
    logging.getLogger("uvicorn.access").disabled = True


class _WorkerRestarts(logging.Filter):
    """uvicorn's supervisor says at INFO that a web process died and was replaced; whoever runs
    the server needs to see that, and why it may have happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (
            record.levelno < logging.WARNING
            and message.startswith("Child process [")
            and message.endswith(" died")
        ):
            record.msg = (
                f"web {message[6:]} or did not answer its health check in time "
                "(SMILEY_WEB_WORKER_START_SECONDS); starting a new one"
            )
            record.args = ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def log_web_worker_restarts() -> None:
    """For the `smiley web --workers N` supervisor process: a replaced web process is a
    warning in the log."""
    supervisor = logging.getLogger("uvicorn.error")
    if not any(isinstance(found, _WorkerRestarts) for found in supervisor.filters):
        supervisor.addFilter(_WorkerRestarts())
