"""Tests for unet_lib.exercises: the generator on small hand-made notebooks, the committed
exercise editions against the solution notebooks, and the exercise editions executed.

How the exercise editions are executed here (CI runs this file under `make test`):
``exercise_section`` keeps the exercise cells, everything after them, and only the earlier cells
they need by name (in practice the imports). The earlier cells are the solution notebook's,
which nbval already executes and compares; running them twice would train networks twice.
All exercise notebooks share one kernel, with ``%reset -f`` between them (a fresh namespace; the
imported modules stay loaded), so torch is imported once. nbclient runs the cells as Jupyter's
"Run All" does: a cell tagged ``raises-exception`` may fail, any other failure stops the run.
"""

import ast
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from unet_lib.exercises import (
    ANSWER_TAG, EXERCISE_TAG, NOTEBOOK_GLOB, RAISES_TAG, SOLUTION_TAG, STAMP_KEY, ExerciseError, content_digest,
    exercise_edition, exercise_section, generate, main, make_skeleton, render, same_notebook,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB))
EXERCISES = ROOT / "exercises"
EXERCISE_NOTEBOOKS = sorted(EXERCISES.glob(NOTEBOOK_GLOB))
# what `_call` in unet_lib.checks says when the learner's function is still the skeleton
FRIENDLY = "`{name}` is still the exercise skeleton"


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
    return nb


def _solution(source: str) -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"tags": [SOLUTION_TAG]})


def _executed(cell, text="old output"):
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    cell.execution_count = 7
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    return cell


CROP = '''# Exercise 2: the crop
def crop(x: "torch.Tensor",
         size: tuple[int, int]) -> "torch.Tensor":   # (..., H, W) -> (..., h, w)
    """Crop the last two dimensions of x to size = (h, w) around the centre — "centre" ✓."""
    # SOLUTION-ONLY comment
    top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]
'''


def _toy_solution_notebook() -> nbformat.NotebookNode:
    return _notebook(
        new_markdown_cell("# 99 · Toy\n\nGoals."),
        _executed(new_code_cell("import torch\nfrom unet_lib.checks import check_output_size")),
        _executed(new_code_cell("heavy = sum(range(10))   # stands for training a network\nprint(heavy)")),
        new_markdown_cell("## Exercises\n\n**1.** Write `crop`."),
        _executed(_solution(CROP)),
        _executed(new_code_cell("check_output_size(crop)"), "✓ crop matches"),
        new_markdown_cell("## Questions\n\n1. Why?"),
        _executed(new_code_cell("print(torch.__name__)   # a later cell that does not need the exercise")),
    )


# -- skeletons ---------------------------------------------------------------------------------

def _def(source: str):
    (node,) = ast.parse(source).body
    return node


def _signature(node) -> str:
    """Decorators, name, arguments and return annotation (for a function) or bases (for a class)."""
    parts = [node.name] + [ast.dump(d) for d in node.decorator_list]
    if isinstance(node, ast.ClassDef):
        return "|".join(parts + [ast.dump(b) for b in node.bases])
    return "|".join(parts + [ast.dump(node.args), ast.dump(node.returns) if node.returns else ""])


SOURCES = {
    "annotated, multi-line signature, unicode docstring": CROP,
    "decorated, default arguments": (
        "@torch.no_grad()\ndef context_margin(depth: int = 4, *, side: str = 'one') -> int:\n"
        "    '''Pixels lost per side.'''\n    return 6 * 2**depth - 4\n"),
    "one line": 'def f(x): "Return x."; return x\n',
    "async": 'async def fetch(n):\n    """Wait."""\n    await g(n)\n    return n\n',
    "nested function in the body": (
        'def outer(a):\n    """Call inner."""\n    def inner(b):\n        return b\n    return inner(a)\n'),
}


@pytest.mark.parametrize("source", SOURCES.values(), ids=SOURCES.keys())
def test_skeleton_keeps_signature_and_docstring_and_drops_the_body(source):
    original = _def(source)
    skeleton = make_skeleton(source)
    node = _def(skeleton)   # valid Python, one definition
    assert _signature(node) == _signature(original)
    assert ast.get_docstring(node, clean=False) == ast.get_docstring(original, clean=False)
    assert len(node.body) == 2   # the docstring, then the raise
    (raised,) = node.body[1:]
    assert isinstance(raised, ast.Raise) and raised.exc.func.id == "NotImplementedError"
    assert f"Exercise `{original.name}`" in raised.exc.args[0].value
    for stmt in original.body[1:]:   # no line of the solution survives
        assert ast.get_source_segment(source, stmt).splitlines()[0] not in skeleton


