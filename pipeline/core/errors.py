"""How an error reads where people see it: alerts, job run messages, the CLI's tables.

A Spark failure reaches Python as a ``Py4JJavaError`` whose text is the JVM's whole stack
trace, every ``Caused by`` of it; on-call needs the one line that says what went wrong. The
full error belongs in the job's log, and the message says where that log is.
"""

from __future__ import annotations

import re
from typing import Final

# A stack frame of the JVM ("\tat org.apache...", "\t... 23 more") or of Python.
_FRAME: Final = re.compile(r"^\s+(at |\.\.\. \d+ more)|^Traceback |^\s+File \"")
# The Java class before a JVM message: "org.apache.spark.SparkException: ".
_JAVA_CLASS: Final = re.compile(r"^([a-z]\w*\.)+[A-Z][\w$]*: ")
# Spark errors that only wrap the one that matters.
_WRAPPERS: Final = ("[TASK_WRITE_FAILED]", "Job aborted due to stage failure", "[FAILED_READ_FILE")


def _without_classes(line: str) -> str:
    while (shorter := _JAVA_CLASS.sub("", line, count=1)) != line:
        line = shorter
    return line


def plain_lines(text: str) -> list[str]:
    """The lines of an error's text that are not stack frames."""
    return [line for line in text.splitlines() if line.strip() and not _FRAME.match(line)]


def is_jvm_error(text: str) -> bool:
    """Whether the text is a JVM error relayed by Py4J (``An error occurred while calling``)."""
    return text.startswith("An error occurred while calling") or "\tat org.apache." in text


def plain_error(exc: BaseException) -> str:
    """An exception as on-call reads it: its type and message, or for a JVM error the message
    of the outermost error that says what happened and its root cause, on one line."""
    text = str(exc).strip()
    if not is_jvm_error(text):
        lines = plain_lines(text)
        return f"{type(exc).__name__}: {chr(10).join(lines)}" if lines else type(exc).__name__
    # The JVM's message, then one "Caused by:" line per cause, the root last.
    lines = plain_lines(text)[1:]
    causes = lines[:1] + [line for line in lines if line.startswith("Caused by: ")]
    messages = [_without_classes(c.removeprefix(": ").removeprefix("Caused by: ")) for c in causes]
    meaningful = list(dict.fromkeys(m for m in messages if m and not m.startswith(_WRAPPERS)))
    if not meaningful:
        return "Spark failed (the job's log has the whole error)"
    first, root = meaningful[0], meaningful[-1]
    return f"Spark: {first}" if first == root else f"Spark: {first} ({root})"
