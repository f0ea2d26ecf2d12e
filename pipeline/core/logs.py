"""Logging: one JSON object per line on AWS, readable lines locally; always on stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Final

_STANDARD: Final = set(vars(logging.makeLogRecord({})))
_CHATTY: Final = ("py4j", "great_expectations")


class JsonLines(logging.Formatter):
    """One JSON object per record, extras included, for CloudWatch Logs Insights."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(json_lines: bool, verbose: bool = False) -> None:
    """Send the project's logs to stderr, so stdout carries only results.

    ``json_lines`` is for AWS (CloudWatch); locally, lines are for people.
    """
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("pipeline").setLevel(logging.INFO if verbose else logging.WARNING)
    # py4j logs every gateway connection at INFO, and GX forces INFO on some of its loggers
    # (temporary folders): a filter on the handler holds whatever levels they set themselves.
    handler.addFilter(
        lambda record: record.levelno >= logging.WARNING or not record.name.startswith(_CHATTY)
    )
