"""Tests for unet_lib.launch: the Colab and Binder badges and Colab's install cell.

The generator runs on small hand-made notebooks and on copies of the real ones in a temporary
folder (the checkout is never written). The install cell runs as Python, in this process with
``subprocess.run`` recorded, and once for real: a wheel built from this checkout is installed by
the cell into a fresh environment whose dependencies are this one's (``test_install_cell_installs_
the_wheel_in_a_fresh_environment``), with a fake ``google.colab`` module, as in Colab.
"""

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from unet_lib import exercises, launch
from unet_lib.launch import (BADGES_ID, GENERATED_TAG, INSTALL_ID, NBVAL_SKIP_TAG, LaunchError, Source, binder_url,
                             colab_url, install_cell, problems, read_source, retarget_badges, with_launch_cells)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(launch.NOTEBOOK_GLOB))
SOURCE = Source("unet-course", "unet-course", "v0.1.0")
FORK = Source("someone", "my-unet", "v0.1.0")
PATH = "notebooks/99_toy.ipynb"


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
    return nb


def _toy() -> nbformat.NotebookNode:
    imports = new_code_cell("import torch", execution_count=1,
                            outputs=[new_output("stream", name="stdout", text="kept\n")])
    return _notebook(new_markdown_cell("# 99 · Toy\n\nGoals."), imports, new_markdown_cell("Text."),
                     new_code_cell("x = 1"))


def _pyproject(tmp_path: Path, address: str = "https://github.com/someone/my-unet", version: str = "0.1.0") -> Path:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf8")
    text = re.sub(r'(?m)^Repository = ".*"$', f'Repository = "{address}"', text)
    text = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', text)
    path = tmp_path / "pyproject.toml"
    path.write_text(text, encoding="utf8")
    return path


# -- the address and the tag -----------------------------------------------------------------

def test_source_comes_from_pyproject_urls_and_version():
    source = read_source(ROOT / "pyproject.toml")
    text = (ROOT / "pyproject.toml").read_text(encoding="utf8")
    version = re.search(r'(?m)^version = "(.*)"$', text)[1]
    assert source.tag == f"v{version}"
    assert f'Repository = "{source.repository}"' in text
    assert source.requirement == f"unet_lib @ git+{source.repository}@v{version}"


def test_a_fork_changes_one_line(tmp_path):
    source = read_source(_pyproject(tmp_path, "https://github.com/someone/my-unet.git", "1.2.3"))
    assert source == Source("someone", "my-unet", "v1.2.3")
    assert colab_url(source, "notebooks/01_intuition.ipynb") == \
        "https://colab.research.google.com/github/someone/my-unet/blob/v1.2.3/notebooks/01_intuition.ipynb"
    assert binder_url(source, "exercises/01_intuition.ipynb") == \
        "https://mybinder.org/v2/gh/someone/my-unet/v1.2.3?urlpath=lab/tree/exercises/01_intuition.ipynb"


@pytest.mark.parametrize("address", ["https://gitlab.com/someone/my-unet", "github.com/someone/my-unet", ""])
def test_an_address_that_is_not_github_is_refused(tmp_path, address):
    with pytest.raises(LaunchError, match=r"Repository .* is '.*'; the launch badges need a GitHub address"):
        read_source(_pyproject(tmp_path, address))


def test_a_missing_pyproject_is_named(tmp_path):
    with pytest.raises(LaunchError, match=r"cannot read the \[project\] table of .*nothing.toml"):
        read_source(tmp_path / "nothing.toml")


# -- the cells ---------------------------------------------------------------------------------

