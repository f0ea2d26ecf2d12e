"""The twin's Redshift Data API: moto's ``redshift-data`` with its statements run on the
twin's PostgreSQL, as Redshift would run them."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from pipeline.local import emulator

# Statuses of a Redshift Data API statement that has ended.
_STATEMENT_ENDED: Final = frozenset({"FINISHED", "FAILED", "ABORTED"})


@dataclass
class WarehouseQueries:
    """Runs Redshift Data API statements on the twin's PostgreSQL, as Redshift would.

    moto keeps a statement and returns a canned result; here ExecuteStatement submits the SQL
    (``:name`` parameters bound by name) to run on a thread, in the database it names, on
    ``server_url``'s server. As on Redshift, the call returns at once with the statement
    SUBMITTED; DescribeStatement reports it STARTED, then FINISHED or FAILED (with its
    ``Error``); GetStatementResult returns its rows once FINISHED and refuses it before with
    ValidationException. The first DescribeStatement of a statement always reports it
    STARTED, however quick the query, so the state machine's poll loop really goes round.
    """

    server_url: str
    _runner: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="statement")
    )

    def install(self) -> None:
        from moto.redshiftdata import models
        from moto.redshiftdata.exceptions import ValidationException

        execute = models.RedshiftDataAPIServiceBackend.execute_statement
        describe = models.RedshiftDataAPIServiceBackend.describe_statement
        fields = models.Statement.__iter__
        queries = self

        def execute_statement(backend: Any, **kwargs: Any) -> Any:
            statement: Any = execute(backend, **kwargs)
            statement.status, statement.error, statement.described = "SUBMITTED", None, False
            statement.outcome = queries._runner.submit(
                queries.run, kwargs["database"], kwargs["sql"], kwargs.get("parameters") or []
            )
            return statement

        def describe_statement(backend: Any, statement_id: str) -> Any:
            statement: Any = describe(backend, statement_id)
            if statement.status in _STATEMENT_ENDED:
                return statement
            if not (statement.described and statement.outcome.done()):
                statement.status, statement.described = "STARTED", True
                return statement
            try:
                statement.columns, statement.records = statement.outcome.result()
            except Exception as exc:
                statement.status, statement.error = "FAILED", str(exc)
            else:
                statement.status, statement.has_result_set = "FINISHED", True
                statement.result_rows = len(statement.records)
            return statement

        def with_error(statement: Any) -> Any:
            yield from fields(statement)
            if getattr(statement, "error", None):
                yield "Error", statement.error

        def get_statement_result(backend: Any, statement_id: str) -> Any:
            statement: Any = describe(backend, statement_id)
            if statement.status != "FINISHED":
                raise ValidationException(
                    f"Query does not have result: the statement is {statement.status}"
                )
            columns = [
                dict(models.ColumnMetadata(None, True, True, name, 1)) for name in statement.columns
            ]
            return models.StatementResult(columns, statement.records, len(statement.records))

        backend = models.RedshiftDataAPIServiceBackend
        emulator.replace(backend, "execute_statement", execute_statement)
        emulator.replace(backend, "describe_statement", describe_statement)
        emulator.replace(backend, "get_statement_result", get_statement_result)
        emulator.replace(models.Statement, "__iter__", with_error)

    def run(
        self, database: str, sql: str, parameters: list[dict[str, str]]
    ) -> tuple[list[str], list[list[dict[str, Any]]]]:
        """The statement's column names and its records as the Data API types its fields."""
        import psycopg

        values = {p["name"]: p["value"] for p in parameters}
        # :name (not ::type) becomes psycopg's %(name)s; a literal % must be doubled first.
        bound = re.sub(r"(?<!:):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))
        with psycopg.connect(self.server_url, dbname=database, autocommit=True) as conn:
            cursor = conn.execute(bound, values)
            columns = [c.name for c in cursor.description or []]
            return columns, [[_field(v) for v in row] for row in cursor.fetchall()]


def _field(value: Any) -> dict[str, Any]:
    """One Data API field: the value under the member its type uses."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}
