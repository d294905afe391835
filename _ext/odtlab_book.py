"""Small fixes to the HTML the book's Sphinx extensions emit (a local extension).

- Every ``<script>`` is emitted once. sphinx-thebe registers its configuration
  (``const THEBE_JS_URL = ...``) at each ``env-before-read-docs``, so a full
  build wrote it twice (once with filename ``''``, once with ``None``) and every page logged "Identifier 'THEBE_JS_URL' has
  already been declared" in the browser console.
- A page that shows no widget carries no widget state or widget scripts
  (stale state saved in a notebook's metadata).
- Lab pages do not show nbval's ``# NBVAL_CHECK_OUTPUT`` markers.
- MyST markdown chapters get no Colab button (Colab opens only notebooks);
  the labs, which are notebooks, keep theirs.
- The build fails early, with the command to run, when the offline assets
  (MathJax, widget scripts; ``scripts/offline_assets.sh``) are missing, since
  the pages would then reference files that are not there.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
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


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _no_stale_widgets(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Drop widget state and scripts from a page that shows no widget.

    A notebook saved after its widget outputs were cleared (as the student
    labs are) still carries the widgets' state in its metadata; myst-nb then
    embeds it (tens of KB) and loads the widget manager for nothing.
    """
    scripts = context.get("script_files")
    if doctree is None or not isinstance(scripts, list):
        return
    if any(WIDGET_VIEW in node.astext() for node in doctree.findall(nodes.raw)):
        return
    # Sphinx files a relative script under _static/
    widget_js = set(app.config.nb_ipywidgets_js)
    widget_js |= {f"_static/{path}" for path in widget_js}
    scripts[:] = [
        js
        for js in scripts
        if getattr(js, "attributes", {}).get("type") != WIDGET_STATE
        and getattr(js, "filename", None) not in widget_js
    ]


NBVAL_MARKER = re.compile(r"^[ \t]*# NBVAL_[A-Z_]+[ \t]*\n?", re.MULTILINE)


def _hide_nbval_markers(app: Sphinx, doctree) -> None:
    """Remove ``# NBVAL_CHECK_OUTPUT``-style lines from the code a page shows.

    They tell nbval which lab outputs to compare; a reader has no use for them.
    """
    for block in list(doctree.findall(nodes.literal_block)):
        text = block.astext()
        if "# NBVAL_" in text:
            shown = NBVAL_MARKER.sub("", text)
            block.rawsource = shown
            block.children = [nodes.Text(shown)]


def _colab_only_for_notebooks(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Colab opens only ``.ipynb`` files: no Colab button on a MyST markdown page."""
    if context.get("page_source_suffix") == ".ipynb":
        return
    for group in context.get("header_buttons") or []:
        if isinstance(group, dict) and group.get("label") == "launch-buttons":
            group["buttons"] = [b for b in group.get("buttons", []) if b.get("text") != "Colab"]


def _check_offline_assets(app: Sphinx) -> None:
    root = Path(app.srcdir, "_offline")
    if not (root / "mathjax" / "tex-mml-chtml.js").is_file():
        raise ConfigError(
            f"the offline assets are missing from {root}: run `scripts/offline_assets.sh` "
            "(or `make book`), which fetches MathJax and the widget scripts from npm once"
        )


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _check_offline_assets)
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("doctree-read", _hide_nbval_markers)
    # after sphinx-book-theme's launch buttons (501), before the page is rendered
    app.connect("html-page-context", _colab_only_for_notebooks, priority=502)
    # first: html-page-context stops at the first handler that returns a value
    app.connect("html-page-context", _one_script_each, priority=1)
    # last: myst-nb adds a notebook's widget scripts in its own handler
    app.connect("html-page-context", _no_stale_widgets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
