"""The course website: a static site of the twelve notebooks, built from their stored outputs.

    .venv/bin/python site/build.py            # what `make site` runs; the site is in _build/site/

Jupyter Book 1 (Sphinx, myst-nb, the book theme) turns the notebooks into pages without running
them (``execute_notebooks: off``): the figures, printed numbers and the feature-map explorer's
saved widget state are the ones committed with the notebooks (``tools/run_notebooks.py`` stores
the widget state). The landing page is the README's course overview and notebook table; every
notebook page has Colab and Binder launch buttons for the tag in ``pyproject.toml`` (the same
source as the notebooks' badges, ``unet_lib.launch``).

Nothing is fetched from another host when the site is viewed: MathJax, require.js and the widget
renderer (``@jupyter-widgets/html-manager``) are served from the site's ``_static/``. They come
from the npm registry (``npm pack``, exact versions, each tarball checked against the SHA-512 that
the registry published for it, kept in ``ASSETS``) into ``_build/site-assets/``, once.

This script runs in the course's environment (``.venv``: nbformat, ``unet_lib.launch``); only the
``jupyter-book`` command comes from its own environment (``.venv-site``, from
``requirements-site.txt``): Jupyter Book 1 caps Sphinx, docutils and others, and a separate
environment means it can never up- or downgrade anything the course itself runs with.

The steps, for each edition (``EDITIONS``: English at the root, Chinese in ``zh/``): stage the
sources in ``_build/site-src-<language>/`` (the notebooks with their generated launch
cells removed, as the theme has its own buttons; ``intro.md``; ``_toc.yml`` in course order;
``_config.yml``; the assets in ``_assets/``, served as ``_static/``), build with ``jupyter-book build``, and copy the HTML
to ``_build/site/`` (or its subfolder; replaced only once the new build succeeded).
"""

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from unet_lib.launch import GENERATED_TAG, NOTEBOOK_GLOB, Source, binder_url, colab_url, read_source  # noqa: E402



@dataclass(frozen=True)
class Edition:
    """One language of the site: its notebooks, landing page and place in the site."""
    language: str         # Sphinx's language: search stemming, the theme's labels
    notebooks: str        # the notebooks' folder in the repository; its parent is where the
                          # launch buttons look ("" for notebooks/, "zh" for zh/notebooks/)
    readme: str           # its overview (above the first '## ') and notebook table make the landing page
    folder: str           # where in the site: "" (the root) or a subfolder
    title: str
    label: str            # its name in the other editions' language switch
    table_heading: str = "## The notebooks"
    run_heading: str = "## Run the notebooks"
    # {colab}, {binder}, {readme}: addresses
    run_text: str = ("Every page here shows a notebook with the outputs of its last run. To run it yourself, use "
                     "the launch button at the top of the page (Colab or Binder), or open the first notebook in "
                     "[Colab]({colab}) or on [Binder]({binder}); to run the course on your computer, follow "
                     "[the README]({readme}).")


# The English edition at the site's root, the Chinese one (issue #23) in zh/; an edition whose
# notebooks folder does not exist is not built.
EDITIONS = (
    Edition("en", "notebooks", "README.md", "", "unet-course: U-Net, built step by step", "English"),
    Edition("zh_CN", "zh/notebooks", "README.zh-CN.md", "zh", "unet-course：一步步搭建U-Net", "中文",
            table_heading="## 笔记本", run_heading="## 运行笔记本",
            run_text=("这里的每一页展示一个笔记本及其最近一次运行的输出。要自己运行，请使用页面顶部的启动按钮"
                      "（Colab或Binder），或者在[Colab]({colab})或[Binder]({binder})中打开第一个笔记本；要在自己的"
                      "电脑上运行本课程，请按照[中文README]({readme})操作。")),
)


@dataclass(frozen=True)
class Asset:
    """A file set from an npm package, served from the site's ``_static/<folder>``."""
    package: str     # name on the npm registry
    version: str     # exact
    integrity: str   # the registry's dist.integrity for this version (SHA-512 of the tarball)
    folder: str      # under _static/
    keep: tuple[str, ...]   # path prefixes inside the package (after "package/") that are copied
    drop: tuple[str, ...] = ()   # prefixes left out of those


