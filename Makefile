# flightpipe: `make run` sets up what is missing and runs the pipeline on the local twin;
# `make test` runs the whole test suite. Both work on a fresh Debian machine.

SHELL := /bin/bash
PYTHON ?= python3
# uv lives in a virtual environment of its own under the state folder: nothing is installed
# into the system's Python (which PEP 668 forbids on Debian and Ubuntu anyway).
UV_HOME := .flightpipe/tools/uv
UV := $(UV_HOME)/bin/uv
UV_VERSION := 0.13.8
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
SAMPLE := .flightpipe/sample
SAMPLE_DAYS ?= 7
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup system browser python node run test lint format bench package synth templates diff review review-diff review-comment deploy bootstrap release smoke health deployment-failed down clean

setup: system python node

# System packages: Java for Spark, the PostgreSQL server and client for the local warehouse,
# venv for the Python that makes uv's environment (Debian ships it apart).
system:
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq python3-venv; }
	@command -v java >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }
	@{ ls /usr/lib/postgresql/*/bin/initdb && command -v psql; } >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && \
		  $(SUDO) apt-get install -y -qq postgresql postgresql-client; }

# Headless Chromium, for the test that renders the quality report as a browser does.
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq chromium; }

# Python packages, exactly as locked in uv.lock.
python:
	@$(UV) --version 2>/dev/null | grep -q "$(UV_VERSION)" || { \
		$(PYTHON) -m venv --clear $(UV_HOME) && \
		$(UV_HOME)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"; }
	@$(UV) sync --frozen --quiet

# JavaScript packages, exactly as locked in package-lock.json (the quality report's browser
# assets), into node_modules/; again only when the lock file changes.
node: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq nodejs npm; }
	@npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

run: setup
	$(UV) run flightpipe sample --days $(SAMPLE_DAYS) --out $(SAMPLE)
	$(UV) run flightpipe ingest $(SAMPLE)

test: setup browser
	$(UV) run pytest

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports --no-cache --no-logo

format: python
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: setup
	$(UV) run python -m tests.benchmarks.etl $(BENCH_ARGS)

# The AWS Glue artifact in dist/glue/ (the jobs' entry scripts and flightpipe.gluewheels.zip)
# and the report's static files in dist/reports/, from uv.lock and the npm packages, with no
# AWS account. Always run: the module knows what they are made of and leaves them alone when
# that did not change.
package: python node
	$(UV) run python -m pipeline.packaging

# The cloud assembly of every environment (dev, staging, prod) in cdk.out/, with no AWS account:
# the CDK CLI pinned in package.json runs the app (cdk/app.py), which cdk-nag checks.
CDK := node_modules/.bin/cdk
synth: package
	$(CDK) synth --quiet --app "$(UV) run python -m cdk.app" --output cdk.out

# A recipe's first line where cdk.out/ must hold a cloud assembly: fails saying what to do.
need_assembly = @test -f cdk.out/manifest.json || { echo "no cloud assembly in cdk.out/: $(1)" >&2; exit 1; }

# cfn-lint over every template of the assembly: an error fails, warnings are shown.
templates:
	$(call need_assembly,run make synth)
	$(UV) run cfn-lint --non-zero-exit-code error cdk.out/*.template.json

# One environment's stack from that assembly: what would change, or deploy it (credentials for
# the environment's account needed; docs/DEPLOY.md).
ENV ?= dev
diff: synth
	$(CDK) diff --app cdk.out flightpipe-$(ENV)

deploy: synth
	$(CDK) deploy --app cdk.out flightpipe-$(ENV) --require-approval broadening

# A pull request's review (.github/workflows/ci.yml): what the assembly in cdk.out would change
# in the environment, read with the review role, which may only read the stack's template
# (`--method template` compares templates: no change set, so no deploy role).
review-diff: node
	@mkdir -p $(or $(DIFFS),diffs)
	$(CDK) diff --app cdk.out --method template flightpipe-$(ENV) \
		> $(or $(DIFFS),diffs)/diff-$(ENV).txt 2>&1

# The pull request's deployment review (cdk/review.py) of the assembly in cdk.out (make synth)
# against another's, BASE (the base branch's, synthesized apart), in REVIEW; DIFFS names a
# folder of diff-<env>.txt when there are diffs (make review-diff). Exit status 1 when the head
# breaks a rule the report names, after writing it.
BASE ?= base.out
REVIEW ?= build/review.md
review: python
	$(call need_assembly,run make synth)
	@mkdir -p $(dir $(REVIEW))
	$(UV) run python -m cdk.review --base $(BASE) --head cdk.out \
		$(if $(DIFFS),--diffs $(DIFFS)) --out $(REVIEW)

# That review, REVIEW, as the one comment of pull request PR (cdk/review_comment.py), updated in
# place on every run: GH_TOKEN (or GITHUB_TOKEN) and GITHUB_REPOSITORY from the environment, as
# GitHub Actions gives them; the job needs `pull-requests: write`.
PR ?=
review-comment: python
	@test -n "$(PR)" || { echo "no pull request: make review-comment PR=<number>" >&2; exit 1; }
	$(UV) run python -m cdk.review_comment --pr $(PR) --report $(REVIEW)

# Once per environment, by an administrator: the roles GitHub Actions deploys and reviews with
# (cdk/delivery.py). The workflows never deploy this stack.
bootstrap: synth
	$(CDK) deploy --app cdk.out flightpipe-$(ENV)-delivery --require-approval broadening

# CD (.github/workflows/deploy-environment.yml): deploy the assembly the build job synthesized
# and handed on, never a synthesis of its own; the GitHub environment's reviewers approved it.
release: node
	$(call need_assembly,download the build's)
	$(CDK) deploy --app cdk.out flightpipe-$(ENV) --require-approval never --progress events

# After a deployment: the smoke test (a synthetic day through the pipeline, then every trace
# removed), or in production the health check, which changes nothing.
smoke: python
	$(UV) run flightpipe --env $(ENV) smoke

health: python
	$(UV) run flightpipe --env $(ENV) health

# When a deployment or its check failed: one message to the environment's operations topic,
# with the workflow run's address (RUN_URL).
deployment-failed: python
	$(UV) run flightpipe --env $(ENV) deployment-failed --run-url "$(RUN_URL)"

down: python
	$(UV) run flightpipe local down

# Stops the twin and removes all it keeps (state folder, and under root its PostgreSQL folder).
clean: python
	$(UV) run flightpipe local clean
