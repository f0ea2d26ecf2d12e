from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.settings import Environment, load_settings


def test_the_twin_names_its_buckets_after_its_own_account() -> None:
    twin = load_settings("local", local={"account": "111111111111"})
    other = load_settings("local", local={"account": "222222222222"})
    assert twin.raw_bucket == "flightpipe-raw-local-111111111111"
    assert len({twin.raw_bucket, twin.dimension_bucket, other.raw_bucket}) == 3


def test_an_aws_environment_has_no_account_and_only_the_buckets_it_is_given() -> None:
    """On AWS, CDK names the buckets: a bucket is given (``storage.buckets``) or not known."""
    with pytest.raises(ValidationError, match="account"):
        load_settings("prod", account="111111111111")
    prod = load_settings("prod", storage={"buckets": {"raw": "cdk-named-raw"}})
    assert prod.raw_bucket == "cdk-named-raw"
    with pytest.raises(ValueError, match=r"'dim' bucket .* storage\.buckets"):
        _ = prod.dimension_bucket
    # What the jobs are created with names no bucket it was not given.
    assert prod.job_settings().storage.buckets == {"raw": "cdk-named-raw"}


def test_environment_defaults_differ_visibly() -> None:
    assert load_settings("local").timing.poll_interval_seconds < 1
    assert load_settings("prod").timing.poll_interval_seconds >= 15
    assert load_settings("prod").warehouse.workgroup == "flightpipe-prod"


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTPIPE_ENV", "staging")
    monkeypatch.setenv("FLIGHTPIPE_LOCAL__S3_PORT", "6001")
    monkeypatch.setenv("FLIGHTPIPE_TIMING__POLL_INTERVAL_SECONDS", "3")
    settings = load_settings()
    assert settings.env is Environment.STAGING
    assert settings.local.s3_port == 6001
    assert settings.timing.poll_interval_seconds == 3
    # Untouched values of the same section keep the environment's defaults.
    assert settings.timing.lock_wait_seconds == 60


def test_explicit_overrides_win_over_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTPIPE_LOCAL__STATE_DIR", "/from/env")
    settings = load_settings("local", local={"state_dir": "/explicit"})
    assert settings.local.state_dir == Path("/explicit")


def test_settings_are_frozen_and_reject_unknown_keys() -> None:
    settings = load_settings("local")
    with pytest.raises(ValidationError):
        settings.env = Environment.PROD  # type: ignore[misc]
    with pytest.raises(ValidationError):
        load_settings("local", storage={"raw_prefx": "x/"})


def test_a_validation_batch_longer_than_the_job_timeout_is_refused_naming_the_settings() -> None:
    with pytest.raises(ValueError, match=r"validation.batch_seconds \+ validation.claim_seconds"):
        load_settings("local", validation={"batch_seconds": 700, "claim_seconds": 300})


def test_two_zones_cannot_hold_a_redshift_workgroup_and_the_error_names_the_setting() -> None:
    with pytest.raises(ValidationError, match=r"aws\.availability_zones names 2 distinct zone"):
        load_settings("dev", aws={"availability_zones": ("us-east-1a", "us-east-1b")})
    # A workgroup deployed elsewhere needs no zones of this stack's.
    imported = load_settings(
        "dev",
        aws={"availability_zones": ("us-east-1a", "us-east-1b"), "existing_workgroup": True},
    )
    assert imported.aws.existing_workgroup
    with pytest.raises(ValidationError, match=r"'eu-west-1a' is not in us-east-1"):
        load_settings("dev", aws={"availability_zones": ("eu-west-1a", "eu-west-1b", "eu-west-1c")})
    with pytest.raises(ValidationError, match=r"aws\.vpc_cidr or aws\.report_allowed_cidrs"):
        load_settings("dev", aws={"report_allowed_cidrs": ("10.0.0.300/32",)})