def test_skeleton_keeps_comments_above_and_drops_comments_in_the_body():
    skeleton = make_skeleton(CROP)
    assert skeleton.startswith("# Exercise 2: the crop\ndef crop(")
    assert "SOLUTION-ONLY" not in skeleton and "top, left" not in skeleton
    assert "# (..., H, W) -> (..., h, w)" in skeleton   # a comment on the signature's line stays


def test_skeleton_raises_the_named_not_implemented_error():
    namespace = {}
    exec(make_skeleton(CROP), namespace)
    with pytest.raises(NotImplementedError, match=r"Exercise `crop`: replace this line with your code"):
        namespace["crop"](None, (1, 1))


CLASS = '''class MyDoubleConv(nn.Sequential):
    """(3x3 conv -> ReLU) x 2, unpadded."""
    kernel_size = 3   # solution detail

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3), nn.ReLU())

    def extra_repr(self) -> str:
        """Shown by print(block)."""
        return "paper"
'''


def test_skeleton_of_a_class_keeps_method_signatures_and_docstrings():
    skeleton = make_skeleton(CLASS)
    node = _def(skeleton)
    assert _signature(node) == _signature(_def(CLASS))
    assert ast.get_docstring(node) == "(3x3 conv -> ReLU) x 2, unpadded."
    init, extra = node.body[1:]
    assert [init.name, extra.name] == ["__init__", "extra_repr"]
    assert ast.dump(init.args) == ast.dump(_def(CLASS).body[2].args)
    assert ast.get_docstring(extra) == "Shown by print(block)."
    assert "kernel_size" not in skeleton and "super().__init__" not in skeleton and '"paper"' not in skeleton
    namespace = {"nn": __import__("torch").nn}
    exec(skeleton, namespace)
    with pytest.raises(NotImplementedError, match=r"Exercise `MyDoubleConv.__init__`.*the class's docstring"):
        namespace["MyDoubleConv"](3, 8)


BAD_SOURCES = {
    "two statements": ("x = 1\ndef f():\n    'Doc.'\n    return x\n",
                       r"cell 5 must hold exactly one function or class definition.*found `x = 1` \(line 1\), "
                       r"the definition of `f` \(line 2\)"),
    "an import only": ("import torch\n", r"exactly one function or class definition.*found `import torch`"),
    "a call": ("check_center_crop(crop)\n", r"found `check_center_crop\(crop\)`"),
    "empty": ("\n# just a comment\n", r"cell 5 is empty"),
    "no docstring": ("def f(x):\n    return x\n", r"`f` has no docstring.*the docstring must say what to write"),
    "magic": ("%%time\ndef f():\n    'Doc.'\n", r"not valid Python.*no IPython magics"),
    "class without methods": ("class Config:\n    '''Doc.'''\n    epochs = 3\n", r"class `Config` has no methods"),
}


@pytest.mark.parametrize("source, match", BAD_SOURCES.values(), ids=BAD_SOURCES.keys())
def test_bad_solution_cell_gets_a_clear_error(source, match):
    with pytest.raises(ExerciseError, match=match):
        make_skeleton(source, "cell 5")


# -- notebooks ---------------------------------------------------------------------------------

def test_exercise_edition_of_a_hand_made_notebook():
    solution = _toy_solution_notebook()
    before = copy.deepcopy(solution)
    nb = exercise_edition(solution, "notebooks/99_toy.ipynb")
    assert solution == before   # the solution notebook is not changed
    title, banner, *cells = nb.cells
    assert title == solution.cells[0]
    assert banner.cell_type == "markdown" and "notebooks/99_toy.ipynb" in banner.source
    assert "make exercises" in banner.source
    assert len(cells) == len(solution.cells) - 1
    for old, new in zip(solution.cells[1:], cells):
        if SOLUTION_TAG in old.metadata.get("tags", []):
            assert new.source == make_skeleton(old.source)
            assert new.metadata.tags == [EXERCISE_TAG]
        else:   # the same cell, only without outputs
            assert new.source == old.source and new.cell_type == old.cell_type and new.id == old.id
        if new.cell_type == "code":
            assert new.outputs == [] and new.execution_count is None and "execution" not in new.metadata
    check = cells[4]
    assert check.source == "check_output_size(crop)" and check.metadata.tags == [RAISES_TAG]
    assert [RAISES_TAG in c.metadata.get("tags", []) for c in cells].count(True) == 1


