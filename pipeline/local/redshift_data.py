"""The twin's Redshift Data API: moto's ``redshift-data`` with its statements run on the
twin's PostgreSQL, as Redshift would run them (``pipeline.local.redshift_sql`` translates what
PostgreSQL cannot run).

moto 5.2.5 keeps an ExecuteStatement and answers it with a canned result, and has no
BatchExecuteStatement. Here both run their SQL on a thread, in the database they name:

- ExecuteStatement runs one statement, BatchExecuteStatement its statements in order, as one
  transaction: "By default, the SQL statements are run as a single transaction. If any SQL
  statement fails, all work is rolled back" (botocore's model of BatchExecuteStatement, and
  https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_BatchExecuteStatement.html).
  The twin runs only that default ``ExecutionMode``, TRANSACTION, and refuses the other.
- Both refuse what the Data API refuses before running anything, with ValidationException:
  a statement over 100 KB ("The maximum query statement size is 100 KB",
  https://docs.aws.amazon.com/redshift/latest/mgmt/data-api.html, "Considerations when
  calling the Amazon Redshift Data API"; the API's message is "Cannot process query string
  larger than 100kB"), and a batch of more than 40 statements (``SqlList`` in the model has
  ``min`` 1 and ``max`` 40; botocore checks only the minimum before sending).
- The call returns at once with the statement SUBMITTED; DescribeStatement reports it
  STARTED, then FINISHED or FAILED with its ``Error``; a batch's ``SubStatements`` are its
  statements, each ``Id`` the batch's with the statement's number after a colon, as the
  model documents. The first DescribeStatement always reports STARTED, however quick the
  statement, so a caller's poll loop really goes round. GetStatementResult returns a
  statement's rows once FINISHED and refuses it before with ValidationException.
- ListStatements, which moto 5.2.5 lacks, lists the statements run (the bench counts them):
  filtered by ``Database`` and ``Status`` (``ALL`` when not given), ``MaxResults`` at a time
  (at most 100, ``ListStatementsLimit`` in the model) with a ``NextToken`` to the rest. Each
  is described by the model's ``StatementData`` fields the twin knows: ``Id``, ``Status``,
  ``CreatedAt``, ``UpdatedAt``, ``IsBatchStatement`` and ``QueryString`` (a batch's
  ``QueryStrings``). The twin has one caller, so ``RoleLevel`` changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from pipeline.local.redshift_sql import LoadRefusedError, RedshiftOnPostgres, UntranslatedError

STATEMENT_MAX_BYTES: Final = 100_000
"""The most bytes of UTF-8 one statement may take: the documented 100 KB, a KB read as 1,000
bytes, the stricter of the two readings, so nothing the twin accepts is too large on AWS."""
STATEMENT_TOO_LARGE: Final = "Cannot process query string larger than 100kB"
BATCH_MAX_STATEMENTS: Final = 40
"""The most statements one BatchExecuteStatement may carry (``SqlList``'s ``max``)."""
_TRANSACTION: Final = "TRANSACTION"
LIST_MAX_RESULTS: Final = 100
"""The most statements one ListStatements answer holds (``ListStatementsLimit``'s ``max``)."""
_ALL: Final = "ALL"

# Statuses of a Redshift Data API statement that has ended.
_STATEMENT_ENDED: Final = frozenset({"FINISHED", "FAILED", "ABORTED"})

Patch = Callable[[Any, str, Any], object]
"""Sets an attribute of a moto class: ``setattr``, or a test's ``monkeypatch.setattr``."""


def refusal(sqls: Sequence[str]) -> str | None:
    """Why the Data API refuses to run ``sqls`` as one call, in its words; None if it runs.

    The batch's constraint message has the shape of every AWS JSON API's model validation.
    """
    if not 1 <= len(sqls) <= BATCH_MAX_STATEMENTS:
        bound = (
            "greater than or equal to 1"
            if not sqls
            else f"less than or equal to {BATCH_MAX_STATEMENTS}"
        )
        return (
            "1 validation error detected: Value at 'sqls' failed to satisfy constraint: "
            f"Member must have length {bound}"
        )
    if any(len(sql.encode()) > STATEMENT_MAX_BYTES for sql in sqls):
        return STATEMENT_TOO_LARGE
    return None


@dataclass
class RedshiftDataApi:
    """The Data API stand-in: ``install`` hooks it into moto's ``redshift-data``."""

    server_url: str
    """The PostgreSQL server whose databases stand for Redshift's."""
    s3: Any
    """A boto3 S3 client, which a COPY reads staged objects with."""
    _runner: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="statement")
    )

    @property
    def warehouse(self) -> RedshiftOnPostgres:
        return RedshiftOnPostgres(self.server_url, self.s3)

    def install(self, patch: Patch = setattr) -> None:
        from moto.redshiftdata import models, responses
        from moto.redshiftdata.exceptions import ValidationException

        execute = models.RedshiftDataAPIServiceBackend.execute_statement
        describe = models.RedshiftDataAPIServiceBackend.describe_statement
        fields = models.Statement.__iter__
        api = self

        def submitted(statement: Any, sqls: Sequence[str], parameters: Any, batch: bool) -> Any:
            statement.status, statement.error, statement.described = "SUBMITTED", None, False
            statement.sqls, statement.batch = list(sqls), batch
            statement.outcome = api._runner.submit(api.run, statement.database, sqls, parameters)
            return statement

        def refuse(sqls: Sequence[str]) -> None:
            reason = refusal(sqls)
            if reason is not None:
                raise ValidationException(reason)

        def execute_statement(backend: Any, **kwargs: Any) -> Any:
            refuse([kwargs["sql"]])
            statement = execute(backend, **kwargs)
            return submitted(statement, [kwargs["sql"]], kwargs["parameters"], batch=False)

        def batch_execute_statement(
            backend: Any, *, sqls: list[str], execution_mode: str | None, **kwargs: Any
        ) -> Any:
            refuse(sqls)
            if (execution_mode or _TRANSACTION) != _TRANSACTION:
                raise ValidationException(
                    f"the twin runs a batch only as one transaction, not {execution_mode}"
                )
            statement = execute(backend, sql="", **kwargs)
            return submitted(statement, sqls, kwargs["parameters"], batch=True)

        def describe_statement(backend: Any, statement_id: str) -> Any:
            return _progressed(describe(backend, statement_id))

        def with_error(statement: Any) -> Any:
            yield from fields(statement)
            yield from _described(statement)

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
        patch(backend, "execute_statement", execute_statement)
        patch(backend, "batch_execute_statement", batch_execute_statement)
        patch(backend, "describe_statement", describe_statement)
        patch(backend, "get_statement_result", get_statement_result)
        patch(models.Statement, "__iter__", with_error)
        patch(responses.RedshiftDataAPIServiceResponse, "batch_execute_statement", _batch_response)
        patch(responses.RedshiftDataAPIServiceResponse, "list_statements", _list_response)

    def run(
        self, database: str, sqls: Sequence[str], parameters: list[dict[str, str]] | None
    ) -> tuple[list[str], list[list[dict[str, Any]]]]:
        """Run ``sqls`` as one transaction: the last one's column names, and its records as
        the Data API types their fields."""
        values: Mapping[str, str] = {p["name"]: p["value"] for p in parameters or []}
        columns, rows = self.warehouse.run(database, sqls, values)
        return columns, [[_field(v) for v in row] for row in rows]