def test_a_variable_for_one_nested_value_keeps_the_environments_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings("dev").aws.load_job.flex
    monkeypatch.setenv("FLIGHTPIPE_AWS__LOAD_JOB__WORKERS", "6")
    dev = load_settings("dev")
    assert dev.aws.load_job.workers == 6
    assert dev.aws.load_job.flex, "the variable replaced the environment's whole load_job"
    assert dev.aws.egress == "nat"


def test_the_report_allow_list_takes_ipv4_networks_only() -> None:
    assert load_settings("dev", aws={"report_allowed_cidrs": ("203.0.113.0/24",)})
    with pytest.raises(ValidationError, match=r"aws\.vpc_cidr or aws\.report_allowed_cidrs"):
        load_settings("dev", aws={"report_allowed_cidrs": ("2001:db8::/32",)})


def test_values_aws_would_refuse_fail_with_the_setting_named() -> None:
    with pytest.raises(ValidationError, match=r"aws\.redshift_base_capacity: 12 RPUs"):
        load_settings("dev", aws={"redshift_base_capacity": 12})
    assert load_settings("dev", aws={"redshift_base_capacity": 32}).aws.redshift_base_capacity == 32
    with pytest.raises(ValidationError, match=r"storage\.bucket_prefix: .* 63 characters"):
        load_settings("staging", storage={"bucket_prefix": "a-very-long-bucket-prefix-for-us"})
    with pytest.raises(ValidationError, match=r"workflow\.on_call_sms: '555-0100'"):
        load_settings("dev", workflow={"on_call_sms": ("555-0100",)})
    with pytest.raises(ValidationError, match=r"'on-call' is no address"):
        load_settings("dev", aws={"operations_emails": ("on-call",)})
    with pytest.raises(ValidationError, match=r"G\.025X"):
        load_settings("dev", aws={"load_job": {"worker_type": "G.025X"}})


def _github(**given: object) -> object:
    return load_settings("prod", aws={"github": given}).aws.github


def test_the_oidc_subjects_render_as_github_documents_them() -> None:
    """https://docs.github.com/en/actions/reference/security/oidc: the default
    ``repo:ORG/REPO:environment:NAME``, the immutable ``repo:OWNER@OWNER-ID/REPO@REPO-ID:...``,
    and a custom template's claims as ``key:value`` in order, ``context`` bare."""
    default = load_settings("prod", aws={"github": {"repository": "octo-org/octo-repo"}})
    assert default.aws.github.subject("environment:prod") == (
        "repo:octo-org/octo-repo:environment:prod"
    )
    assert default.aws.github.subject("pull_request") == "repo:octo-org/octo-repo:pull_request"
    immutable = load_settings(
        "prod",
        aws={
            "github": {
                "repository": "octo-org/octo-repo",
                "immutable_subject": True,
                "repository_owner_id": 123456,
                "repository_id": 456789,
            }
        },
    )
    assert immutable.aws.github.subject("environment:prod") == (
        "repo:octo-org@123456/octo-repo@456789:environment:prod"
    )
    custom = load_settings(
        "prod",
        aws={
            "github": {
                "subject_claims": ("repository_owner", "context"),
                "repository": "monalisa/flights",
            }
        },
    )
    assert custom.aws.github.subject("pull_request") == "repository_owner:monalisa:pull_request"


def test_a_subject_the_roles_could_not_trust_exactly_fails_with_the_setting_named() -> None:
    with pytest.raises(ValidationError, match=r"without 'context' names no environment"):
        _github(subject_claims=("repo",))
    with pytest.raises(ValidationError, match=r"job_workflow_ref cannot be known"):
        _github(subject_claims=("repo", "context", "job_workflow_ref"))
    with pytest.raises(ValidationError, match=r"needs repository_id: give aws\.github\.repo"):
        _github(subject_claims=("repository_id", "context"))
    with pytest.raises(ValidationError, match=r"needs repository_owner_id"):
        _github(immutable_subject=True, repository_id=1)
    with pytest.raises(ValidationError, match=r"'flightpipe' is not owner/name"):
        _github(repository="flightpipe")