def _tagged(cell, tag):
    cell.metadata["tags"] = [tag]
    return cell


def test_answers_are_replaced_by_one_note_per_run():
    solution = _toy_solution_notebook()
    solution.cells[6:6] = [_tagged(new_markdown_cell("**Answer 1.** Because 0.92 > 0.85."), ANSWER_TAG),
                           _tagged(new_markdown_cell("**Answer 2.** The merged count fell from 9 to 2."), ANSWER_TAG)]
    solution.cells.append(_tagged(new_markdown_cell("**Answer 3.** A late one."), ANSWER_TAG))
    nb = exercise_edition(solution, "notebooks/99_toy.ipynb")
    text = render(nb)
    assert "Answer 1" not in text and "Answer 2" not in text and "Answer 3" not in text
    notes = [c for c in nb.cells if "worked answers" in c.source]
    assert len(notes) == 2 and all("notebooks/99_toy.ipynb" in c.source for c in notes)
    assert nb.cells[-1] is notes[1] and nb.cells[-2].source.startswith("print(torch")
    assert len(nb.cells) == len(solution.cells) + 1 - 3 + 2   # + banner, - answers, + notes
    nbformat.validate(nb)
    assert text == render(exercise_edition(solution, "notebooks/99_toy.ipynb"))   # reproducible


def test_exercise_edition_is_reproducible_and_valid():
    text = render(exercise_edition(_toy_solution_notebook(), "notebooks/99_toy.ipynb"))
    assert text == render(exercise_edition(_toy_solution_notebook(), "notebooks/99_toy.ipynb"))
    assert text.endswith("\n")
    nbformat.validate(nbformat.reads(text, as_version=4))
    assert '"outputs": []' in text and "old output" not in text and "top, left" not in text


def test_exercise_edition_keeps_a_tag_that_is_already_there():
    solution = _toy_solution_notebook()
    solution.cells[5].metadata["tags"] = [RAISES_TAG, "nbval-ignore-output"]
    nb = exercise_edition(solution)
    assert nb.cells[6].metadata.tags == [RAISES_TAG, "nbval-ignore-output"]


def _with_cells(*changes):
    nb = _toy_solution_notebook()
    for index, cell in changes:
        nb.cells[index] = cell
    return nb


BAD_NOTEBOOKS = {
    "markdown tagged solution": (
        lambda: _with_cells((3, new_markdown_cell("## Exercises", metadata={"tags": [SOLUTION_TAG]}))),
        r"notebooks/99_toy.ipynb, cell 4 \('## Exercises'\) is a markdown cell tagged 'solution'"),
    "check does not mention the function": (
        lambda: _with_cells((5, new_code_cell("check_center_crop(center_crop)"))),
        r"cell 5 \('# Exercise 2: the crop'\): the next code cell must check the solution, "
        r"e.g. `check_...\(crop\)`"),
    "solution is the last code cell": (
        lambda: _notebook(_solution(CROP), new_markdown_cell("Questions")),
        r"cell 1 .*the next code cell must check the solution"),
    "two solutions in a row": (
        lambda: _with_cells((5, _solution("def crop2(x):\n    'crop uses this'\n    return x"))),
        r"cell 5 .*the next code cell must check the solution"),
    "solution cell with extra code": (
        lambda: _with_cells((4, _solution(CROP + "\ncheck_center_crop(crop)\n"))),
        r"cell 5 .* must hold exactly one function or class definition"),
}


@pytest.mark.parametrize("make, match", BAD_NOTEBOOKS.values(), ids=BAD_NOTEBOOKS.keys())
def test_exercise_edition_names_the_bad_cell(make, match):
    with pytest.raises(ExerciseError, match=match):
        exercise_edition(make(), "notebooks/99_toy.ipynb")


def test_same_notebook_ignores_layout_not_content():
    text = render(exercise_edition(_toy_solution_notebook()))
    relaid = json.dumps(json.loads(text), indent=2)
    assert same_notebook(text, relaid) and relaid != text
    edited = json.loads(text)
    edited["cells"][5]["source"] = "def crop(x, size):\n    return x"
    assert not same_notebook(text, json.dumps(edited, indent=1))


