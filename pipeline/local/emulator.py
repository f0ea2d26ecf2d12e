"""Fixes to the AWS emulator (moto), each one a gap that would make the local twin lie.

Every fix is pinned to the moto version it was written against (``MOTO_VERSION``): ``apply``
refuses any other version, so an upgrade makes someone re-check each fix instead of silently
running patched code over changed internals. ``tests/test_emulator.py`` shows each gap on
unpatched moto and fails when an upgrade closes one, so the fix can then be deleted.

The fixes:

- ``glue_sync``: ``arn:aws:states:::glue:startJobRun.sync`` fails in moto with
  ``'NoneType' object has no attribute 'interrupt_all'``: its Glue integration has no
  ``.waitForTaskToken`` endpoint, and the shared ``.sync`` code always releases one. The fix
  runs the same ``.sync`` poll without that endpoint.
- ``aws_sdk_service_names``: errors of ``aws-sdk:glue:*`` tasks are named ``glue.<Error>``,
  where AWS says ``Glue.<Error>``, so Retry and Catch on the AWS names never match; and
  ``aws-sdk:redshiftdata:*`` fails as an unknown service (boto3 calls it ``redshift-data``).
- ``pascal_case_members``: Step Functions spells every parameter and result member in
  PascalCase, whatever the service API does. moto hands ``states:startExecution`` and
  ``aws-sdk:*`` parameters to boto3 as written (``StateMachineArn`` where the API wants
  ``stateMachineArn``; the Redshift Data API's ``Parameters`` items want ``name`` and
  ``value``), so the task fails with ``States.Runtime``, and returns results as the API
  spells them. The fix maps both ways along the service's botocore model, and hands a
  streamed body (S3 GetObject's) over as text, as moto's own mapping, which it replaces, did.
- ``timestamps_in_results``: service results keep botocore's ``datetime`` objects (GetCrawler's
  times), so DescribeExecution of any run that kept one in its state fails with
  a 500 (``datetime is not JSON serializable``). AWS hands timestamps to the state as
  ISO-8601 strings; the fix does too. Not for a ``glue:startJobRun.sync`` result, which
  moto puts in the state after this hook: the definitions select from it (ResultSelector).
- ``cached_clients``: every task of every execution builds a new boto3 client for the service
  it calls (0.2 s to 1 s on two busy cores, several times per run). The fix keeps one client
  per service, region and credentials (boto3 clients are thread-safe), with a connection pool
  for as many executions as a backfill runs at once: with botocore's 10, the calls beyond ten
  at a time each opened a new connection (and the server a thread for it) and dropped it.
- ``parsed_once``: every execution parses its state machine's definition again (ANTLR, a
  fraction of a second of CPU for the main machine), and every evaluation of a path (each
  Choice rule, parameter and ResultPath of every state entered) builds a new JSONPath parser
  and parses the path again. With hundreds of executions in a backfill, the two were most of
  the endpoint's CPU. The fix parses each definition and each path once and shares what it
  parsed: a parsed path holds no state, nor do the parsed states of a definition without
  Map or Parallel states (those keep a run's branch workers on themselves, so a definition
  with one is parsed for each execution, as before).
- ``fail_error_paths``: a Fail state whose ``ErrorPath`` selects an error named ``States.*``
  (``States.TaskFailed``, the error of every failed Glue job run) ends the execution with a
  ``ValueError`` from moto instead of that error: moto checks the path's value as if it were a
  custom error name written in the definition. AWS passes it through.
- ``job_run_outcomes``: moto's GetJobRun has no ``ErrorMessage`` and reports a completion time
  and an execution time of 123 s from the start. The fix reports what the run recorded
  (``error_message``, ``completed_on``, ``execution_seconds``), so a failed run's error
  reaches the state machine's Catch as on AWS.
- ``listing_without_copies``: ListObjectVersions deep-copies every version of every key in
  the bucket, content included, for each page it returns: listing a backfill's 50 validated
  copies took half a second, because of the 200 MB beside them. The fix copies the versions
  without their content, which the listing never reads.
- ``missing_object_errors``: an ``aws-sdk:s3:headObject`` of a key with no current version
  fails as ``s3.ClientErrorException`` (a HEAD's 404 has no body to name the error). AWS
  names it ``S3.NoSuchKeyException``: HeadObject's one error in S3's API model, and aws-sdk
  task errors are the service's exception names
  (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html).
- ``job_runs_newest_first``: GetJobRuns returns a job's runs oldest first; AWS returns the
  newest first (https://docs.aws.amazon.com/glue/latest/webapi/API_GetJobRuns.html), so the
  runs in flight are on the first page, where the state machine looks for them.
- ``events_to_state_machines``: an EventBridge rule whose target is a state machine does
  nothing (moto raises NotImplementedError, swallowed for S3 events). The fix starts an
  execution with the event as input, as the AWS rule does.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import sys
import threading
from collections.abc import Callable
from functools import cache
from typing import Any, Final

MOTO_VERSION: Final = "5.2.5"

log = logging.getLogger(__name__)

# aws-sdk integration service name -> the prefix of its error names on AWS.
_AWS_SDK_ERROR_PREFIXES: Final = {"glue": "Glue", "redshiftdata": "RedshiftData", "s3": "S3"}
# aws-sdk integration service name -> boto3's name of the service, where they differ.
_AWS_SDK_BOTO_NAMES: Final = {"redshiftdata": "redshift-data"}

_CONNECTIONS_PER_CLIENT: Final = 500
"""The interpreter's connections kept open per service: a backfill's executions call at once."""

_JOB_RUN_ENDED: Final = frozenset({"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR"})


def replace(owner: Any, name: str, replacement: Any) -> Any:
    """Replace ``owner.name`` (a class's method, a module's name); returns what was there."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    return original


