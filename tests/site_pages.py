"""The built course website in a real (headless) browser: every page, served from 127.0.0.1.

Not part of ``make test`` (the site is built by ``make site``, in its own environment, and this
file's name does not start with ``test_``, so pytest collects it only when named): ``make
site-test`` runs it, and ``.ci/run`` and the GitHub workflow run that as a step of their own after
``make site``. ``UNET_SITE`` names another built site (default: ``_build/site``).

The site is served by Python's http.server on 127.0.0.1 (a free port); Chromium (the
``browser`` fixture of tests/test_browser.py: Debian's package, driven by playwright; skipped
with the reason where there is none, a failure under ``UNET_REQUIRE_BROWSER=1``) opens every HTML
page and the test fails, naming the page, on

* an uncaught error in the page, or a message logged as a console error;
* a request that failed or was answered with an HTTP error;
* a request to any other host (it is stopped, not sent: MathJax, require.js and the widget
  renderer must come from the site itself);
* a figure missing: a notebook page shows fewer images than its notebook has image outputs, or an
  image that did not load;
* math not rendered: a formula MathJax did not typeset, or fewer formulas than the notebook's;
* a feature-map explorer (in the saved widget state) drawn without its images;
* a notebook page without its Colab and Binder launch buttons for pyproject.toml's address and
  tag, or the navigation out of course order; and a search that finds nothing.

Both editions (issue #23): the English pages at the root, the Chinese ones (from ``zh/notebooks``)
under ``zh/``, each checked against its own notebook; every notebook of either edition has its
page, and each landing page links the other language's.
"""

import functools
import http.server
import json
import os
import re
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_browser import browser  # noqa: E402,F401  (the fixture: Debian's Chromium via playwright)

