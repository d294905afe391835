"""Small fixes to the HTML the book's Sphinx extensions emit (a local extension).

- Every ``<script>`` is emitted once. sphinx-thebe registers its configuration
  (``const THEBE_JS_URL = ...``) at each ``env-before-read-docs``, so a full
  build wrote it twice and every page logged "Identifier 'THEBE_JS_URL' has
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
    if scripts is not None:
        context["script_files"] = list(dict.fromkeys(scripts))


def _check_offline_assets(app: Sphinx) -> None:
    root = Path(app.srcdir, "_offline")
    if not (root / "mathjax" / "tex-mml-chtml.js").is_file():
        raise ConfigError(
            f"the offline assets are missing from {root}: run `scripts/offline_assets.sh` "
            "(or `make book`), which fetches MathJax and the widget scripts from npm once"
        )


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _check_offline_assets)
    # after every other handler has added its scripts to the page
    app.connect("html-page-context", _one_script_each, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
