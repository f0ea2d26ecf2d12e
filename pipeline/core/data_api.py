"""Waiting for a Redshift Data API statement, as every caller of ours on the AWS side does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

ENDED_BADLY: Final = ("FAILED", "ABORTED")


class StatementError(RuntimeError):
    """A statement that ended FAILED or ABORTED; ``error`` is the Data API's ``Error``."""

    def __init__(self, statement_id: str, status: str, error: str) -> None:
        super().__init__(f"Redshift statement {statement_id} {status}: {error}")
        self.status = status
        self.error = error


def await_statement(
    data_api: Any,
    statement_id: str,
    *,
    poll_seconds: float = 5.0,
    first_poll_seconds: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll DescribeStatement until the statement ends; its last description when FINISHED.

    The first wait is ``first_poll_seconds``, doubled after each poll up to ``poll_seconds``:
    most statements end within a second, a load's batch within a minute. Raises
    ``StatementError`` when it ended FAILED or ABORTED.
    """
    pause = first_poll_seconds
    while True:
        described: dict[str, Any] = data_api.describe_statement(Id=statement_id)
        status = described["Status"]
        if status == "FINISHED":
            return described
        if status in ENDED_BADLY:
            raise StatementError(statement_id, status, str(described.get("Error")))
        sleep(pause)
        pause = min(pause * 2, poll_seconds)
