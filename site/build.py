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

The steps: stage the sources in ``_build/site-src/`` (the notebooks with their generated launch
cells removed, as the theme has its own buttons; ``intro.md``; ``_toc.yml`` in course order;
``_config.yml``; the assets in ``_assets/``, served as ``_static/``), build with ``jupyter-book build``, and copy the HTML
to ``_build/site/`` (replaced only once the new build succeeded).
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
from unet_lib.launch import GENERATED_TAG, NOTEBOOK_GLOB, Source, read_source  # noqa: E402

TITLE = "unet-course: U-Net, built step by step"


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
WIDGETS_CONFIG_SOURCE = ("require.config({paths: {'@jupyter-widgets/html-manager/dist': "
                         "new URL('html-manager/dist', document.currentScript.src).href}});\n")


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


def readme_sections(readme: str) -> tuple[str, str, str]:
    """(title, overview, notebook table section) from the README: the text above its first
    '## ' heading, and the '## The notebooks' section."""
    title, _, rest = readme.partition("\n")
    if not title.startswith("# "):
        raise SiteError("README.md does not start with a '# ' title")
    overview = rest.split("\n## ", 1)[0].strip()
    match = re.search(r"(?ms)^## The notebooks\n(.*?)(?=^## |\Z)", readme)
    if match is None:
        raise SiteError("README.md has no '## The notebooks' section; the landing page shows it")
    return title[2:].strip(), overview, match[1].strip()


def landing_page(readme: str, names: list[str], source: Source, notebooks_dir: str) -> str:
    """The landing page: the README's overview, how to run the notebooks, and its notebook table
    with each notebook's name a link to its page."""
    title, overview, table = readme_sections(readme)
    missing = [n for n in names if f"`{n}`" not in table]
    if missing:
        raise SiteError(f"README.md's notebook table does not name {', '.join(missing)}")
    for name in names:
        table = table.replace(f"| `{name}` |", f"| [`{name}`]({notebooks_dir}/{name}.ipynb) |", 1)
    first = f"{notebooks_dir}/{names[0]}.ipynb"
    colab = f"https://colab.research.google.com/github/{source.owner}/{source.repo}/blob/{source.tag}/{first}"
    binder = f"https://mybinder.org/v2/gh/{source.owner}/{source.repo}/{source.tag}?urlpath=lab/tree/{first}"
    return (f"# {title}\n\n{overview}\n\n"
            f"## Run the notebooks\n\n"
            f"Every page here shows a notebook with the outputs of its last run. To run it yourself, use "
            f"the launch button at the top of the page (Colab or Binder), or open the first notebook in "
            f"[Colab]({colab}) or on [Binder]({binder}); to run the course on your computer, follow "
            f"[the README]({source.repository}#quick-start).\n\n"
            f"## The notebooks\n\n{table}\n")


def config(source: Source, title: str, language: str = "en") -> dict:
    """Jupyter Book's ``_config.yml`` (written as JSON, which is YAML)."""
    return {
        "title": title,
        "author": "the unet-course authors",
        "copyright": "the unet-course authors (code: MIT)",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},   # the stored outputs, never re-run
        "parse": {"myst_enable_extensions": ["dollarmath", "amsmath", "colon_fence"]},
        "sphinx": {"config": {
            "language": language,
            # not "_static": Jupyter Book would add every .js and .css in it to every page
            "html_static_path": ["_assets"],
            # the theme's options in full (a partial dict would replace Jupyter Book's mapping)
            "html_theme_options": {
                "search_bar_text": "Search this book...",
                "repository_url": source.repository, "repository_branch": source.tag, "path_to_docs": "",
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


def stage(out: Path, static: Path, *, notebooks_dir: Path = ROOT / "notebooks", readme: Path = ROOT / "README.md",
          pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Write the book's sources to ``out`` (emptied first); returns the notebooks' names in course order."""
    source = read_source(pyproject)
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
    (out / "intro.md").write_text(landing_page(readme.read_text(encoding="utf8"), names, source, "notebooks"),
                                  encoding="utf8")
    toc = {"format": "jb-book", "root": "intro",
           "chapters": [{"file": f"notebooks/{name}"} for name in names]}
    (out / "_toc.yml").write_text(json.dumps(toc, indent=1), encoding="utf8")
    (out / "_config.yml").write_text(json.dumps(config(source, TITLE), indent=1), encoding="utf8")
    shutil.copytree(static, out / "_assets", ignore=shutil.ignore_patterns("assets.json"))
    (out / "_assets" / WIDGETS_CONFIG_JS).write_text(WIDGETS_CONFIG_SOURCE, encoding="utf8")
    return names


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
        names = stage(ROOT / "_build" / "site-src", static)
        build(ROOT / "_build" / "site-src", args.out, args.jupyter_book)
    except SiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {len(names)} notebooks, {size / 1e6:.1f} MB, built in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
