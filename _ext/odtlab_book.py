"""Small fixes to the HTML the book's Sphinx extensions emit (a local extension).

- Every ``<script>`` is emitted once. sphinx-thebe registers its configuration
  (``const THEBE_JS_URL = ...``) at each ``env-before-read-docs``, so a full
  build wrote it twice (once with filename ``''``, once with ``None``) and every page logged "Identifier 'THEBE_JS_URL' has
  already been declared" in the browser console.
- The build fails early, with the command to run, when the offline assets
  (MathJax, widget scripts; ``scripts/offline_assets.sh``) are missing, since
  the pages would then reference files that are not there.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ConfigError


def _one_script_each(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        unique = {}
        for js in scripts:
            # sphinx-thebe's two copies differ only in filename '' versus None
            key = (
                getattr(js, "filename", js) or "",
                getattr(js, "priority", 500),
                tuple(sorted(getattr(js, "attributes", {}).items())),
            )
            unique.setdefault(key, js)
        # in place: handlers that run later append their scripts to this same list
        scripts[:] = unique.values()


def _check_offline_assets(app: Sphinx) -> None:
    root = Path(app.srcdir, "_offline")
    if not (root / "mathjax" / "tex-mml-chtml.js").is_file():
        raise ConfigError(
            f"the offline assets are missing from {root}: run `scripts/offline_assets.sh` "
            "(or `make book`), which fetches MathJax and the widget scripts from npm once"
        )


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _check_offline_assets)
    # first: html-page-context stops at the first handler that returns a value
    app.connect("html-page-context", _one_script_each, priority=1)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
