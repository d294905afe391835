"""The built book in a real browser, with no network: what a reader sees.

Every page of ``_toc.yml`` is opened in headless Chromium (the system's
``chromium``, driven through playwright's Python API) from a local HTTP server
on 127.0.0.1 that serves ``_build/html``. Every request to any other host is
aborted, so a page that still needs a CDN (for MathJax, widget scripts, fonts)
fails here: the book must render from a USB stick in a classroom without
internet. For each page we check that

- it loads with no console error, no uncaught exception and no failed request;
- math is typeset by MathJax (every ``.math`` element holds MathJax output) and
  no raw ``$...$`` or ``\\(...\\)`` is left in the prose;
- every image has loaded and has alt text;
- every internal link leads to a built page and, with a ``#fragment``, to an
  element with that id;
- the launch buttons (Colab, Binder) point to files of the repository and, for
  labs, to the page's own student notebook, never to a master; Colab only to
  notebooks, Binder to notebooks or to MyST markdown notebooks that jupytext
  opens (jupytext is in ``environment.yml``, ``tests/test_publishing.py``);
- no solution line of a master lab, Python traceback, warning, stderr output
  or nbval marker is visible, and no content is cut at the column edge;
- interactive widgets show their stored (static) state.

Screenshots of a few pages are saved to ``_build/screenshots/`` for review.
`make test` builds the book before pytest runs; without a build, or without
Chromium or playwright, the tests skip and say why.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml
from test_book import _solution_lines

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
SCREENSHOT_PAGES = {
    "chapters/intro",
    "chapters/ch01_memory_wall",
    "labs/student/lab01_memory_wall",
    "chapters/glossary",
}


def _toc_pages() -> list[str]:
    """Every document of ``_toc.yml``, root first, without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(Path(p).with_suffix("")) for p in pages]


