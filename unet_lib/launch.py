"""The launch cells: "Open in Colab" and "Launch Binder" badges, and the install cell for Colab.

Every course notebook (solution and exercise editions, English and Chinese) starts with two
generated cells, written by this module from one place, ``pyproject.toml``: the repository's
address (``[project.urls] Repository``, a ``https://github.com/OWNER/REPO``) and the tag of this
version (``"v" + [project] version``).

* A markdown cell, id ``launch-badges``, first in the notebook: the two badges, each opening *this*
  notebook (its path in the repository) at the tag. Binder opens it in JupyterLab.
* A code cell, id ``colab-install``, the notebook's first code cell: in Colab only
  (``"google.colab" in sys.modules``) it pip-installs the course at the tag (not editable) and
  turns on Colab's custom widget manager, which ipywidgets 8's widgets (the feature-map explorer)
  need there. Anywhere else it does nothing. The course's dependencies have lower bounds only, so
  pip keeps Colab's own torch, numpy and ipywidgets, and nothing needs a restart: ``unet_lib`` is
  first imported after the cell. nbval skips it (tag ``nbval-skip``).

Both carry the tag ``generated``: a translation (the Chinese edition) or a static rendering (the
course website) recognises and skips them by it. A fork or a move changes the address in
``pyproject.toml``; then ``python -m unet_lib.launch`` rewrites every notebook's cells in
``notebooks/`` and ``make exercises`` the exercise editions (``unet_lib.exercises`` points their
badges at ``exercises/``). ``python -m unet_lib.launch --check`` (run by ``make test``) exits with
status 1, naming the notebook and the cell, where a notebook's cells disagree with
``pyproject.toml``. Only the two generated cells are ever added, replaced or moved; every other
cell, and every output, stays as it is.
"""

import argparse
import copy
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .atomic import atomic_write

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib

__all__ = [
    "BADGES_ID", "INSTALL_ID", "GENERATED_TAG", "NBVAL_SKIP_TAG", "LaunchError", "Source", "read_source",
    "colab_url", "binder_url", "badges_cell", "install_cell", "with_launch_cells", "retarget_badges",
    "problems", "main",
]

BADGES_ID = "launch-badges"
INSTALL_ID = "colab-install"
GENERATED_TAG = "generated"      # written by a generator: translations and the website skip it
NBVAL_SKIP_TAG = "nbval-skip"    # nbval does not execute the cell
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
CHECKED_FOLDERS = ("notebooks", "exercises", "zh/notebooks", "zh/exercises")   # those that exist

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
_GITHUB = re.compile(r"https://github\.com/(?P<owner>[A-Za-z0-9][A-Za-z0-9-]*)/(?P<repo>[A-Za-z0-9._-]+?)(\.git)?/?")


class LaunchError(ValueError):
    """``pyproject.toml`` or a notebook does not allow the launch cells; the message says why."""


@dataclass(frozen=True)
class Source:
    """Where the course lives: the GitHub repository and the tag of this version."""
    owner: str   # the GitHub user or organisation
    repo: str    # the repository's name
    tag: str     # "v" + the package version: what the badges open and Colab installs

    @property
    def repository(self) -> str:
        return f"https://github.com/{self.owner}/{self.repo}"

    @property
    def requirement(self) -> str:
        """What Colab's cell gives pip: the course at the tag, built from the repository."""
        return f"unet_lib @ git+{self.repository}@{self.tag}"


