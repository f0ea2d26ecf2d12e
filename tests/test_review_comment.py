"""The review's comment (``python -m cdk.review_comment``) against a stand-in for GitHub's REST
API: a real HTTP server on 127.0.0.1, under a path as on GitHub Enterprise Server
(``GITHUB_API_URL=http://127.0.0.1:PORT/api/v3``), serving one repository with one pull request.

What the stand-in imitates, and checks as GitHub does, refusing anything else:

- the endpoints of https://docs.github.com/en/rest/issues/comments: list a pull request's
  comments (``GET /repos/{owner}/{repo}/issues/{issue_number}/comments``, #list-issue-comments,
  oldest first), create one (``POST`` there, #create-an-issue-comment, 201) and update one
  (``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}``, #update-an-issue-comment),
  each written with a JSON object whose ``body`` is a string (400 when it is not JSON, 422
  without ``body``); every other path 404, every other method 501. The comments' ``user`` has
  ``login`` and ``type`` (``User`` for people, ``Bot`` for apps' bots);
- the headers: ``Authorization: Bearer <token>`` (401 ``Bad credentials`` otherwise,
  https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api),
  ``X-GitHub-Api-Version: 2022-11-28`` (400 for another,
  https://docs.github.com/en/rest/about-the-rest-api/api-versions), ``Accept:
  application/vnd.github+json`` (415 for another);
- pagination, https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api:
  30 a page unless ``per_page`` (at most 100) says otherwise, ``page``, and a ``Link`` header
  with ``rel="next"`` but on the last page, which points, as GitHub's do, at
  ``/repositories/{id}/...`` rather than the path asked for;
- a token without ``pull-requests: write`` writes nothing: 403 ``Resource not accessible by
  integration`` (https://docs.github.com/en/rest/issues/comments#create-an-issue-comment, its
  status codes);
- a body over 65,536 characters: 422 ``Body is too long (maximum is 65536 characters)``.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cdk.review_comment import COMMENT_LIMIT, MARKER, main

TOKEN = "ghs_stand-in-token-0123456789"
REPOSITORY = "flightpipe/flightpipe"
REPOSITORY_ID = 815
PULL = 7
BOT = {"login": "github-actions[bot]", "type": "Bot"}
PREFIX = "/api/v3"


@dataclass
class FakeGitHub:
    """The stand-in's state: one pull request's comments, oldest first, and every request."""

    api: str = ""
    """Its address, for ``GITHUB_API_URL``."""
    writable: bool = True
    comments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1001, 10_000)))

    def add(self, body: str, user: dict[str, str]) -> dict[str, Any]:
        number = next(self._ids)
        comment = {
            "id": number,
            "body": body,
            "user": dict(user),
            "html_url": f"https://github.com/{REPOSITORY}/pull/{PULL}#issuecomment-{number}",
        }
        self.comments.append(comment)
        return comment

    def ours(self) -> list[dict[str, Any]]:
        return [c for c in self.comments if c["user"] == BOT]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, message: str, **more: Any) -> None:
        self._answer(status, {"message": message, "status": str(status), **more})

    def _serve(self, method: str) -> None:
        github = self.server.github
        url = urlsplit(self.path)
        github.requests.append((method, url.path))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = url.path.removeprefix(PREFIX)
        listing = {
            f"/repos/{REPOSITORY}/issues/{PULL}/comments",
            f"/repositories/{REPOSITORY_ID}/issues/{PULL}/comments",
        }
        ids = {f"/repos/{REPOSITORY}/issues/comments/{c['id']}": c for c in github.comments}
        refusal = self._headers_refusal()
        if not url.path.startswith(PREFIX + "/"):
            self._refuse(404, "Not Found")
        elif refusal:
            self._refuse(*refusal)
        elif method == "GET" and path in listing:
            self._list(parse_qs(url.query))
        elif method == "POST" and path == f"/repos/{REPOSITORY}/issues/{PULL}/comments":
            body = self._body(raw)
            if body is not None:
                self._answer(201, github.add(body, BOT))
        elif method == "PATCH" and path in ids:
            body = self._body(raw)
            if body is not None:
                ids[path]["body"] = body
                self._answer(200, ids[path])
        else:
            self._refuse(404, "Not Found")

    def _headers_refusal(self) -> tuple[int, str] | None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, "Bad credentials"
        if self.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            return 400, "Unsupported API version"
        if self.headers.get("Accept") != "application/vnd.github+json":
            return 415, "Unsupported 'Accept' header"
        return None

    def _list(self, query: dict[str, list[str]]) -> None:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        comments = self.server.github.comments
        last = max(1, -(-len(comments) // per_page))
        base = f"http://{self.headers['Host']}{PREFIX}/repositories/{REPOSITORY_ID}"
        link = f"{base}/issues/{PULL}/comments?per_page={per_page}&page="
        rels = {"first": 1, "prev": page - 1} if page > 1 else {}
        if page < last:
            rels |= {"next": page + 1, "last": last}
        headers = {"Link": ", ".join(f'<{link}{n}>; rel="{r}"' for r, n in rels.items())}
        self._answer(200, comments[(page - 1) * per_page : page * per_page], headers)

    def _body(self, raw: bytes) -> str | None:
        """The ``body`` written, or None once the refusal is answered."""
        if not self.server.github.writable:
            self._refuse(403, "Resource not accessible by integration")
            return None
        try:
            sent = json.loads(raw)
        except ValueError:
            self._refuse(400, "Problems parsing JSON")
            return None
        if not isinstance(sent, dict) or not isinstance(sent.get("body"), str):
            self._refuse(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
            return None
        if len(sent["body"]) > COMMENT_LIMIT:
            error = {"resource": "IssueComment", "code": "unprocessable", "field": "data"}
            error["message"] = "Body is too long (maximum is 65536 characters)"
            self._refuse(422, "Validation Failed", errors=[error])
            return None
        return str(sent["body"])


class _Server(ThreadingHTTPServer):
    github: FakeGitHub


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.github = FakeGitHub(f"http://127.0.0.1:{server.server_address[1]}{PREFIX}")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server.github
    server.shutdown()
    server.server_close()
    thread.join()


def environment(github: FakeGitHub, **changes: str | None) -> dict[str, str]:
    env: dict[str, str | None] = {
        "GH_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_API_URL": github.api,
        **changes,
    }
    return {k: v for k, v in env.items() if v is not None}


def report(tmp_path: Path, text: str = "# Deployment review\n\nNo change.\n") -> Path:
    path = tmp_path / "review.md"
    path.write_text(f"{MARKER}\n{text}", encoding="utf-8")
    return path


def run(
    github: FakeGitHub, path: Path, capsys: pytest.CaptureFixture[str], **env: str | None
) -> tuple[int, str, str]:
    status = main(["--pr", str(PULL), "--report", str(path)], environment(github, **env))
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    return status, out, err


def test_the_first_run_creates_one_comment(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.add("Looks good to me.", {"login": "alice", "type": "User"})
    path = report(tmp_path)
    status, out, err = run(github, path, capsys)
    assert (status, err) == (0, "")
    [ours] = github.ours()
    assert ours["body"] == path.read_text(encoding="utf-8")
    assert out == f"review-comment: created {ours['html_url']}\n"
    assert len(github.comments) == 2


def test_the_second_run_updates_the_same_comment(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(github, report(tmp_path, "first\n"), capsys)[0] == 0
    [first] = github.ours()
    github.requests.clear()
    status, out, _ = run(github, report(tmp_path, "second\n"), capsys)
    assert status == 0
    assert github.ours() == [first]
    assert first["body"] == f"{MARKER}\nsecond\n"
    assert out == f"review-comment: updated {first['html_url']}\n"
    assert [m for m, _ in github.requests] == ["GET", "PATCH"]


def test_the_comment_on_the_second_page_is_found(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(130):
        github.add(f"comment {n}", {"login": "alice", "type": "User"})
    ours = github.add(f"{MARKER}\nold\n", BOT)
    for n in range(30):
        github.add(f"comment {n}", {"login": "bob", "type": "User"})
    status, _, _ = run(github, report(tmp_path, "new\n"), capsys)
    assert status == 0
    assert github.ours() == [ours]
    assert ours["body"] == f"{MARKER}\nnew\n"
    assert len(github.comments) == 161
    second = f"{PREFIX}/repositories/{REPOSITORY_ID}/issues/{PULL}/comments"
    assert ("GET", second) in github.requests, "the Link header's next page is read"
    assert [m for m, _ in github.requests] == ["GET", "GET", "PATCH"], "100 a page"


def test_a_comment_quoting_the_marker_by_anyone_else_is_left_alone(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quoted = f"{MARKER}\n# Deployment review\n\nWhy does this cost more?\n"
    person = github.add(quoted, {"login": "alice", "type": "User"})
    other_bot = github.add(quoted, {"login": "dependabot[bot]", "type": "Bot"})
    # No person may be named so (a login holds no brackets): were one, still not ours.
    named_like_ours = github.add(quoted, {"login": "github-actions[bot]", "type": "User"})
    status, out, _ = run(github, report(tmp_path), capsys)
    assert status == 0
    assert "created" in out
    assert [c["body"] for c in (person, other_bot, named_like_ours)] == [quoted] * 3
    assert len(github.ours()) == 1
    assert len(github.comments) == 4


def test_a_token_that_may_not_write_fails_naming_the_permission(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.writable = False
    status, out, err = run(github, report(tmp_path), capsys)
    assert (status, out) == (1, "")
    assert err.startswith("review-comment: creating the review comment on pull request #7: ")
    assert "GitHub answered 403 (Resource not accessible by integration)" in err
    assert "`pull-requests: write`" in err
    assert github.comments == []


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"GH_TOKEN": None}, "neither GH_TOKEN nor GITHUB_TOKEN is set"),
        ({"GH_TOKEN": ""}, "neither GH_TOKEN nor GITHUB_TOKEN is set"),
        ({"GITHUB_REPOSITORY": None}, "GITHUB_REPOSITORY is '', not owner/name"),
    ],
)
def test_a_missing_token_or_repository_is_named_before_any_request(
    github: FakeGitHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    missing: dict[str, str | None],
    named: str,
) -> None:
    status, out, err = run(github, report(tmp_path), capsys, **missing)
    assert (status, out) == (1, "")
    assert named in err
    assert github.requests == []


def test_githubs_own_token_variable_is_enough(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, _ = run(github, report(tmp_path), capsys, GH_TOKEN=None, GITHUB_TOKEN=TOKEN)
    assert status == 0
    assert len(github.ours()) == 1


def test_a_report_over_githubs_limit_is_refused_before_any_request(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fits = "x" * (COMMENT_LIMIT - len(MARKER) - 1)
    status, _, _ = run(github, report(tmp_path, fits), capsys)
    assert status == 0, "exactly the limit is taken"
    github.requests.clear()
    status, out, err = run(github, report(tmp_path, fits + "y"), capsys)
    assert (status, out) == (1, "")
    assert f"has {COMMENT_LIMIT + 1:,} characters, more than GitHub's 65,536" in err
    assert github.requests == []
    assert github.ours()[0]["body"].endswith("x")


def test_a_file_that_is_not_the_review_report_is_refused(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "notes.md"
    other.write_text("# Notes\n")
    status = main(["--pr", str(PULL), "--report", str(other)], environment(github))
    assert status == 1
    assert f"does not begin with {MARKER}" in capsys.readouterr().err
    status = main(["--pr", str(PULL), "--report", str(tmp_path / "none.md")], environment(github))
    assert status == 1
    assert "cannot read the review report" in capsys.readouterr().err
    assert github.requests == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"Authorization": "Bearer ghs_another"}, 401),
        ({"X-GitHub-Api-Version": "2021-01-01"}, 400),
        ({"Accept": "application/json"}, 415),
    ],
)
def test_the_stand_in_refuses_what_github_refuses(
    github: FakeGitHub, change: dict[str, str], status: int
) -> None:
    """The stand-in is no pushover: what the module sends is what it checks."""
    url = f"{github.api}/repos/{REPOSITORY}/issues/{PULL}/comments"

    def answer(method: str, data: bytes | None, headers: dict[str, str]) -> int:
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    good = {
        "Authorization": f"Bearer {TOKEN}",
        "X-GitHub-Api-Version": "2022-11-28",
        "Accept": "application/vnd.github+json",
    }
    assert answer("GET", None, good) == 200
    assert answer("GET", None, good | change) == status
    assert answer("POST", b"not json", good) == 400
    assert answer("POST", json.dumps({"text": "hi"}).encode(), good) == 422
    assert answer("PUT", json.dumps({"body": "hi"}).encode(), good) == 501
    assert answer("DELETE", None, good) == 501
    assert github.comments == []