class EmulatorVersionError(RuntimeError):
    """The installed moto is not the version the fixes were written for."""


def glue_sync() -> None:
    """Let ``glue:startJobRun.sync`` poll the job run to its end, as on AWS."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_glue as glue,
    )

    def eval_integration_pattern(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        # The upstream method minus the callback endpoint Glue does not have: Glue supports
        # only .sync, whose outcome is the final GetJobRun or the error it raised.
        task_output = env.stack.pop()
        self.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()
        env.stack.append(task_output)
        resolver = self._build_sync_resolver(
            env=env,
            resource_runtime_part=resource_runtime_part,
            normalised_parameters=normalised_parameters,
            state_credentials=state_credentials,
        )
        env.stack.append(
            self._eval_sync(
                env=env,
                sync_resolver=resolver,
                timeout_seconds=timeout_seconds,
                callback_endpoint=None,
                heartbeat_endpoint=None,
            )
        )

    replace(glue.StateTaskServiceGlue, "_eval_integration_pattern", eval_integration_pattern)


def aws_sdk_service_names() -> None:
    """Name ``aws-sdk`` task errors the AWS way (``Glue.CrawlerRunningException``), and call
    services by boto3's names."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    aws_sdk._SERVICE_ERROR_NAMES.update(_AWS_SDK_ERROR_PREFIXES)
    state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES.update(
        _AWS_SDK_BOTO_NAMES
    )


@cache
def _service_model(name: str) -> Any:
    """botocore's model of a service, by the name ASL uses (``redshiftdata``, ``states``)."""
    import botocore.session

    session = botocore.session.get_session()
    wanted = {"states": "stepfunctions", "sfn": "stepfunctions"}.get(name, name)
    for service in session.get_available_services():
        if service.replace("-", "") == wanted:
            return session.get_service_model(service)
    raise KeyError(f"no service model for {name!r}")


def _members(value: Any, shape: Any, api_names: bool) -> Any:
    """``value`` with its structures' member names as the API spells them (``api_names``) or
    as Step Functions does (PascalCase); map keys and values are left alone."""
    kind = getattr(shape, "type_name", None)
    if kind == "structure" and isinstance(value, dict):
        members = {name.lower(): name for name in shape.members}
        renamed = {}
        for key, item in value.items():
            name = members.get(key.lower())
            if name is None:
                renamed[key] = item
                continue
            renamed[name if api_names else name[:1].upper() + name[1:]] = _members(
                item, shape.members[name], api_names
            )
        return renamed
    if kind == "list" and isinstance(value, list):
        return [_members(item, shape.member, api_names) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: _members(item, shape.value, api_names) for key, item in value.items()}
    return value