def test_badges_first_install_cell_first_code_cell_and_nothing_else_changes():
    nb = _toy()
    new = with_launch_cells(nb, SOURCE, PATH)
    assert [c.id for c in new.cells] == [BADGES_ID, "cell-0", INSTALL_ID, "cell-1", "cell-2", "cell-3"]
    assert [c.id for c in nb.cells] == ["cell-0", "cell-1", "cell-2", "cell-3"]   # the input is not changed
    assert [c for c in new.cells if c.id not in (BADGES_ID, INSTALL_ID)] == nb.cells   # outputs too
    badges, install = new.cells[0], new.cells[2]
    assert badges.cell_type == "markdown" and install.cell_type == "code"
    assert badges.metadata.tags == [GENERATED_TAG]
    assert install.metadata.tags == [GENERATED_TAG, NBVAL_SKIP_TAG]
    assert f"({colab_url(SOURCE, PATH)})" in badges.source and f"({binder_url(SOURCE, PATH)})" in badges.source
    assert "[![Open In Colab]" in badges.source and "[![Launch Binder]" in badges.source
    assert f'"{SOURCE.requirement}"' in install.source and '"google.colab" in sys.modules' in install.source
    assert "-e" not in install.source.split() and "==" not in install.source   # not editable, no pins
    nbformat.validate(new)


def test_applying_twice_changes_nothing_and_a_fork_replaces_both_cells():
    once = with_launch_cells(_toy(), SOURCE, PATH)
    assert with_launch_cells(once, SOURCE, PATH) == once
    fork = with_launch_cells(once, FORK, PATH)
    assert len(fork.cells) == len(once.cells)
    text = fork.cells[0].source + fork.cells[2].source
    assert "someone/my-unet" in text and "unet-course/unet-course" not in text


def test_a_moved_install_cell_goes_back_before_the_first_code_cell():
    nb = with_launch_cells(_toy(), SOURCE, PATH)
    nb.cells.append(nb.cells.pop(2))                       # the learner dragged it to the end
    nb.cells.insert(3, nb.cells.pop(0))                    # and the badges below the title
    assert [c.id for c in with_launch_cells(nb, SOURCE, PATH).cells][:3] == [BADGES_ID, "cell-0", INSTALL_ID]


def test_a_notebook_without_code_gets_the_install_cell_last():
    nb = _notebook(new_markdown_cell("# Only text"))
    assert [c.id for c in with_launch_cells(nb, SOURCE, PATH).cells] == [BADGES_ID, "cell-0", INSTALL_ID]


def test_a_notebook_without_cell_ids_is_refused():
    nb = _toy()
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    with pytest.raises(LaunchError, match=r"99_toy.ipynb is nbformat 4.4 without cell ids"):
        with_launch_cells(nb, SOURCE, PATH)


def test_retarget_points_both_badges_at_another_notebook():
    nb = with_launch_cells(_toy(), SOURCE, PATH)
    retarget_badges(nb, "exercises/99_toy.ipynb")
    assert nb.cells[0].source == launch.badges_cell(SOURCE, "exercises/99_toy.ipynb").source
    assert problems(nb, SOURCE, "exercises/99_toy.ipynb") == []


# -- the check -------------------------------------------------------------------------------

def test_check_passes_current_cells_and_names_each_problem():
    good = with_launch_cells(_toy(), SOURCE, PATH)
    assert problems(good, SOURCE, PATH) == []
    assert problems(_toy(), SOURCE, PATH) == [f"{PATH}: no badges cell (id 'launch-badges')",
                                              f"{PATH}: no Colab install cell (id 'colab-install')"]
    fork = problems(good, FORK, PATH)
    assert len(fork) == 2 and all("differs from what pyproject.toml's address https://github.com/someone/my-unet "
                                  "and tag v0.1.0 give" in p for p in fork)
    assert "badges cell (id 'launch-badges', cell 1)" in problems(good, SOURCE, "exercises/99_toy.ipynb")[0]
    assert len(problems(good, Source("unet-course", "unet-course", "v0.2.0"), PATH)) == 2   # a new version

    edited = with_launch_cells(_toy(), SOURCE, PATH)
    edited.cells[2].source = edited.cells[2].source.replace("--quiet", "--quiet --upgrade")
    assert problems(edited, SOURCE, PATH) == [f"{PATH}: the Colab install cell (id 'colab-install', cell 3) differs "
                                              f"from what pyproject.toml's address {SOURCE.repository} and tag "
                                              f"{SOURCE.tag} give"]
    untagged = with_launch_cells(_toy(), SOURCE, PATH)
    untagged.cells[2].metadata.tags = [GENERATED_TAG]
    assert problems(untagged, SOURCE, PATH) == [f"{PATH}: the Colab install cell (id 'colab-install') has tags "
                                                f"['generated'], expected ['generated', 'nbval-skip']"]
    moved = with_launch_cells(_toy(), SOURCE, PATH)
    moved.cells.append(moved.cells.pop(2))
    assert problems(moved, SOURCE, PATH) == [f"{PATH}: the Colab install cell (id 'colab-install') is cell 6; it "
                                             f"must be the notebook's first code cell"]