def read_source(pyproject: Path | str = "pyproject.toml") -> Source:
    """The course's address and tag from ``pyproject`` (``[project.urls] Repository`` and
    ``[project] version``)."""
    pyproject = Path(pyproject)
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf8"))["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as error:
        raise LaunchError(f"cannot read the [project] table of {pyproject} (resolved: {pyproject.resolve()}): "
                          f"{type(error).__name__}: {error}; run from the repository root") from None
    address = project.get("urls", {}).get("Repository")
    match = _GITHUB.fullmatch(address or "")
    if match is None:
        raise LaunchError(f"[project.urls] Repository in {pyproject} is {address!r}; the launch badges need a GitHub "
                          f"address such as 'https://github.com/OWNER/REPO' (Colab and Binder open GitHub repositories)")
    version = project.get("version")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9A-Za-z.+-]+", version):
        raise LaunchError(f"[project] version in {pyproject} is {version!r}; expected a version such as '0.1.0'")
    return Source(match["owner"], match["repo"], f"v{version}")


def colab_url(source: Source, path: str) -> str:
    """Colab's address of the notebook at ``path`` (relative to the repository root) at the tag."""
    return f"https://colab.research.google.com/github/{source.owner}/{source.repo}/blob/{source.tag}/{path}"


def binder_url(source: Source, path: str) -> str:
    """mybinder.org's address that builds the repository at the tag and opens ``path`` in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{source.owner}/{source.repo}/{source.tag}?urlpath=lab/tree/{path}"


def _generated(cell: NotebookNode, cell_id: str, *more_tags: str) -> NotebookNode:
    cell.id = cell_id
    cell.metadata = {"tags": [GENERATED_TAG, *more_tags]}
    return cell


def badges_cell(source: Source, path: str) -> NotebookNode:
    """The markdown cell with the two badges for the notebook at ``path``."""
    return _generated(nbformat.v4.new_markdown_cell(
        f"[![Open In Colab]({COLAB_BADGE})]({colab_url(source, path)})\n"
        f"[![Launch Binder]({BINDER_BADGE})]({binder_url(source, path)})"), BADGES_ID)


def install_cell(source: Source, requirement: str | None = None) -> NotebookNode:
    """The code cell that installs the course in Colab and does nothing elsewhere. ``requirement``
    replaces what pip installs (tests give it a locally built wheel)."""
    requirement = requirement or source.requirement
    return _generated(nbformat.v4.new_code_cell(
        f"# In Google Colab: install the course ({source.tag}, the version of this notebook), then let the\n"
        f"# feature-map explorer's widgets show. Anywhere else this cell does nothing.\n"
        f"import sys\n"
        f"\n"
        f"if \"google.colab\" in sys.modules:\n"
        f"    import subprocess\n"
        f"\n"
        f"    # not editable, at the tag; Colab's own torch, numpy and ipywidgets stay (the course\n"
        f"    # asks for lower bounds only), so nothing needs a restart\n"
        f"    course = \"{requirement}\"\n"
        f"    pip = subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", course],\n"
        f"                         capture_output=True, text=True)\n"
        f"    if pip.returncode != 0:\n"
        f"        raise RuntimeError(\"pip could not install the course:\\n\" + pip.stderr[-3000:])\n"
        f"    from google.colab import output\n"
        f"\n"
        f"    output.enable_custom_widget_manager()   # Colab shows ipywidgets 8's widgets through it"),
        INSTALL_ID, NBVAL_SKIP_TAG)


def _without_generated(cells: list) -> list:
    return [c for c in cells if c.get("id") not in (BADGES_ID, INSTALL_ID)]


def with_launch_cells(nb: NotebookNode, source: Source, path: str,
                      requirement: str | None = None) -> NotebookNode:
    """``nb`` (not changed) with its launch cells for ``path``: the badges first, the install cell
    right before the first other code cell (at the end when there is none). Other cells stay."""
    if any("id" not in cell for cell in nb.cells) or (nb.nbformat, nb.nbformat_minor) < (4, 5):
        raise LaunchError(f"{path} is nbformat {nb.nbformat}.{nb.nbformat_minor} without cell ids; the launch cells "
                          f"are found by id (nbformat 4.5): open and save it in JupyterLab 4 first")
    nb = copy.deepcopy(nb)
    cells = _without_generated(nb.cells)
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cells.insert(first_code, install_cell(source, requirement))
    nb.cells = [badges_cell(source, path)] + cells
    nbformat.validate(nb)
    return nb


def retarget_badges(nb: NotebookNode, path: str) -> None:
    """Point ``nb``'s badges (if it has them) at the notebook ``path``, in place: the exercise
    edition, made from a solution notebook, opens ``exercises/NN_*.ipynb`` in Colab and Binder."""
    for cell in nb.cells:
        if cell.get("id") == BADGES_ID:
            cell.source = re.sub(r"(/blob/[^/)]+/|\?urlpath=lab/tree/)[^)]*\)", rf"\g<1>{path})", cell.source)


def problems(nb: NotebookNode, source: Source, path: str) -> list[str]:
    """What is wrong with ``nb``'s launch cells for the notebook at ``path`` ([] when nothing)."""
    want = with_launch_cells(nb, source, path)
    found = []
    for cell_id, what in ((BADGES_ID, "badges cell"), (INSTALL_ID, "Colab install cell")):
        index = next((i for i, c in enumerate(nb.cells) if c.get("id") == cell_id), None)
        wanted = next(i for i, c in enumerate(want.cells) if c.id == cell_id)
        if index is None:
            found.append(f"{path}: no {what} (id {cell_id!r})")
        elif nb.cells[index].source != want.cells[wanted].source:
            found.append(f"{path}: the {what} (id {cell_id!r}, cell {index + 1}) differs from what pyproject.toml's "
                         f"address {source.repository} and tag {source.tag} give")
        elif nb.cells[index].metadata.get("tags") != want.cells[wanted].metadata.tags:
            found.append(f"{path}: the {what} (id {cell_id!r}) has tags {nb.cells[index].metadata.get('tags')}, "
                         f"expected {want.cells[wanted].metadata.tags}")
        elif index != wanted:
            place = "first in the notebook" if cell_id == BADGES_ID else "the notebook's first code cell"
            found.append(f"{path}: the {what} (id {cell_id!r}) is cell {index + 1}; it must be {place}")
    return found