ASSETS = (
    # MathJax 3, CommonHTML output: the combined TeX component, its fonts, the TeX extensions it
    # loads on demand (autoload), the menu and accessibility parts (sre: the speech rules the
    # menu's explorer loads)
    Asset("mathjax", "3.2.2",
          "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
          "mathjax", ("es5/tex-chtml.js", "es5/input/", "es5/output/chtml", "es5/ui/", "es5/a11y/", "es5/sre/",
                      "es5/adaptors/", "LICENSE")),
    Asset("requirejs", "2.3.8",
          "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
          "requirejs", ("require.js", "README.md")),
    # the widget renderer for ipywidgets 8 (its controls are built in), with its icon fonts
    Asset("@jupyter-widgets/html-manager", "1.0.15",
          "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
          "html-manager", ("dist/", "LICENSE"), ("dist/embed.js", "dist/libembed-amd.js", "dist/embed-amd.js.map")),
)
MATHJAX_JS = "mathjax/es5/tex-chtml.js"
REQUIRE_JS = "requirejs/require.js"
WIDGETS_JS = "html-manager/dist/embed-amd.js"
# embed-amd.js defines its renderer as the require.js module "@jupyter-widgets/html-manager/dist/
# libembed-amd" and loads its icon fonts from that module's address, by default next to the page
# (404 on every page): this file, loaded after require.js, maps the name into _static/
WIDGETS_CONFIG_JS = "html-manager-paths.js"
# MathJax 2's Hub.Queue(["Typeset", MathJax.Hub, element]) on top of MathJax 3, for the widget renderer
WIDGETS_MATHJAX2_SHIM = """(function () {
  var current = window.MathJax;
  function withHub(mathjax) {
    if (mathjax && typeof mathjax === "object" && mathjax.version && !mathjax.Hub) {
      mathjax.Hub = {Queue: function (command) {
        var element = command[2];
        var ready = (mathjax.startup && mathjax.startup.promise) || Promise.resolve();
        ready.then(function () { return mathjax.typesetPromise ? mathjax.typesetPromise([element]) : null; });
      }};
    }
    return mathjax;
  }
  Object.defineProperty(window, "MathJax", {configurable: true, enumerable: true,
    get: function () { return current; }, set: function (value) { current = withHub(value); }});
  withHub(current);
})();
"""
WIDGETS_CONFIG_SOURCE = ("require.config({paths: {'@jupyter-widgets/html-manager/dist': "
                         "new URL('html-manager/dist', document.currentScript.src).href}});\n"
                         # the HTML and Label widgets typeset their text with MathJax 2's
                         # MathJax.Hub.Queue (a page error on notebook 09's page: "Cannot read
                         # properties of undefined (reading 'Queue')"); the site has MathJax 3, which
                         # replaces window.MathJax when it loads: give that object a Hub.Queue that
                         # typesets the element with MathJax 3's typesetPromise
                         + WIDGETS_MATHJAX2_SHIM)


class SiteError(RuntimeError):
    """The site cannot be built; the message says what to do."""


# -- assets ------------------------------------------------------------------------------------

def _sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_assets(cache: Path, npm: str = "npm") -> Path:
    """The assets, unpacked under ``cache/static`` (fetched with ``npm pack`` when missing)."""
    static = cache / "static"
    done = static / "assets.json"
    wanted = [[a.package, a.version, a.integrity] for a in ASSETS]
    if done.is_file() and json.loads(done.read_text()) == wanted:
        return static
    tarballs = cache / "tarballs"
    tarballs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(static, ignore_errors=True)
    for asset in ASSETS:
        name = f"{asset.package.lstrip('@').replace('/', '-')}-{asset.version}.tgz"
        tarball = tarballs / name
        if not tarball.is_file() or _sha512(tarball) != asset.integrity:
            try:
                subprocess.run([npm, "pack", f"{asset.package}@{asset.version}", "--silent",
                                "--pack-destination", str(tarballs)], check=True, stdout=subprocess.DEVNULL)
            except (OSError, subprocess.CalledProcessError) as error:
                raise SiteError(f"npm could not fetch {asset.package}@{asset.version} ({error}); the site serves "
                                f"it from _static/. Install Node.js's npm (Debian: apt-get install npm)") from None
        if _sha512(tarball) != asset.integrity:
            raise SiteError(f"{tarball} has {_sha512(tarball)}, but the registry published {asset.integrity} "
                            f"for {asset.package}@{asset.version}; not used")
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                inner = member.name.partition("/")[2]   # every npm tarball has one top folder, "package/"
                if not member.isfile() or not inner.startswith(asset.keep) or inner.startswith(asset.drop):
                    continue
                target = static / asset.folder / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
    done.write_text(json.dumps(wanted))
    return static


# -- the sources -------------------------------------------------------------------------------

