"""The pull request's review comment: ``python -m cdk.review_comment --pr N --report FILE`` puts
the report ``cdk.review`` wrote on pull request N as one comment, updated in place on each run.

It lists the pull request's comments, page after page, and updates the first that is ours and
begins with ``MARKER``; when there is none it creates one. Ours means written by this token's
bot: the job's ``GITHUB_TOKEN`` is an installation token of the GitHub Actions app, whose
comments are by ``github-actions[bot]``, of type ``Bot`` (``--author`` names another app's bot).
The token cannot ask who it is (``GET /user`` refuses installation tokens), hence the name. No
person's comment is ever taken for ours, even one that begins with the marker (quoting the
report): a person's account is of type ``User``, and a login may not hold brackets.

Only the standard library: the review job's container (python:3.11-bookworm) has no ``gh``.
Read from the environment: the token (``GH_TOKEN``, else ``GITHUB_TOKEN``), the repository
(``GITHUB_REPOSITORY``, ``owner/name``) and the API's address (``GITHUB_API_URL``, which Actions
sets, another on GitHub Enterprise Server; https://api.github.com without it). Exit status 1
when anything fails, saying what and how to fix it on stderr; 2 for a usage error. The token is
never printed, nor sent anywhere but to that address.

The endpoints (REST API version ``API_VERSION``), https://docs.github.com/en/rest/issues/comments:
``GET /repos/{owner}/{repo}/issues/{issue_number}/comments`` (#list-issue-comments: ascending
ids, ``per_page`` at most 100, ``page``), ``POST`` to the same path (#create-an-issue-comment)
and ``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}`` (#update-an-issue-comment),
each taking ``{"body": ...}``; a pull request is an issue to them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO, Any, Final

MARKER: Final = "<!-- flightpipe-review -->"
"""The report's first line, by which its comment is found again."""
COMMENT_LIMIT: Final = 65_536
"""The most characters GitHub takes in an issue or pull request comment's body (more is a 422,
``Body is too long (maximum is 65536 characters)``)."""

API_VERSION: Final = "2022-11-28"
"""https://docs.github.com/en/rest/about-the-rest-api/api-versions"""
DEFAULT_API: Final = "https://api.github.com"
AUTHOR: Final = "github-actions[bot]"
"""Who writes with the job's ``GITHUB_TOKEN``."""
PER_PAGE: Final = 100
"""The most comments a page holds."""
_TIMEOUT: Final = 30.0
_LINK: Final = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


class CommentError(Exception):
    """What failed, and what to do about it, for the job's log."""