PAGES = _toc_pages()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``http://127.0.0.1:PORT/`` serving ``_build/html``, stopped afterwards."""
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` (make test builds it first)")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    """Headless system Chromium; playwright's own browser download needs a network."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[test]'"
    )
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip(
            "Chromium is missing: `apt-get install chromium` (make test installs it as root)"
        )
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def solutions() -> list[str]:
    lines = []
    for master in sorted((ROOT / "labs").glob("lab*.ipynb")):
        lines += _solution_lines(master)
    return lines


@functools.cache
def _ids(path: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\sid="([^"]+)"', path.read_text()))


def _check_internal_link(href: str, server: str) -> str | None:
    """None when ``href`` (absolute, on our server) leads to a built page/anchor."""
    parts = urlsplit(href)
    rel = unquote(parts.path)[len(urlsplit(server).path) :]
    target = HTML / rel
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"broken link {href}: {target.relative_to(HTML)} was not built"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target):
        return f"broken link {href}: no element with id {parts.fragment!r}"
    return None


def _is_text_notebook(target: str) -> bool:
    """True for a MyST markdown file that jupytext opens as a notebook (kernelspec in front matter)."""
    path = ROOT / target
    if path.suffix != ".md" or not path.is_file():
        return False
    front = re.match(r"---\n(.*?)\n---\n", path.read_text(), re.DOTALL)
    return bool(front) and "jupytext:" in front[1] and "kernelspec:" in front[1]


LAUNCH = re.compile(
    r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/(?P<colab>[^?#]+)"
    r"|mybinder\.org/v2/gh/[^?]+\?urlpath=lab/tree/(?P<binder>[^&#]+)"
)

# Text a reader must never see: tracebacks, warnings, stderr.
# (An error message quoted inside a line, as in a grading report, is content.)
LEAKS = re.compile(
    r"Traceback \(most recent call last\)|\.py:\d+: \w*Warning|^\w*(Warning|Error): "
    r"|^\s*warnings\.warn\(",
    re.MULTILINE,
)

# After the page's load event: wait for MathJax to finish typesetting and for the
# widget manager to render the widgets stored in the page.
SETTLE_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  if (document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]')) {
    for (let i = 0; i < 100 && !document.querySelector('.jupyter-widgets'); i++) {
      await new Promise(r => setTimeout(r, 100));
    }
  }
  return true;
}"""

# What the page shows: math elements and their MathJax output, prose text (code
# excluded) for raw TeX, images, links, visible text, widget state.
INSPECT_JS = r"""() => {
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, mjx-container, .math, .cell_output')
       .forEach(e => e.remove());
  return {
    math: [...document.querySelectorAll('.math')].map(e => ({
      typeset: !!e.querySelector('mjx-container') || e.tagName.toLowerCase() === 'mjx-container',
      tex: e.textContent.slice(0, 80)})),
    prose: prose.textContent,
    images: [...document.images].map(i => ({
      src: i.currentSrc.slice(0, 120), alt: i.getAttribute('alt'),
      in_widget: !!i.closest('.jupyter-widgets, .widget-output'),
      loaded: i.complete && i.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    visible: document.body.innerText,
    doctests: [...document.querySelectorAll('.doctest')].map(e => e.innerText),
    // (inline math is left out: MathJax glyphs overhang their box by a pixel or two)
    clipped: [...article.querySelectorAll('*')].filter(e => {
      const s = getComputedStyle(e);
      return (s.overflowX === 'hidden' || s.overflowX === 'clip')
             && e.scrollWidth > e.clientWidth + 4 && e.clientWidth > 0
             && !e.closest('.math, mjx-container');
    }).map(e => e.tagName + '.' + String(e.className).slice(0, 60)
                + ` (${e.scrollWidth} px of content in ${e.clientWidth} px)`),
    stderr: [...document.querySelectorAll('.stderr, .output_stderr')]
            .filter(e => e.offsetParent !== null).map(e => e.textContent.slice(0, 200)),
    widget_state: !!document.querySelector(
      'script[type="application/vnd.jupyter.widget-state+json"]'),
    widget_scripts: [...document.scripts].some(e => /embed-amd|require\.js/.test(e.src)),
    widget_views: document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length,
    widgets: document.querySelectorAll('.jupyter-widgets').length,
  };
}"""


@pytest.mark.slow
@pytest.mark.parametrize("page_name", PAGES)
def test_page_renders_offline(page_name, server, browser, solutions):
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:

        def only_local(route):
            if route.request.url.startswith(server) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                problems.append(f"request to the network (blocked): {route.request.url}")
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.on(
            "console",
            lambda msg: msg.type == "error" and problems.append(f"console error: {msg.text}"),
        )
        page.on("pageerror", lambda exc: problems.append(f"uncaught exception: {exc}"))
        page.on(
            "requestfailed",
            lambda req: (
                req.url.startswith(server)
                and problems.append(f"request failed: {req.url} ({req.failure})")
            ),
        )
        page.on(
            "response",
            lambda resp: resp.status >= 400 and problems.append(f"HTTP {resp.status}: {resp.url}"),
        )
        url = urljoin(server, page_name + ".html")
        response = page.goto(url, wait_until="load")
        assert response is not None and response.ok, f"{url} did not load"
        page.evaluate(SETTLE_JS)
        seen = page.evaluate(INSPECT_JS)
        if page_name in SCREENSHOT_PAGES:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(SHOTS / (page_name.replace("/", "__") + ".png")), full_page=True
            )
    finally:
        context.close()

    # math: typeset, and no raw TeX left in the prose
    for math in seen["math"]:
        if not math["typeset"]:
            problems.append(f"math not typeset by MathJax: {math['tex']!r}")
    for raw in re.findall(
        r"\$[^$\s][^$\n]{0,80}?\$|\\\(.{0,80}?\\\)|\\\[.{0,80}?\\\]", seen["prose"]
    ):
        problems.append(f"raw TeX in the text: {raw!r}")

    # images: loaded, with alt text
    for image in seen["images"]:
        if not image["loaded"]:
            problems.append(f"image did not load: {image['src']}")
        # (a figure drawn by a widget's Output at view time carries no alt text
        # that the book could set; the figures of the book itself must)
        if not image["in_widget"] and not (image["alt"] or "").strip():
            problems.append(f"image without alt text: {image['src']}")

    # links: internal ones resolve; launch buttons open repository files, labs the student copy
    for href in sorted(set(seen["links"])):
        if href.startswith(server):
            if (problem := _check_internal_link(href, server)) is not None:
                problems.append(problem)
        elif match := LAUNCH.search(href):
            target = unquote(match["colab"] or match["binder"])
            if not (ROOT / target).is_file():
                problems.append(f"launch button opens {target}, which is not in the repository")
            if target.startswith("labs/") and not target.startswith("labs/student/"):
                problems.append(f"launch button opens a master notebook: {href}")
            if page_name.startswith("labs/student/") and target != page_name + ".ipynb":
                problems.append(f"launch button of {page_name} opens {target}")
            if match["colab"] and not target.endswith(".ipynb"):
                problems.append(f"Colab button opens {target}, but Colab opens only notebooks")
            # Binder opens a markdown page as a notebook only if it is a jupytext notebook
            # (environment.yml installs jupytext, postBuild makes it the .md viewer)
            if match["binder"] and not target.endswith(".ipynb") and not _is_text_notebook(target):
                problems.append(f"Binder button opens {target}, which is not a jupytext notebook")

    # nothing a reader must not see
    visible = seen["visible"]
    for example in seen["doctests"]:  # a docstring's example may show an exception on purpose
        visible = visible.replace(example, "")
    for leak in LEAKS.finditer(visible):
        start = max(0, leak.start() - 60)
        problems.append(f"traceback/warning text visible: {visible[start : leak.end() + 60]!r}")
    if "NBVAL_" in visible:
        problems.append("an nbval marker (# NBVAL_...) is visible")
    for element in seen["clipped"]:
        problems.append(f"content cut at the column edge (overflow hidden): {element}")
    for text in seen["stderr"]:
        problems.append(f"stderr output visible: {text!r}")
    # on lab pages every solution line; elsewhere only lines long enough to be
    # specific to the answer (a chapter may well show `loss.backward()`)
    for secret in solutions:
        if (page_name.startswith("labs/") or len(secret) >= 30) and secret in visible:
            problems.append(f"solution line visible: {secret!r}")

    # widgets: each stored view is rendered from the static state, and a page
    # without views carries no (stale) widget state or widget scripts
    if seen["widget_views"] and seen["widgets"] == 0:
        problems.append("the page has widget views but no widget was rendered")
    if (seen["widget_state"] or seen["widget_scripts"]) and not seen["widget_views"]:
        problems.append("stale widget state or scripts: the page loads widgets but shows none")

    assert not problems, f"{page_name}:\n  " + "\n  ".join(dict.fromkeys(problems))


def test_every_toc_page_was_built():
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` (make test builds it first)")
    missing = [p for p in PAGES if not (HTML / f"{p}.html").is_file()]
    assert not missing, f"pages of _toc.yml missing from _build/html: {missing}"