def _repository(tmp_path: Path, notebooks: dict[str, nbformat.NotebookNode], **pyproject) -> Path:
    """A folder laid out as the repository: pyproject.toml and notebooks/."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    _pyproject(root, **pyproject)
    for name, nb in notebooks.items():
        nbformat.write(nb, root / "notebooks" / name)
    return root


def test_command_line_writes_then_checks_and_a_fork_is_out_of_date_until_rewritten(tmp_path, capsys):
    root = _repository(tmp_path, {"99_toy.ipynb": _toy(), "98_other.ipynb": _toy()})
    pyproject = str(root / "pyproject.toml")
    assert launch.main(["--check", "--pyproject", pyproject]) == 1
    assert "out of date: notebooks/98_other.ipynb: no badges cell" in capsys.readouterr().err
    assert launch.main(["--pyproject", pyproject]) == 0
    assert "2 notebooks, 2 changed (https://github.com/someone/my-unet at v0.1.0)" in capsys.readouterr().out
    written = nbformat.read(root / "notebooks" / "99_toy.ipynb", as_version=4)
    assert "/someone/my-unet/blob/v0.1.0/notebooks/99_toy.ipynb)" in written.cells[0].source
    before = (root / "notebooks" / "99_toy.ipynb").stat().st_mtime_ns
    assert launch.main(["--pyproject", pyproject]) == 0   # up to date: nothing rewritten
    assert "2 notebooks, 0 changed" in capsys.readouterr().out
    assert (root / "notebooks" / "99_toy.ipynb").stat().st_mtime_ns == before
    assert launch.main(["--check", "--pyproject", pyproject]) == 0

    _pyproject(root, "https://github.com/another/place", "0.2.0")   # the fork moves, a new version
    assert launch.main(["--check", "--pyproject", pyproject]) == 1
    err = capsys.readouterr().err
    assert err.count("out of date: ") == 4 and "address https://github.com/another/place and tag v0.2.0" in err
    assert launch.main(["--pyproject", pyproject]) == 0
    assert launch.main(["--check", "--pyproject", pyproject]) == 0


def test_command_line_errors_exit_2(tmp_path, capsys):
    root = _repository(tmp_path, {"99_toy.ipynb": _toy()}, address="https://example.org/x/y")
    assert launch.main(["--check", "--pyproject", str(root / "pyproject.toml")]) == 2
    assert "error: [project.urls] Repository" in capsys.readouterr().err
    root = _repository(tmp_path / "b", {"99_toy.ipynb": _toy()})
    outside = tmp_path / "elsewhere.ipynb"
    nbformat.write(_toy(), outside)
    assert launch.main(["--pyproject", str(root / "pyproject.toml"), str(outside)]) == 2
    assert "is not inside the repository" in capsys.readouterr().err
    assert launch.main(["--pyproject", str(root / "pyproject.toml"), str(root / "missing")]) == 2


# -- the exercise edition --------------------------------------------------------------------

def _solution_notebook() -> nbformat.NotebookNode:
    nb = _toy()
    nb.cells += [new_code_cell('def double(x):\n    """Return 2 x."""\n    return 2 * x',
                               metadata={"tags": [exercises.SOLUTION_TAG]}),
                 new_code_cell("check_double(double)")]
    nb.cells[-2].id, nb.cells[-1].id = "cell-4", "cell-5"
    return with_launch_cells(nb, SOURCE, PATH)


def test_exercise_edition_points_its_badges_at_itself_and_keeps_the_banner_under_the_title():
    edition = exercises.exercise_edition(_solution_notebook(), PATH, "exercises/99_toy.ipynb")
    ids = [c.get("id") for c in edition.cells]
    assert ids[:4] == [BADGES_ID, "cell-0", exercises.BANNER_ID, INSTALL_ID]
    assert problems(edition, SOURCE, "exercises/99_toy.ipynb") == []
    assert "exercises/99_toy.ipynb" in edition.cells[0].source and "notebooks/" not in edition.cells[0].source
    # without a path the badges stay the solution notebook's (and the check says so)
    plain = exercises.exercise_edition(_solution_notebook(), PATH)
    assert problems(plain, SOURCE, PATH) == []


def test_exercise_generator_writes_editions_that_pass_the_check(tmp_path, monkeypatch):
    root = _repository(tmp_path, {"99_toy.ipynb": _solution_notebook()}, address=SOURCE.repository)
    monkeypatch.chdir(root)
    assert exercises.main([]) == 0
    assert launch.main(["--check"]) == 0                  # notebooks/ and exercises/, as make test runs it
    edition = nbformat.read(root / "exercises" / "99_toy.ipynb", as_version=4)
    assert "/blob/v0.1.0/exercises/99_toy.ipynb)" in edition.cells[0].source


# -- the real notebooks (copies) -------------------------------------------------------------

@pytest.fixture(scope="module")
def real_copies(tmp_path_factory):
    """Copies of the course's notebooks with their launch cells applied, and their exercise editions."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    assert launch.main(["--pyproject", str(root / "pyproject.toml")]) == 0
    editions = exercises.generate(root / "notebooks", Path("exercises"))
    (root / "exercises").mkdir()
    for path, text in editions.items():
        (root / path).write_text(text, encoding="utf8")
    return root