def pascal_case_members() -> None:
    """Translate task parameters to the API's member names, and results to PascalCase."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn,
    )

    def operation(task: Any) -> Any:
        model = _service_model(task.resource.api_name)
        names = {name.lower(): name for name in model.operation_names}
        return model.operation_model(names[task.resource.api_action.lower()])

    def parameters(self: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        renamed = _members(parameters, operation(self).input_shape, api_names=True)
        parameters.clear()
        parameters.update(renamed)

    def response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(response, dict):
            # As moto's own normalization does (which this replaces): a streamed body, S3
            # GetObject's, is handed to the state as text.
            for name, value in response.items():
                response[name] = self._from_boto_response_value(value)
            renamed = _members(response, operation(self).output_shape, api_names=False)
            response.clear()
            response.update(renamed)
        _timestamps_to_text(response)

    for service in (sfn.StateTaskServiceSfn, aws_sdk.StateTaskServiceAwsSdk):
        normalise = service._normalise_parameters

        def chained(
            self: Any, parameters_: dict[str, Any], *args: Any, _first: Any = normalise, **kw: Any
        ) -> None:
            _first(self, parameters_, *args, **kw)
            parameters(self, parameters_)

        replace(service, "_normalise_parameters", chained)
        replace(service, "_normalise_response", response)


def _timestamps_to_text(value: Any) -> None:
    """Replace, in place, every datetime in nested dicts and lists by its ISO-8601 text."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in list(items):
        if isinstance(item, dt.datetime):
            value[key] = item.isoformat()
        else:
            _timestamps_to_text(item)


def timestamps_in_results() -> None:
    """Hand service results to the state with timestamps as text, as AWS does."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )

    def response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        _timestamps_to_text(response)

    # The base class's hook does nothing; services that override it keep their own.
    replace(state_task_service.StateTaskService, "_normalise_response", response)


def cached_clients() -> None:
    """Build each boto3 client the interpreter uses once, not once per task, with a larger
    connection pool."""
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.utils import boto_client

    class PooledConfig(Config):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "max_pool_connections": _CONNECTIONS_PER_CLIENT})

    # moto's builder makes its clients' Config by this name.
    replace(boto_client, "Config", PooledConfig)
    build = boto_client.boto_client_for
    clients: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, repr(state_credentials))
        with lock:
            if key not in clients:
                clients[key] = build(region, service, state_credentials)
            return clients[key]

    replace(boto_client, "boto_client_for", client_for)
    # The services imported the function by name.
    for module in list(sys.modules.values()):
        if (
            getattr(module, "__name__", "").startswith("moto.stepfunctions.parser")
            and getattr(module, "boto_client_for", None) is build
        ):
            replace(module, "boto_client_for", client_for)


def parsed_once() -> None:
    """Parse each definition (without Map or Parallel states) and each JSONPath once."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.utils import json_path
    from moto.stepfunctions.parser.backend import execution_worker

    # Both modules imported their parser by name: jsonpath_ng's and its extended syntax's.
    for module in (json_path, result_path):
        replace(module, "parse", cache(module.parse))

    @cache
    def shared_program(definition: str) -> Any | None:
        if _state_types(json.loads(definition)) & {"Map", "Parallel"}:
            return None
        return AmazonStateLanguageParser.parse(definition)[0]

    parse_each_time = execution_worker.ExecutionWorker._get_evaluation_entrypoint

    def entrypoint(self: Any) -> Any:
        program = shared_program(self._evaluation_details.state_machine_details.definition)
        return parse_each_time(self) if program is None else program

    replace(execution_worker.ExecutionWorker, "_get_evaluation_entrypoint", entrypoint)


def _state_types(definition: dict[str, Any]) -> set[str]:
    """The types of a definition's states, its branches' and iterators' included."""
    types = set()
    for state in definition.get("States", {}).values():
        types.add(state.get("Type"))
        for branch in [
            *state.get("Branches", []),
            state.get("Iterator"),
            state.get("ItemProcessor"),
        ]:
            if branch:
                types |= _state_types(branch)
    return types


def fail_error_paths() -> None:
    """Let a Fail state end the execution with whatever error its ErrorPath selects."""
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.state.fail import state_fail

    class FailStateErrorName(ErrorName):
        """An error a Fail state passes on: caught earlier, so any name AWS gave it."""

    replace(state_fail, "CustomErrorName", FailStateErrorName)


def job_run_outcomes() -> None:
    """Report a job run's error message, completion time and execution time."""
    from moto.glue import models

    as_dict = models.FakeJobRun.as_dict

    def job_run(self: Any) -> dict[str, Any]:
        run: dict[str, Any] = as_dict(self)
        run.pop("CompletedOn", None)
        run["ExecutionTime"] = getattr(self, "execution_seconds", 0)
        if getattr(self, "completed_on", None) and self.status in _JOB_RUN_ENDED:
            run["CompletedOn"] = self.completed_on
        if getattr(self, "error_message", None):
            run["ErrorMessage"] = self.error_message
        return run

    replace(models.FakeJobRun, "as_dict", job_run)