def _notebooks(paths: Sequence[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(path.glob(NOTEBOOK_GLOB))
        elif path.is_file():
            found.append(path)
        else:
            raise LaunchError(f"{path} does not exist (resolved: {path.resolve()})")
    return found


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise LaunchError(f"{path} is not inside the repository {root.resolve()} (the folder of "
                          f"pyproject.toml); its badges need its path in the repository") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unet_lib.launch [--check] [PATH ...]``: write (or check) the launch cells.
    Exit status: 0 done (or up to date), 1 out of date (``--check``), 2 an error."""
    parser = argparse.ArgumentParser(prog="python -m unet_lib.launch", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help="notebooks or folders of NN_*.ipynb (default: notebooks/; with --check: "
                             f"{', '.join(CHECKED_FOLDERS)}, those that exist)")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"),
                        help="where the address and version are (default: pyproject.toml); notebook "
                             "paths are taken relative to its folder")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    root = args.pyproject.parent
    try:
        source = read_source(args.pyproject)
        default = [root / f for f in CHECKED_FOLDERS if (root / f).is_dir()] if args.check else [root / "notebooks"]
        paths = _notebooks(args.paths or default)
        if args.check:
            found = []
            for path in paths:
                found += problems(nbformat.read(path, as_version=4), source, _relative(path, root))
            for line in found:
                print(f"out of date: {line}", file=sys.stderr)
            if found:
                print("run `python -m unet_lib.launch` (the solution notebooks), then `make exercises`", file=sys.stderr)
            return 1 if found else 0
        changed = 0
        for path in paths:
            text = path.read_text(encoding="utf8")
            nb = nbformat.reads(text, as_version=4)
            new = nbformat.writes(with_launch_cells(nb, source, _relative(path, root))) + "\n"
            if new != text:
                atomic_write(path, new)
                changed += 1
                print(f"wrote {path}")
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(paths)} notebooks, {changed} changed ({source.repository} at {source.tag})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