def test_real_notebooks_get_their_cells_and_keep_everything_else(real_copies):
    assert len(NOTEBOOKS) == 12
    for original in NOTEBOOKS:
        before = nbformat.read(original, as_version=4)
        after = nbformat.read(real_copies / "notebooks" / original.name, as_version=4)
        kept = [c for c in after.cells if c.id not in (BADGES_ID, INSTALL_ID)]
        assert kept == [c for c in before.cells if c.get("id") not in (BADGES_ID, INSTALL_ID)], original.name
        assert after.metadata == before.metadata, original.name       # the stored widget state too
        assert after.cells[0].id == BADGES_ID
        first_code = next(c for c in after.cells if c.cell_type == "code")
        assert first_code.id == INSTALL_ID and first_code.metadata.tags == [GENERATED_TAG, NBVAL_SKIP_TAG]
        assert f"/blob/v0.1.0/notebooks/{original.name})" in after.cells[0].source


def test_real_notebooks_and_their_exercise_editions_pass_the_check(real_copies, capsys):
    assert launch.main(["--check", "--pyproject", str(real_copies / "pyproject.toml")]) == 0
    for path in sorted((real_copies / "exercises").glob("*.ipynb")):
        edition = nbformat.read(path, as_version=4)
        assert f"/exercises/{path.name})" in edition.cells[0].source
        assert edition.cells[2].id == exercises.BANNER_ID   # badges, title, banner
    again = exercises.generate(real_copies / "notebooks", Path("exercises"))
    assert all(text == (real_copies / p).read_text(encoding="utf8") for p, text in again.items())


def test_committed_notebooks_agree_with_pyproject():
    """make test fails when a notebook's badges or install cell disagree with pyproject.toml."""
    folders = [ROOT / f for f in launch.CHECKED_FOLDERS if (ROOT / f).is_dir()]
    assert len(folders) == 4, folders                              # notebooks, exercises and their Chinese twins
    source = read_source(ROOT / "pyproject.toml")
    found = [p for f in folders for path in sorted(f.glob(launch.NOTEBOOK_GLOB))
             for p in problems(nbformat.read(path, as_version=4), source, path.relative_to(ROOT).as_posix())]
    assert found == [], "\n".join(found + ["run `python -m unet_lib.launch`, then `make exercises`"])


