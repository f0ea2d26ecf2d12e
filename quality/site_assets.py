"""The files GX Data Docs pages load, served from the site itself instead of CDNs.

GX 1.24's page templates link their scripts, stylesheets and logo from public CDNs, so a
report opened without internet (or from a private bucket) shows no table. Here every such URL
maps to a file inside the site: the npm packages pinned in ``package.json`` (installed into
``node_modules/`` by ``make setup``) are copied under ``static/vendor/``, with the fonts and
images their stylesheets reference, and each rendered page is rewritten to link them, and
GX's own ``static/`` folder, relative to its own depth. A URL GX adds in a later version is
not in the map and stays external: the report tests scan the built site for that.
"""

from __future__ import annotations

import base64
import filecmp
import hashlib
import posixpath
import re
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

# The checkout's npm packages (``make node``), or on Glue the files of them the job wheel
# carries (``npm_files``); found from here, not from the twin's settings.
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
VENDOR = "static/vendor/"
"""Where in the site the npm files go, each at its path under ``node_modules``."""

# Each URL GX's templates link, and the npm file it serves (the packages' versions are GX's).
_NPM_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap/dist/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap/dist/js/bootstrap.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table/dist/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    # GX links 1.19.0's filter-control styles beside 1.19.1's script. 1.19.1's are the same
    # rules (the unminified file is byte for byte 1.19.0's, the minified one differs in its
    # version banner), so one package serves both.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free/css/all.min.css"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js/dist/umd/popper.min.js"
    ),
    # jsDelivr answers a bare version range with the file the package names for it (its
    # "jsdelivr" field); package.json pins the newest release in each range.
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
}

_GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

# URL -> the file's path in the site. GX's logo is not on npm, but GX ships the same image in
# its package, and its site has it in ``static/images/``. Its dark-mode logo
# (full_logo_dark.png) ships nowhere: that logo stands in for it as well.
LOCAL_PATHS = {
    **{url: VENDOR + path for url, path in _NPM_FILES.items()},
    _GX_WEB_ASSETS + "logo-long.png": "static/images/logo-long.png",
    _GX_WEB_ASSETS + "full_logo_dark.png": "static/images/logo-long.png",
}

# Where a page or stylesheet names a file it loads: an element's src or href, or a CSS url().
_LEAD = r"""(?P<lead>\b(?:src|href)=["']|url\(\s*["']?)"""
# A known URL, with whatever query GX appends (the logo gets a cache-busting timestamp).
_KNOWN = re.compile(
    _LEAD
    + "(?P<url>"
    + "|".join(re.escape(url) for url in sorted(LOCAL_PATHS, key=len, reverse=True))
    + r""")(?:\?[^"')\s]*)?(?=["')])"""
)
# A reference into the site's static folder, at whatever depth GX assumed (its favicon link
# on validation pages is one folder short).
_STATIC = re.compile(_LEAD + r"(?:\./|(?:\.\./)+)?static/")
_CHECKED_TAG = re.compile(r"<(?:script|link)\b[^>]*\bintegrity=[^>]*>")
_INTEGRITY = re.compile(r"""\s(?:integrity|crossorigin)=["'][^"']*["']""")
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")


def localize(html: str, depth: int) -> str:
    """A rendered page, ``depth`` folders below the site's root, linking only site files.

    The subresource-integrity checks GX asks of the two CDN scripts happen here, against the
    vendored copies, and the attributes go: a browser enforces them only over CORS, which a
    site opened from disk does not have, so it would refuse the very file it asked for.
    """
    html = _CHECKED_TAG.sub(_drop_checked_integrity, html)
    html = _KNOWN.sub(lambda match: match["lead"] + LOCAL_PATHS[match["url"]], html)
    return _STATIC.sub(lambda match: match["lead"] + "../" * depth + "static/", html)


def _drop_checked_integrity(tag: re.Match[str]) -> str:
    known = _KNOWN.search(tag[0])
    integrity = re.search(r"""\bintegrity=["']([^"']+)["']""", tag[0])
    if known is None or integrity is None or known["url"] not in _NPM_FILES:
        return tag[0]  # not ours to rewrite: it stays external, and the report tests say so
    _check_integrity(_NPM_FILES[known["url"]], integrity[1])
    return _INTEGRITY.sub("", tag[0])


@cache
def _check_integrity(npm_path: str, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, _npm_file(npm_path).read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        raise ValueError(
            f"node_modules/{npm_path} is not the file GX pins ({integrity}): "
            "package.json must pin the version GX links"
        )


def copy_assets(site: Path) -> None:
    """Put GX's static folder and every vendored file into the site's ``static/``.

    Files already there unchanged (same size and time, as ``copy2`` leaves them) are skipped.
    """
    import great_expectations.render.view as gx_view

    gx_static = Path(gx_view.__file__).parent / "static"
    sources = {p: site / "static" / p.relative_to(gx_static) for p in gx_static.rglob("*")}
    for npm_path in npm_files():
        sources[_npm_file(npm_path)] = site / VENDOR / npm_path
    for source, target in sources.items():
        if source.is_file() and not (target.exists() and filecmp.cmp(source, target)):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def npm_files() -> list[str]:
    """Every file of ``node_modules`` the site serves, by its path there: each one GX's pages
    link, and the fonts and images those stylesheets load. The Glue artifact's job wheel carries
    these at ``node_modules/`` beside ``quality/`` (``make package``), where ``NODE_MODULES``
    finds them on Glue as in a checkout."""
    return sorted({p for url_path in _NPM_FILES.values() for p in _with_references(url_path)})


def _with_references(npm_path: str) -> Iterator[str]:
    """The file, and when it is a stylesheet, the files it loads by relative URL (fonts)."""
    yield npm_path
    if not npm_path.endswith(".css"):
        return
    for url in _CSS_URL.findall(_npm_file(npm_path).read_text(encoding="utf-8")):
        parts = urlsplit(url)
        if not (parts.scheme or parts.netloc or parts.path.startswith("/")) and parts.path:
            yield posixpath.normpath(posixpath.join(posixpath.dirname(npm_path), parts.path))


def _npm_file(npm_path: str) -> Path:
    path = NODE_MODULES / npm_path
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: `make setup` installs the report's browser assets (npm ci)"
        )
    return path