def notebook_title(nb: nbformat.NotebookNode) -> str:
    """The notebook's first '# ' heading (what the navigation shows)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise SiteError("no '# ' title in any markdown cell")


def without_generated(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without the cells a generator wrote (launch badges, Colab's install cell)."""
    nb.cells = [c for c in nb.cells if GENERATED_TAG not in c.metadata.get("tags", [])]
    return nb


def readme_sections(readme: str, table_heading: str = "## The notebooks") -> tuple[str, str, str]:
    """(title, overview, notebook table section) from the README: the text above its first
    '## ' heading, and the section under ``table_heading``."""
    title, _, rest = readme.partition("\n")
    if not title.startswith("# "):
        raise SiteError("README.md does not start with a '# ' title")
    overview = rest.split("\n## ", 1)[0].strip()
    match = re.search(rf"(?ms)^{re.escape(table_heading)}\n(.*?)(?=^## |\Z)", readme)
    if match is None:
        raise SiteError(f"README.md has no '{table_heading}' section; the landing page shows it")
    return title[2:].strip(), overview, match[1].strip()


def repository_links(markdown: str, source: Source) -> str:
    """``markdown`` with its relative links (``[README.zh-CN.md](README.zh-CN.md)``), which lead
    to files of the repository and not to pages of the site, pointed at the repository at the tag;
    addresses, anchors and the site's own ``notebooks/`` pages are left as they are."""
    return re.sub(r"\]\((?![a-z][a-z0-9+.-]*:|#|/|notebooks/)([^)\s]+)\)",
                  lambda m: f"]({source.repository}/blob/{source.tag}/{m[1]})", markdown)


def landing_page(readme: str, names: list[str], source: Source, edition: Edition = EDITIONS[0],
                 switch: str = "") -> str:
    """The landing page: the README's overview, how to run the notebooks, and its notebook table
    with each notebook's name a link to its page; ``switch`` (HTML) links the other editions."""
    title, overview, table = readme_sections(readme, edition.table_heading)
    missing = [n for n in names if f"`{n}`" not in table]
    if missing:
        raise SiteError(f"{edition.readme}'s notebook table does not name {', '.join(missing)}")
    for name in names:
        table = table.replace(f"| `{name}` |", f"| [`{name}`](notebooks/{name}.ipynb) |", 1)
    overview, table = repository_links(overview, source), repository_links(table, source)
    first = f"{edition.notebooks}/{names[0]}.ipynb"
    run = edition.run_text.format(colab=colab_url(source, first), binder=binder_url(source, first),
                                  readme=f"{source.repository}/blob/{source.tag}/{edition.readme}")
    return (f"# {title}\n\n{switch + chr(10) + chr(10) if switch else ''}{overview}\n\n"
            f"{edition.run_heading}\n\n{run}\n\n{edition.table_heading}\n\n{table}\n")


def config(source: Source, edition: Edition = EDITIONS[0]) -> dict:
    """Jupyter Book's ``_config.yml`` (written as JSON, which is YAML)."""
    return {
        "title": edition.title,
        "author": "the unet-course authors",
        "copyright": "the unet-course authors (code: MIT)",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},   # the stored outputs, never re-run
        "parse": {"myst_enable_extensions": ["dollarmath", "amsmath", "colon_fence"]},
        "sphinx": {"config": {
            "language": edition.language,
            # not "_static": Jupyter Book would add every .js and .css in it to every page
            "html_static_path": ["_assets"],
            # the theme's options in full (a partial dict would replace Jupyter Book's mapping)
            "html_theme_options": {
                "search_bar_text": "Search this book...",
                "repository_url": source.repository, "repository_branch": source.tag,
                "path_to_docs": Path(edition.notebooks).parent.as_posix().removeprefix("."),
                # every notebook page: Colab and Binder (JupyterLab) at the tag, as the notebooks' badges
                "launch_buttons": {"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
                                   "colab_url": "https://colab.research.google.com", "thebe": False},
                "use_repository_button": True, "use_issues_button": False, "use_edit_page_button": False,
                "use_download_button": True, "home_page_in_toc": True,
            },
            "html_context": {"default_mode": "auto"},   # unset, the theme logs an error on every page
            "mathjax_path": MATHJAX_JS,                   # relative: served from _static/
            "nb_ipywidgets_js": {REQUIRE_JS: {}, WIDGETS_CONFIG_JS: {}, WIDGETS_JS: {}},   # myst-nb's default: a CDN
            "html_show_sourcelink": False,
            "smartquotes": False,   # quotes (the paper's too) as written, not typographic
            # Jupyter Book's list without sphinx_thebe (live code on the page: not used, and it
            # declares its script twice) and intersphinx (nothing to link to)
            "extensions": ["sphinx_togglebutton", "sphinx_copybutton", "myst_nb", "jupyter_book", "sphinx_comments",
                           "sphinx_external_toc", "sphinx_design", "sphinx_book_theme"],
        }},
    }