@dataclass(frozen=True)
class GitHub:
    """The REST API of one repository, as one token reaches it."""

    api: str
    """The API's address, without a trailing slash."""
    repository: str
    """``owner/name``."""
    token: str = field(repr=False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> GitHub:
        token = environ.get("GH_TOKEN") or environ.get("GITHUB_TOKEN")
        if not token:
            raise CommentError(
                "neither GH_TOKEN nor GITHUB_TOKEN is set: set GH_TOKEN to the job's token "
                "(`GH_TOKEN: ${{ github.token }}` in the step's env)"
            )
        repository = environ.get("GITHUB_REPOSITORY", "")
        if not re.fullmatch(r"[^/\s]+/[^/\s]+", repository):
            raise CommentError(
                f"GITHUB_REPOSITORY is {repository!r}, not owner/name: GitHub Actions sets it; "
                "elsewhere set it to the repository of the pull request"
            )
        api = (environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")
        if urllib.parse.urlsplit(api).scheme not in ("http", "https"):
            raise CommentError(f"GITHUB_API_URL is {api!r}, not an http(s) address")
        return cls(api, repository, token)

    def request(
        self, method: str, url: str, doing: str, body: str | None = None
    ) -> tuple[Any, Message]:
        """The JSON GitHub answers to ``method url`` (with ``{"body": body}`` when given), and
        the response's headers; a ``CommentError`` saying what was being done otherwise."""
        if not _same_origin(url, self.api):
            # A link to follow comes from the answer: the token goes to the API alone.
            raise CommentError(f"{doing}: GitHub pointed to {url}, outside {self.api}")
        data = None if body is None else json.dumps({"body": body}).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", "flightpipe-review-comment")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=_TIMEOUT) as response:
                return json.load(response), response.headers
        except urllib.error.HTTPError as error:
            raise CommentError(_refusal(error, doing)) from None
        except (urllib.error.URLError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise CommentError(
                f"{doing}: could not reach {self.api} ({reason}); check GITHUB_API_URL"
            ) from None
        except ValueError as error:
            raise CommentError(f"{doing}: GitHub's answer is not JSON ({error})") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follows a redirect: urllib would send the token on to wherever it points."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


def _same_origin(url: str, api: str) -> bool:
    target, base = urllib.parse.urlsplit(url), urllib.parse.urlsplit(api)
    return (target.scheme, target.netloc) == (base.scheme, base.netloc) and (
        target.path + "/"
    ).startswith(base.path + "/")


def _refusal(error: urllib.error.HTTPError, doing: str) -> str:
    """GitHub's refusal in plain words, with the fix where the status says it."""
    try:
        answer = json.loads(error.read() or b"{}")
    except ValueError:
        answer = {}
    message = answer.get("message", error.reason) if isinstance(answer, dict) else error.reason
    details = [
        str(e.get("message", e.get("code", "")))
        for e in (answer.get("errors", []) if isinstance(answer, dict) else [])
        if isinstance(e, dict)
    ]
    said = f"{doing}: GitHub answered {error.code} ({'; '.join([str(message), *details])})"
    if error.code == 401:
        return f"{said}: the token is not valid; pass the job's token, ${{{{ github.token }}}}"
    if error.code == 403 and error.headers.get("x-ratelimit-remaining") == "0":
        return f"{said}: the API's rate limit is spent; run the job again later"
    if error.code == 403:
        return (
            f"{said}: the job needs `pull-requests: write` in its permissions "
            "(.github/workflows/ci.yml); a fork's pull request never gets it"
        )
    if error.code == 404:
        return f"{said}: check GITHUB_REPOSITORY and the pull request's number"
    if 300 <= error.code < 400:
        return f"{said}: not followed (to {error.headers.get('Location')}); check GITHUB_API_URL"
    return said


def _next_page(headers: Message) -> str | None:
    """The ``rel="next"`` address of the ``Link`` header; none on the last page.
    https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api"""
    for url, rel in _LINK.findall(headers.get("Link", "")):
        if "next" in rel.split():
            return str(url)
    return None


def comments(github: GitHub, pr: int) -> Iterator[dict[str, Any]]:
    """Every comment of pull request ``pr``, oldest first, page after page as asked for."""
    url: str | None = (
        f"{github.api}/repos/{github.repository}/issues/{pr}/comments?per_page={PER_PAGE}"
    )
    doing = f"listing the comments of pull request #{pr} in {github.repository}"
    while url is not None:
        page, headers = github.request("GET", url, doing)
        if not isinstance(page, list):
            raise CommentError(f"{doing}: GitHub answered {type(page).__name__}, not a list")
        yield from (c for c in page if isinstance(c, dict))
        url = _next_page(headers)


def is_ours(comment: Mapping[str, Any], author: str = AUTHOR) -> bool:
    """Whether ``comment`` is the review's: ``author``'s (a bot) and beginning with ``MARKER``."""
    user = comment.get("user") or {}  # null for a deleted account
    return (
        user.get("type") == "Bot"
        and user.get("login") == author
        and str(comment.get("body", "")).startswith(MARKER)
    )


def read_report(path: Path) -> str:
    """The report at ``path``, refused when GitHub would refuse it or it could not be found
    again."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CommentError(
            f"cannot read the review report {path} ({error.strerror}): make review writes it"
        ) from None
    if not text.startswith(MARKER):
        # Its comment would never be found again: each run would add one.
        raise CommentError(
            f"{path} does not begin with {MARKER}: it is not the report of make review"
        )
    if len(text) > COMMENT_LIMIT:
        raise CommentError(
            f"{path} has {len(text):,} characters, more than GitHub's {COMMENT_LIMIT:,} for a "
            "comment: cdk.review cuts its report to fit, so write it again with make review"
        )
    return text


def comment(github: GitHub, pr: int, body: str, author: str = AUTHOR) -> tuple[str, str]:
    """Puts ``body`` on pull request ``pr``: updates our comment, or creates it. Says which
    (``"updated"``, ``"created"``) and the comment's address."""
    ours = next((c for c in comments(github, pr) if is_ours(c, author)), None)
    if ours is not None:
        answer, _ = github.request(
            "PATCH",
            f"{github.api}/repos/{github.repository}/issues/comments/{ours['id']}",
            f"updating the review comment {ours['id']} on pull request #{pr}",
            body,
        )
        done = "updated"
    else:
        answer, _ = github.request(
            "POST",
            f"{github.api}/repos/{github.repository}/issues/{pr}/comments",
            f"creating the review comment on pull request #{pr}",
            body,
        )
        done = "created"
    return done, str(answer.get("html_url", "")) if isinstance(answer, dict) else ""


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pull request's number")
    return int(text)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cdk.review_comment", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pr", type=_positive, required=True, help="the pull request's number")
    parser.add_argument(
        "--report", type=Path, required=True, help="the review report (make review's REVIEW)"
    )
    parser.add_argument(
        "--author",
        default=AUTHOR,
        help=f"the bot the token writes as (default: {AUTHOR}, the job's GITHUB_TOKEN)",
    )
    args = parser.parse_args(argv)
    try:
        github = GitHub.from_environment(os.environ if environ is None else environ)
        body = read_report(args.report)
        done, url = comment(github, args.pr, body, args.author)
    except CommentError as error:
        print(f"review-comment: {error}", file=sys.stderr)
        return 1
    print(f"review-comment: {done} {url or f'the comment on pull request #{args.pr}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