# -- what CI executes --------------------------------------------------------------------------

def test_exercise_section_keeps_only_the_earlier_cells_it_needs():
    nb = exercise_edition(_toy_solution_notebook())
    section, kept = exercise_section(nb)
    assert kept == [2]   # the imports; not the expensive cell, not the markdown
    assert [c.source for c in section.cells] == [nb.cells[2].source] + [c.source for c in nb.cells[5:]]


def test_exercise_section_follows_names_back_through_earlier_cells():
    nb = exercise_edition(_notebook(
        new_code_cell("import torch\nimport numpy as np"),
        new_code_cell("%%time\nmodel = torch.nn.Linear(2, 2)   # 'training'"),
        new_code_cell("config = {}"),
        new_code_cell("config['size'] = 5   # changes config"),
        new_code_cell("plt.plot([1, 2]);"),
        new_code_cell("def helper():\n    return model, config"),
        _solution("def f(x):\n    '''Doc.'''\n    return x"),
        new_code_cell("check(f, helper())"),
    ))
    section, kept = exercise_section(nb)
    assert kept == [1, 2, 3, 4, 6]   # imports, model, config twice, helper; not the plot


def test_exercise_section_knows_that_a_comprehension_has_its_own_variables():
    # A comprehension's variables live in the comprehension (Python 3): cell 2 does not bind i, and
    # the exercise's [x * 2 for x in ...] reads no x of the notebook. Only cell 1 (i) and cell 4
    # (data, the comprehension's first iterable, which runs in the cell's scope) are needed.
    nb = exercise_edition(_notebook(
        new_code_cell("i = 3"),
        new_code_cell("%%time\nsquares = [i * i for i in range(10)]   # 'training'"),
        new_code_cell("x = 'an expensive result'"),
        new_code_cell("data = [1, 2]"),
        _solution("def f(y):\n    '''Doc.'''\n    return y"),
        new_code_cell("check(f, i, [x * 2 for x in data], {k: v for k, v in zip(data, data)})"),
    ))
    section, kept = exercise_section(nb)
    assert kept == [1, 4]


def test_exercise_section_keeps_a_cell_it_cannot_parse():
    nb = exercise_edition(_notebook(
        new_code_cell("import torch"),
        new_code_cell("x = (1,   # a syntax error"),
        _solution("def f(x):\n    '''Doc.'''\n    return x"),
        new_code_cell("check(f)"),
    ))
    assert exercise_section(nb)[1] == [2]


def test_exercise_section_of_a_notebook_without_exercises():
    with pytest.raises(ExerciseError, match="no cell tagged 'exercise'"):
        exercise_section(_notebook(new_code_cell("1 + 1")))


# -- the command line --------------------------------------------------------------------------

def test_main_writes_checks_and_removes_stale_files(tmp_path, capsys):
    notebooks, out = tmp_path / "notebooks", tmp_path / "exercises"
    notebooks.mkdir()
    nbformat.write(_toy_solution_notebook(), notebooks / "99_toy.ipynb")
    args = ["--notebooks", str(notebooks), "--out", str(out)]
    assert main(args + ["--check"]) == 1
    assert "out of date" in capsys.readouterr().err and not out.exists()
    assert main(args) == 0
    assert (out / "99_toy.ipynb").read_text(encoding="utf8") == generate(notebooks, out)[out / "99_toy.ipynb"]
    assert "in place of `raise NotImplementedError`" in (out / "99_toy.ipynb").read_text(encoding="utf8")
    assert main(args + ["--check"]) == 0
    nbformat.write(_toy_solution_notebook(), notebooks / "98_gone.ipynb")   # generated, then its solution goes
    assert main(args) == 0 and (out / "98_gone.ipynb").exists()
    (notebooks / "98_gone.ipynb").unlink()
    assert main(args + ["--check"]) == 1
    assert main(args) == 0 and not (out / "98_gone.ipynb").exists()
    nb = _toy_solution_notebook()
    nb.cells[4].source = "x = 1\n" + CROP
    nbformat.write(nb, notebooks / "99_toy.ipynb")
    capsys.readouterr()
    assert main(args) == 2
    assert re.search(r"error: notebooks/99_toy.ipynb, cell 5 .* exactly one function", capsys.readouterr().err)


# -- never lose work: every misuse leaves every notebook byte-identical ------------------------