def events_to_state_machines(start_execution: Callable[[str, str], None]) -> None:
    """Deliver events to Step Functions targets: ``start_execution(state_machine_arn, input)``.

    The event is delivered whole, as AWS delivers it to a target without an input transformer,
    its ``time`` an ISO-8601 string (moto keeps the epoch seconds it was created with). Input
    transformers are not emulated (the project's rules have none): such a target is refused.
    Other targets keep moto's own delivery. A failed start is logged and does not stop the
    other targets: moto swallows errors of S3-event delivery, which would hide it.
    """
    from moto.core.utils import iso_8601_datetime_without_milliseconds, utcfromtimestamp
    from moto.events import models
    from moto.utilities.arns import parse_arn

    deliver = models.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        machines = [t for t in self.targets if parse_arn(t["Arn"]).service == "states"]
        if len(machines) < len(self.targets):
            targets, self.targets = self.targets, [t for t in self.targets if t not in machines]
            try:
                deliver(self, original_event, transform_input)
            finally:
                self.targets = targets
        if not machines or not self.event_pattern.matches_event(original_event):
            return
        event = dict(original_event)
        if isinstance(event.get("time"), int | float):
            event["time"] = iso_8601_datetime_without_milliseconds(utcfromtimestamp(event["time"]))
        for target in machines:
            if "InputTransformer" in target:
                raise NotImplementedError("input transformers of state machine targets")
            try:
                start_execution(target["Arn"], json.dumps(event))
            except Exception:
                log.exception("could not start %s for event %s", target["Arn"], event.get("id"))

    replace(models.Rule, "send_to_targets", send_to_targets)


def listing_without_copies() -> None:
    """List object versions over copies of the versions that share the stored content."""
    from moto.s3 import models

    class ListedKey(models.FakeKey):
        """A listed version: the stored one's attributes, its content buffer included."""

        def dispose(self, garbage: bool = False) -> None:
            """Nothing: the stored version owns the buffer (moto disposes keys on deletion)."""

    def without_content(version: Any) -> Any:
        # The listing sets is_latest on what it lists, so the stored versions are not listed
        # themselves. The ETag is computed (and kept) on the stored version first, under its
        # lock, so no listed copy ever reads the shared buffer.
        if isinstance(version, models.FakeKey):
            with version.lock:
                _ = version.etag
            clone = object.__new__(ListedKey)
        else:
            clone = object.__new__(type(version))
        clone.__dict__.update(version.__dict__)
        return clone

    class Copying:
        """``copy`` as moto.s3.models uses it: its one deepcopy is of a key's versions."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            kinds = (models.FakeKey, models.FakeDeleteMarker)
            if isinstance(value, list) and all(isinstance(v, kinds) for v in value):
                return [without_content(v) for v in value]
            return copy.deepcopy(value, memo)

    replace(models, "copy", Copying())


def missing_object_errors() -> None:
    """Name the 404 of an ``aws-sdk:s3:headObject`` ``S3.NoSuchKeyException``."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    original = aws_sdk.StateTaskServiceAwsSdk._normalise_exception_name

    def exception_name(norm_service_name: str, ex: Exception) -> str:
        if (
            norm_service_name == "S3"
            and isinstance(ex, ClientError)
            and ex.response["Error"].get("Code") in {"404", "NoSuchKey"}
        ):
            return "S3.NoSuchKeyException"
        name: str = original(norm_service_name, ex)
        return name

    replace(
        aws_sdk.StateTaskServiceAwsSdk, "_normalise_exception_name", staticmethod(exception_name)
    )


def job_runs_newest_first() -> None:
    """Return a job's runs newest first."""
    from moto.glue import models

    def job_runs(self: Any) -> list[Any]:
        for run in self.job_runs:
            run.advance()
        return list(reversed(self.job_runs))

    replace(models.FakeJob, "get_job_runs", job_runs)


def check_version() -> None:
    """Refuse a moto other than the one these fixes were written against."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise EmulatorVersionError(
            f"moto {moto.__version__} is installed, the emulator fixes in {__name__} are for "
            f"moto {MOTO_VERSION}: run tests/test_emulator.py, drop the fixes upstream made "
            "unnecessary, then update MOTO_VERSION"
        )


def apply(start_execution: Callable[[str, str], None]) -> None:
    """Apply every fix (once per process, before the emulator serves a request)."""
    check_version()
    glue_sync()
    aws_sdk_service_names()
    pascal_case_members()
    timestamps_in_results()
    cached_clients()
    parsed_once()
    fail_error_paths()
    job_run_outcomes()
    listing_without_copies()
    missing_object_errors()
    job_runs_newest_first()
    events_to_state_machines(start_execution)