# -- the install cell, executed ------------------------------------------------------------------

def _run_cell(monkeypatch, *, colab: bool, returncode: int = 0):
    calls, enabled = [], []

    def fake_run(command, **kwargs):
        calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr="ERROR: no such tag v0.1.0")

    monkeypatch.setattr(subprocess, "run", fake_run)
    if colab:
        output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
        colab_module = types.ModuleType("google.colab")
        colab_module.output = output
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(install_cell(SOURCE).source, {})
    return calls, enabled


def test_install_cell_does_nothing_outside_colab(monkeypatch):
    assert _run_cell(monkeypatch, colab=False) == ([], [])


def test_install_cell_in_colab_installs_the_tag_and_enables_the_widget_manager(monkeypatch):
    calls, enabled = _run_cell(monkeypatch, colab=True)
    assert len(calls) == 1 and enabled == [True]
    command, kwargs = calls[0]
    assert command == [sys.executable, "-m", "pip", "install", "--quiet",
                       "unet_lib @ git+https://github.com/unet-course/unet-course@v0.1.0"]
    assert kwargs == {"capture_output": True, "text": True}


def test_install_cell_says_what_pip_said_when_it_fails(monkeypatch):
    with pytest.raises(RuntimeError, match="pip could not install the course:\nERROR: no such tag v0.1.0"):
        _run_cell(monkeypatch, colab=True, returncode=1)


FAKE_COLAB = """
import json, sys, types
enabled = []
colab = types.ModuleType("google.colab")
colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
sys.modules["google"] = types.ModuleType("google")
sys.modules["google.colab"] = colab
before = {name: __import__(name).__version__ for name in ("torch", "numpy", "ipywidgets")}
exec(open(sys.argv[1]).read(), {})
import unet_lib, torch, numpy, ipywidgets
print(json.dumps({"enabled": enabled, "unet_lib": unet_lib.__file__, "torch": torch.__file__,
                  "before": before, "after": {m.__name__: m.__version__ for m in (torch, numpy, ipywidgets)}}))
"""


def test_install_cell_installs_the_wheel_in_a_fresh_environment(tmp_path, course_wheel, fresh_environment):
    """The cell's Colab branch, for real, with a wheel of this checkout in place of the tag: pip
    installs it (not editable) into a fresh environment that already has the dependencies, as
    Colab has (this environment's, on a path behind the fresh one's own site-packages), with no
    index (nothing may need a download), and leaves torch, numpy and ipywidgets as they were."""
    fresh = fresh_environment   # the wheel and the environment: tests/conftest.py
    cell = tmp_path / "cell.py"
    cell.write_text(install_cell(SOURCE, requirement=f"unet_lib @ {course_wheel.as_uri()}").source)
    script = tmp_path / "colab.py"
    script.write_text(FAKE_COLAB)
    outside = tmp_path / "elsewhere"   # not the repository: the installed package must be found
    outside.mkdir()
    run = subprocess.run([str(fresh.python), str(script), str(cell)], capture_output=True, text=True,
                         cwd=outside, env=fresh.environ, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    import json
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["enabled"] == [True]
    assert Path(result["unet_lib"]).is_relative_to(fresh.site)            # installed, not the checkout
    assert Path(result["torch"]).is_relative_to(fresh.deps)               # Colab's torch was kept
    assert result["after"] == result["before"]
    installed = sorted(p.name for p in fresh.site.iterdir() if p.name != "course-deps.pth")
    assert [p for p in installed if not p.startswith(("unet_lib", "unet_course_data", "__pycache__"))] == []   # nothing else


def test_readme_badges_and_install_line_agree_with_pyproject():
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    source = read_source(ROOT / "pyproject.toml")
    first = "notebooks/01_intuition.ipynb"
    assert f"]({colab_url(source, first)})" in readme and f"]({binder_url(source, first)})" in readme
    assert f'pip install "{source.requirement}"' in readme
    assert re.search(rf"\(tag\s+`{re.escape(source.tag)}`\)", readme)