from unet_lib.launch import GENERATED_TAG, NOTEBOOK_GLOB, binder_url, colab_url, read_source  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("UNET_SITE", ROOT / "_build" / "site"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB))
ZH_NOTEBOOKS = sorted((ROOT / "zh" / "notebooks").glob(NOTEBOOK_GLOB))   # the Chinese edition, in zh/
LOAD_S = 60       # a page and everything it loads
RENDER_S = 30     # MathJax typesets, the widget renderer draws

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):   # no line per request in the test's output
        pass


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "intro.html").is_file():
        pytest.fail(f"no built site at {SITE}: run `make site` first (or set UNET_SITE)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def expected(path: Path) -> dict:
    """What the page of the notebook at ``path`` must show, counted in the notebook (its
    generated launch cells are not on the site)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if GENERATED_TAG not in c.metadata.get("tags", [])]
    outputs = [o for c in cells if c.cell_type == "code" for o in c.outputs]
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    markdown = re.sub(r"(?s)```.*?```|`[^`\n]*`", "", markdown)   # code is not math
    state = json.dumps(nb.metadata.get("widgets", {}))
    return {
        "images": sum(any(k.startswith("image/") for k in o.get("data", {})) for o in outputs),
        "math": len(re.findall(r"(?<!\\)\$\$?[^$\n]+?\$\$?", markdown)),
        "widgets": sum(WIDGET_VIEW in o.get("data", {}) for o in outputs),
        "explorer": "unet-explorer" in state,
        "title": next(line[2:].strip() for c in cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("# ")),
    }


def pages() -> list[str]:
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if "_static" not in p.parts)


class Watch:
    """Everything that went wrong while a page was open."""

    def __init__(self, page, origin: str):
        self.problems: list[str] = []
        self.origin = origin
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} ({r.failure})")
                if not r.url.startswith("data:") and urlparse(r.url).netloc == urlparse(origin).netloc else None)
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        page.route("**/*", self.route)

    def route(self, route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).netloc == urlparse(self.origin).netloc:
            route.continue_()
        else:   # never sent: a site that needs the internet to show itself fails here
            self.problems.append(f"request to another host: {url}")
            route.abort()


# resolves once MathJax has typeset the page (at once on a page without MathJax)
MATHJAX_DONE_JS = """async () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    return true;
}"""

PAGE_FACTS_JS = """() => {
    const outputs = [...document.querySelectorAll('.cell_output img')].filter(i => !i.closest('.jupyter-widgets'));
    const allImages = [...document.querySelectorAll('main img, article img')];
    const math = [...document.querySelectorAll('.math')];
    const launch = [...document.querySelectorAll('a[href]')].map(a => a.href);
    const explorer = document.querySelector('.unet-explorer');
    const explorerImages = explorer ? [...explorer.querySelectorAll('img')] : [];
    return {
        outputImages: outputs.length,
        brokenImages: allImages.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
        math: math.length,
        unrendered: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
        // embed-amd draws each saved view next to its script tag, inside the same output
        widgetsNotDrawn: [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')]
            .filter(s => !s.parentElement.querySelector('.jupyter-widgets')).length,
        explorer: !!explorer,
        explorerImages: explorerImages.length,
        explorerImagesShown: explorerImages.filter(i => i.complete && i.naturalWidth > 0).length,
        links: launch,
        nav: [...document.querySelectorAll('.bd-sidebar-primary nav a.reference')].map(a => a.textContent.trim()),
        title: document.title,
    };
}"""


def test_every_page_loads_complete_and_offline(browser, site_url):  # noqa: F811
    source = read_source(ROOT / "pyproject.toml")
    names = pages()
    assert {f"notebooks/{p.stem}.html" for p in NOTEBOOKS} <= set(names), "a notebook has no page"
    assert {f"zh/notebooks/{p.stem}.html" for p in ZH_NOTEBOOKS} <= set(names), "a Chinese notebook has no page"
    titles = {}   # each edition's navigation, in course order (zh/notebooks/ for the Chinese one)
    problems = {}
    for name in names:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(RENDER_S * 1000)
        watch = Watch(page, site_url)
        found = watch.problems
        try:
            page.goto(f"{site_url}/{name}", wait_until="load", timeout=LOAD_S * 1000)
            page.wait_for_load_state("networkidle", timeout=LOAD_S * 1000)
            page.evaluate(MATHJAX_DONE_JS)
            notebook = ROOT / Path(name).with_suffix(".ipynb")   # the page of notebooks/NN_x.ipynb
            if Path(name).parent.name == "notebooks" and notebook.is_file():
                want = expected(notebook)
                folder = notebook.parent
                if folder not in titles:
                    titles[folder] = [expected(p)["title"] for p in sorted(folder.glob(NOTEBOOK_GLOB))]
                if want["widgets"]:
                    page.wait_for_function("() => [...document.querySelectorAll('script[type=\"" + WIDGET_VIEW
                                           + "\"]')].every(s => s.parentElement.querySelector('.jupyter-widgets'))")
                if want["explorer"]:
                    page.wait_for_function("() => [...document.querySelectorAll('.unet-explorer img')]"
                                           ".some(i => i.complete && i.naturalWidth > 0)")
                facts = page.evaluate(PAGE_FACTS_JS)
                found += check_notebook_page(facts, want, source, notebook.relative_to(ROOT).as_posix())
                order = titles[folder]
                found += [] if facts["nav"][-len(order):] == order else [f"navigation {facts['nav']} is not "
                                                                         f"in course order {order}"]
            else:
                facts = page.evaluate(PAGE_FACTS_JS)
                found += [f"image not shown: {src}" for src in facts["brokenImages"]]
                found += [f"math not rendered: {t!r}" for t in facts["unrendered"]]
        except Exception as error:   # a timeout: say which page, go on with the others
            found.append(f"{type(error).__name__}: {str(error).splitlines()[0]}")
        finally:
            page.close()
        if found:
            problems[name] = found
    assert not problems, "\n".join(f"{name}:\n  " + "\n  ".join(p) for name, p in problems.items())


def check_notebook_page(facts: dict, want: dict, source, path: str) -> list[str]:
    found = [f"image not shown: {src}" for src in facts["brokenImages"]]
    if facts["outputImages"] != want["images"]:
        found.append(f"{facts['outputImages']} figures on the page, the notebook has {want['images']} image outputs")
    found += [f"math not rendered: {t!r}" for t in facts["unrendered"]]
    if facts["math"] < want["math"]:
        found.append(f"{facts['math']} formulas on the page, the notebook's markdown has {want['math']}")
    if facts["widgetsNotDrawn"]:
        found.append(f"{facts['widgetsNotDrawn']} saved widgets not drawn (the widget renderer did not run)")
    if want["explorer"] and not (facts["explorer"] and facts["explorerImages"] >= 4
                                 and facts["explorerImagesShown"] == facts["explorerImages"]):
        found.append(f"the feature-map explorer is not shown with its images (explorer: {facts['explorer']}, "
                     f"images {facts['explorerImagesShown']} of {facts['explorerImages']} shown)")
    for what, url in (("Colab", colab_url(source, path)), ("Binder", binder_url(source, path))):
        if not any(link.startswith(url.split("?")[0]) and link.endswith(path) for link in facts["links"]):
            found.append(f"no {what} launch button to {url}")
    return found


def test_search_finds_a_notebook(browser, site_url):  # noqa: F811
    page = browser.new_page()
    watch = Watch(page, site_url)
    page.goto(f"{site_url}/search.html?q=skip+connections", wait_until="load", timeout=LOAD_S * 1000)
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=RENDER_S * 1000)
    assert results.count() >= 2
    assert any("notebooks/" in (results.nth(i).locator("a").first.get_attribute("href") or "")
               for i in range(results.count()))
    assert watch.problems == []


def test_each_landing_page_links_the_other_language(browser, site_url):  # noqa: F811
    """The English landing page leads to the Chinese one and back, by the language switch; each
    links its own edition's notebook pages."""
    if not ZH_NOTEBOOKS:
        pytest.skip("no Chinese notebooks in zh/notebooks yet")
    page = browser.new_page()
    watch = Watch(page, site_url)
    for start, label, target, notebooks, lang in (
            ("intro.html", "中文", "zh/intro.html", ZH_NOTEBOOKS, "zh"),
            ("zh/intro.html", "English", "intro.html", NOTEBOOKS, "en")):
        page.goto(f"{site_url}/{start}", wait_until="load", timeout=LOAD_S * 1000)
        link = page.locator(".language-switch a")
        assert link.count() == 1 and link.inner_text().strip() == label, start
        link.click()
        page.wait_for_load_state("load", timeout=LOAD_S * 1000)
        assert page.url == f"{site_url}/{target}", (start, page.url)
        assert page.evaluate("() => document.documentElement.lang").startswith(lang), page.url
        hrefs = page.evaluate("() => [...document.querySelectorAll('main a[href]')].map(a => a.href)")
        folder = f"{site_url}/{Path(target).parent.as_posix()}/".replace("/./", "/")
        missing = [p.stem for p in notebooks if f"{folder}notebooks/{p.stem}.html" not in hrefs]
        assert not missing, f"{target} does not link the pages of {missing}"
    assert watch.problems == []