def _hashes(*folders):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for f in folders if f.exists()
            for p in sorted(f.rglob("*")) if p.is_file()}


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course folder with two solution notebooks and their generated exercise editions."""
    notebooks, out = tmp_path / "notebooks", tmp_path / "exercises"
    notebooks.mkdir()
    nbformat.write(_toy_solution_notebook(), notebooks / "01_toy.ipynb")
    nbformat.write(_toy_solution_notebook(), notebooks / "02_toy.ipynb")
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    return notebooks, out


def _instructor_edits(notebooks):
    nb = nbformat.read(notebooks / "01_toy.ipynb", as_version=4)
    nb.cells[3].source += "\n\nA clearer hint."
    nbformat.write(nb, notebooks / "01_toy.ipynb")


def test_the_stamp_records_what_was_generated(course):
    notebooks, out = course
    nb = nbformat.read(out / "01_toy.ipynb", as_version=4)
    assert nb.metadata[STAMP_KEY] == {"source": "notebooks/01_toy.ipynb", "sha256": content_digest(nb)}
    executed = copy.deepcopy(nb)
    _executed(executed.cells[2])
    executed.metadata["widgets"] = {"state": {}}
    assert content_digest(executed) == content_digest(nb)   # outputs and metadata do not count


def test_regenerating_after_an_instructor_edit_still_works(course, capsys):
    notebooks, out = course
    _instructor_edits(notebooks)
    assert main([]) == 0
    assert "A clearer hint." in (out / "01_toy.ipynb").read_text(encoding="utf8")
    assert main(["--check"]) == 0


@pytest.mark.parametrize("change,why", [
    (lambda nb: nb.cells.insert(5, new_markdown_cell("my notes: the crop keeps the centre")),
     r"its cells were changed after the generator wrote it \(cells? (5, )?6 not in the new edition\)"),
    (lambda nb: setattr(nb.cells[5], "source", nb.cells[5].source.replace(
        "    raise NotImplementedError", "    top = 1  # my start\n    raise NotImplementedError")),
     r"its cells were changed after the generator wrote it \(cells? (5, )?6 not in"),
    (lambda nb: _executed(nb.cells[2]), r"it has outputs"),
])
@pytest.mark.parametrize("instructor_edit", [False, True])
def test_a_learners_changes_are_never_overwritten(course, capsys, change, why, instructor_edit):
    notebooks, out = course
    learner = nbformat.read(out / "01_toy.ipynb", as_version=4)
    change(learner)
    nbformat.write(learner, out / "01_toy.ipynb")
    if instructor_edit:
        _instructor_edits(notebooks)
    before = _hashes(notebooks, out)
    code = main([])
    if not instructor_edit and "outputs" in why:   # nothing new to write: the outputs stay, no error
        assert code == 0 and "kept exercises/01_toy.ipynb" in capsys.readouterr().out
        assert _hashes(notebooks, out) == before
        return
    assert code == 3
    err = capsys.readouterr().err
    assert re.search(r"exercises/01_toy.ipynb: " + why, err)
    assert "Nothing was written" in err and "cp exercises/01_toy.ipynb" in err and "--discard-changes" in err
    assert _hashes(notebooks, out) == before
    assert main(["--discard-changes"]) == 0 and "(discarding its changes)" in capsys.readouterr().out
    assert main(["--check"]) == 0


def test_a_learners_changed_notebook_is_not_removed_when_its_solution_goes(course, capsys):
    notebooks, out = course
    learner = nbformat.read(out / "02_toy.ipynb", as_version=4)
    learner.cells.append(new_markdown_cell("my notes"))
    nbformat.write(learner, out / "02_toy.ipynb")
    (notebooks / "02_toy.ipynb").unlink()
    before = _hashes(notebooks, out)
    assert main([]) == 3 and "exercises/02_toy.ipynb: its cells were changed" in capsys.readouterr().err
    assert _hashes(notebooks, out) == before
    assert main(["--discard-changes"]) == 0 and not (out / "02_toy.ipynb").exists()


def test_files_the_generator_did_not_write_are_never_removed(course, capsys):
    notebooks, out = course
    nbformat.write(_toy_solution_notebook(), out / "07_mine.ipynb")   # no stamp
    (out / "08_notes.ipynb").write_text("{}", encoding="utf8")
    before = _hashes(out)
    for flags in ([], ["--discard-changes"]):
        assert main(flags) == 0
        err = capsys.readouterr().err
        assert "left alone exercises/07_mine.ipynb: it has no generator stamp" in err and "08_notes" in err
    assert _hashes(out) == before


@pytest.mark.parametrize("flags", [[], ["--discard-changes"], ["--check"]])
@pytest.mark.parametrize("out_arg", ["notebooks", "notebooks/", "./notebooks/../notebooks", "notebooks/sub",
                                     "link_to_notebooks", "link_to_notebooks/inner"])
def test_out_may_not_be_the_solutions_folder(course, capsys, flags, out_arg):
    notebooks, out = course
    (notebooks.parent / "link_to_notebooks").symlink_to(notebooks, target_is_directory=True)
    for p in notebooks.glob("*.ipynb"):   # solutions with their outputs cleared, as nbstripout leaves them
        nb = nbformat.read(p, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, p)
    before = _hashes(notebooks, out)
    assert main(["--out", out_arg, *flags]) == 2
    assert re.search(r"error: --out .* is the solution notebooks folder notebooks or inside it \(resolved: .*"
                     r"the exercise editions would replace the solutions", capsys.readouterr().err)
    assert _hashes(notebooks, out) == before


@pytest.mark.parametrize("make,match", [
    (lambda root: None, r"the solution notebooks folder notebook does not exist \(resolved: .*\); run from the "
                        r"repository root or pass --notebooks"),
    (lambda root: (root / "notebook").mkdir(), r"the solution notebooks folder notebook holds no notebooks named "
                                               r"\[0-9\]\[0-9\]_\*.ipynb"),
    (lambda root: (root / "notebook").write_text("x"), r"the solution notebooks folder notebook is a file"),
])
def test_a_missing_or_empty_solutions_folder_is_an_error(course, capsys, make, match):
    notebooks, out = course
    make(notebooks.parent)
    before = _hashes(notebooks, out)
    assert main(["--notebooks", "notebook"]) == 2
    assert re.search("error: " + match, capsys.readouterr().err)
    assert _hashes(notebooks, out) == before
    assert main(["--notebooks", "notebook", "--discard-changes"]) == 2
    assert _hashes(notebooks, out) == before


def test_run_from_the_wrong_folder_is_an_error(course, capsys, monkeypatch):
    notebooks, out = course
    monkeypatch.chdir(notebooks)
    before = _hashes(notebooks, out)
    assert main([]) == 2 and "notebooks does not exist" in capsys.readouterr().err
    assert _hashes(notebooks, out) == before


@pytest.mark.parametrize("content", ['{"cells": [', "", "\x00\x01 not json", '{"nbformat": 4}'])
def test_a_corrupt_solution_notebook_is_named(course, capsys, content):
    notebooks, out = course
    (notebooks / "03_broken.ipynb").write_text(content, encoding="utf8")
    before = _hashes(notebooks, out)
    assert main([]) == 2
    assert re.search(r"error: notebooks/03_broken.ipynb cannot be read as a notebook \(\w+.*\); the solution "
                     r"notebook is damaged or was saved half-way: restore it", capsys.readouterr().err)
    assert _hashes(notebooks, out) == before
    with pytest.raises(ExerciseError, match=r"03_broken.ipynb cannot be read as a notebook"):
        generate(notebooks, out)


def test_a_corrupt_exercise_notebook_is_kept(course, capsys):
    notebooks, out = course
    (out / "01_toy.ipynb").write_text('{"cells": [{"cell_type": "markdown", "source": "my no', encoding="utf8")
    _instructor_edits(notebooks)
    before = _hashes(notebooks, out)
    assert main([]) == 3
    assert re.search(r"exercises/01_toy.ipynb: it cannot be read as a notebook \(\w+\)", capsys.readouterr().err)
    assert _hashes(notebooks, out) == before
    assert main(["--discard-changes"]) == 0 and main(["--check"]) == 0


def test_a_failed_write_leaves_the_old_file(course, monkeypatch):
    notebooks, out = course
    _instructor_edits(notebooks)
    before = _hashes(notebooks, out)
    import unet_lib.atomic

    def disk_full(f):
        raise OSError(28, "No space left on device")

    real = unet_lib.atomic.atomic_writer

    def failing_writer(path):
        import contextlib

        @contextlib.contextmanager
        def cm():
            with real(path) as f:
                f.write(b'{"cells": [')
                disk_full(f)
                yield f
        return cm()

    monkeypatch.setattr(unet_lib.atomic, "atomic_writer", failing_writer)
    with pytest.raises(OSError, match="No space left"):
        main([])
    assert _hashes(notebooks, out) == before
    assert sorted(p.name for p in out.iterdir()) == ["01_toy.ipynb", "02_toy.ipynb"]   # no temp files


# -- the course's own notebooks ----------------------------------------------------------------

def test_committed_exercises_are_up_to_date():
    expected = generate(ROOT / "notebooks", EXERCISES)
    committed = set(EXERCISE_NOTEBOOKS)
    problems = [f"{p.relative_to(ROOT)} is missing" for p in expected if p not in committed]
    problems += [f"{p.relative_to(ROOT)} has no solution notebook" for p in committed - set(expected)]
    problems += [f"{p.relative_to(ROOT)} is out of date" for p, text in expected.items()
                 if p in committed and not same_notebook(p.read_text(encoding="utf8"), text)]
    assert not problems, "; ".join(problems) + ": run `make exercises` and commit exercises/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_an_exercise(path):
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert any(SOLUTION_TAG in t for t in tags), f"{path.name} has no code cell tagged {SOLUTION_TAG!r}"


@pytest.fixture(scope="module")
def kernel():
    """One kernel for all exercise notebooks; each starts with `%reset -f`."""
    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv[0] = sys.executable   # this environment, like nbval's --nbval-current-env
    km.start_kernel(cwd=str(EXERCISES if EXERCISES.is_dir() else ROOT))   # where a learner runs them
    yield km
    km.shutdown_kernel(now=True)


def _execute(nb: nbformat.NotebookNode, km: KernelManager) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.insert(0, new_code_cell("%reset -f"))
    client = NotebookClient(nb, km=km, timeout=300, kernel_name="python3")
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    return nb


def _assert_exercises_fail_friendly(nb: nbformat.NotebookNode, km: KernelManager) -> None:
    """Run ``nb``'s exercise section; every check cell must fail with the friendly message about
    the skeleton above it, and every other cell must run (CellExecutionError otherwise)."""
    assert any(EXERCISE_TAG in c.metadata.get("tags", []) for c in nb.cells), "the notebook has no exercise"
    section, _ = exercise_section(nb)
    ran = _execute(section, km)
    name = None
    checks = 0
    for cell in ran.cells:
        if EXERCISE_TAG in cell.metadata.get("tags", []):
            name = ast.parse(cell.source).body[0].name
        if RAISES_TAG in cell.metadata.get("tags", []):
            checks += 1
            errors = [o for o in cell.outputs if o.output_type == "error"]
            got = f"{errors[0].ename}: {errors[0].evalue}" if errors else "no error"
            assert errors and errors[0].ename == "NotImplementedError", \
                f"check cell {cell.source!r} should fail with NotImplementedError, got {got}"
            assert FRIENDLY.format(name=name) in errors[0].evalue, \
                f"check cell {cell.source!r}: {got!r} is not the friendly message of unet_lib.checks._call"
    assert checks == sum(EXERCISE_TAG in c.metadata.get("tags", []) for c in ran.cells) > 0


def test_hand_made_exercise_edition_fails_friendly_and_goes_on(kernel):
    _assert_exercises_fail_friendly(exercise_edition(_toy_solution_notebook()), kernel)


def test_a_later_cell_that_needs_an_exercise_is_caught(kernel):
    solution = _toy_solution_notebook()
    solution.cells[7].source = "crop(torch.zeros(1, 1, 4, 4), (2, 2))"   # depends on the exercise
    with pytest.raises(CellExecutionError, match="Exercise `crop`"):
        _assert_exercises_fail_friendly(exercise_edition(solution), kernel)


def test_a_check_that_bypasses_call_is_caught(kernel):
    solution = _toy_solution_notebook()
    solution.cells[5].source = "crop(torch.zeros(1, 1, 4, 4), (2, 2))   # not through a check"
    with pytest.raises(AssertionError, match="is not the friendly message"):
        _assert_exercises_fail_friendly(exercise_edition(solution), kernel)


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=lambda p: p.name)
def test_exercise_notebook_fails_friendly_and_goes_on(path, kernel):
    _assert_exercises_fail_friendly(nbformat.read(path, as_version=4), kernel)