def _batch_response(response: Any) -> Any:
    """moto's response to BatchExecuteStatement, which moto 5.2.5 lacks: the backend's call
    with the request's parameters, answered with the fields the API returns."""
    statement = response.redshiftdata_backend.batch_execute_statement(
        cluster_identifier=response._get_param("ClusterIdentifier"),
        database=response._get_param("Database"),
        db_user=response._get_param("DbUser"),
        parameters=response._get_param("Parameters"),
        secret_arn=response._get_param("SecretArn"),
        sqls=response._get_param("Sqls"),
        execution_mode=response._get_param("ExecutionMode"),
    )
    body = {
        "ClusterIdentifier": statement.cluster_identifier,
        "CreatedAt": statement.created_at,
        "Database": statement.database,
        "DbUser": statement.db_user,
        "Id": statement.id,
        "SecretArn": statement.secret_arn,
        "WorkgroupName": response._get_param("WorkgroupName"),
    }
    return 200, {}, json.dumps(body)


def _list_response(response: Any) -> Any:
    """ListStatements, which moto 5.2.5 lacks: one page of the backend's statements."""
    database = response._get_param("Database")
    status = response._get_param("Status") or _ALL
    wanted = [
        statement
        for statement in response.redshiftdata_backend.statements.values()
        if database in (None, statement.database) and status in (_ALL, statement.status)
    ]
    start = int(response._get_param("NextToken") or 0)
    end = start + (response._get_param("MaxResults") or LIST_MAX_RESULTS)
    body: dict[str, Any] = {"Statements": [_listed(s) for s in wanted[start:end]]}
    if end < len(wanted):
        body["NextToken"] = str(end)
    return 200, {}, json.dumps(body)


def _listed(statement: Any) -> dict[str, Any]:
    """A statement as ListStatements describes it (``StatementData``)."""
    batch = getattr(statement, "batch", False)
    sqls = getattr(statement, "sqls", [statement.query_string])
    return {
        "Id": statement.id,
        "Status": statement.status,
        "CreatedAt": statement.created_at,
        "UpdatedAt": statement.updated_at,
        "IsBatchStatement": batch,
        **({"QueryStrings": sqls} if batch else {"QueryString": sqls[0]}),
    }


def _progressed(statement: Any) -> Any:
    """``statement`` as a DescribeStatement finds it: STARTED when first described, then
    FINISHED or FAILED once its run has ended."""
    if statement.status in _STATEMENT_ENDED:
        return statement
    if not (statement.described and statement.outcome.done()):
        statement.status, statement.described = "STARTED", True
        return statement
    try:
        statement.columns, statement.records = statement.outcome.result()
    except Exception as exc:
        statement.status, statement.error = "FAILED", _error(exc)
    else:
        statement.status, statement.has_result_set = "FINISHED", bool(statement.columns)
        statement.result_rows = len(statement.records)
    return statement


def _described(statement: Any) -> Iterator[tuple[str, Any]]:
    """What DescribeStatement shows beyond moto's fields: the ``Error`` of a failed statement,
    and a batch's ``SubStatements``."""
    if getattr(statement, "error", None):
        yield "Error", statement.error
    if getattr(statement, "batch", False):
        yield (
            "SubStatements",
            [
                {"Id": f"{statement.id}:{n}", "QueryString": sql, "Status": statement.status}
                for n, sql in enumerate(statement.sqls, start=1)
            ],
        )


def _error(exc: Exception) -> str:
    """A failed statement's ``Error``, as Redshift words it: ``ERROR: `` and the message."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return f"ERROR: {exc.diag.message_primary}"
    if isinstance(exc, LoadRefusedError | UntranslatedError):
        return f"ERROR: {exc}"
    return str(exc)


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