def stage(out: Path, static: Path, edition: Edition = EDITIONS[0], *, notebooks_dir: Path | None = None,
          pyproject: Path = ROOT / "pyproject.toml", switch: str = "") -> list[str]:
    """Write the book's sources of ``edition`` to ``out`` (emptied first); returns the notebooks'
    names in course order. ``notebooks_dir`` replaces the edition's folder (tests)."""
    source = read_source(pyproject)
    notebooks_dir = notebooks_dir or ROOT / edition.notebooks
    paths = sorted(notebooks_dir.glob(NOTEBOOK_GLOB))
    if not paths:
        raise SiteError(f"no notebooks named {NOTEBOOK_GLOB} in {notebooks_dir}")
    shutil.rmtree(out, ignore_errors=True)
    (out / "notebooks").mkdir(parents=True)
    names = []
    for path in paths:
        nb = without_generated(nbformat.read(path, as_version=4))
        notebook_title(nb)   # a page without a title would have none in the navigation
        nbformat.write(nb, out / "notebooks" / path.name)
        names.append(path.stem)
    readme = (ROOT / edition.readme).read_text(encoding="utf8")
    (out / "intro.md").write_text(landing_page(readme, names, source, edition, switch), encoding="utf8")
    toc = {"format": "jb-book", "root": "intro",
           "chapters": [{"file": f"notebooks/{name}"} for name in names]}
    (out / "_toc.yml").write_text(json.dumps(toc, indent=1), encoding="utf8")
    (out / "_config.yml").write_text(json.dumps(config(source, edition), indent=1), encoding="utf8")
    shutil.copytree(static, out / "_assets", ignore=shutil.ignore_patterns("assets.json"))
    (out / "_assets" / WIDGETS_CONFIG_JS).write_text(WIDGETS_CONFIG_SOURCE, encoding="utf8")
    return names


def language_switch(edition: Edition, editions: list[Edition]) -> str:
    """HTML links from ``edition``'s landing page to the others' ("" for a site of one language)."""
    links = []
    for other in editions:
        if other != edition:
            up = "../" * len(Path(edition.folder).parts)
            links.append(f'<a href="{up}{other.folder + "/" if other.folder else ""}intro.html">{other.label}</a>')
    return f'<p class="language-switch">{" · ".join(links)}</p>' if links else ""


def build(staged: Path, site: Path, jupyter_book: str) -> None:
    """``jupyter-book build`` of ``staged``; the HTML replaces ``site`` when the build succeeded."""
    work = staged.parent / (staged.name + "-build")
    shutil.rmtree(work, ignore_errors=True)
    command = [jupyter_book, "build", str(staged), "--path-output", str(work), "--builder", "html",
               "--warningiserror", "--keep-going", "--quiet"]
    try:
        subprocess.run(command, check=True)
    except FileNotFoundError:
        raise SiteError(f"no {jupyter_book}; `make site` creates .venv-site from requirements-site.txt") from None
    except subprocess.CalledProcessError as error:
        raise SiteError(f"jupyter-book build failed (exit {error.returncode}); its messages are above") from None
    html = work / "_build" / "html"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(html, site, ignore=shutil.ignore_patterns(".buildinfo", ".doctrees"))
    shutil.rmtree(work)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "site", help="the site (default: _build/site)")
    parser.add_argument("--jupyter-book", default=str(ROOT / ".venv-site" / "bin" / "jupyter-book"),
                        help="the jupyter-book command (default: .venv-site/bin/jupyter-book)")
    parser.add_argument("--npm", default="npm", help="the npm command that fetches the assets")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        static = fetch_assets(ROOT / "_build" / "site-assets", args.npm)
        editions = [e for e in EDITIONS if (ROOT / e.notebooks).is_dir()]
        built = []
        for edition in sorted(editions, key=lambda e: e.folder):   # the root first: it replaces the site
            staged = ROOT / "_build" / f"site-src-{edition.language}"
            names = stage(staged, static, edition, switch=language_switch(edition, editions))
            build(staged, args.out / edition.folder, args.jupyter_book)
            built.append(f"{len(names)} notebooks ({edition.language})")
    except SiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {', '.join(built)}, {size / 1e6:.1f} MB, built in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
