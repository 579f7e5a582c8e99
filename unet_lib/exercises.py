"""The exercise edition: ``exercises/NN_topic.ipynb`` generated from ``notebooks/NN_topic.ipynb``.

The solution notebooks are the one source of truth. Each exercise in them is a code cell tagged
``solution`` holding ONE function or class definition (signature, a docstring saying what to do,
the solution body), followed by a code cell that calls a ``unet_lib.checks.check_*`` on it. The
exercise edition is the same notebook with

* each solution body replaced by ``raise NotImplementedError("Exercise `name`: ...")`` (the
  signature, decorators and docstring stay; for a class, each method keeps its signature and
  docstring and everything else in the class body goes), the cell's tag ``solution`` renamed
  ``exercise``;
* the check cell after it tagged ``raises-exception``, so that "Run All" (JupyterLab, nbclient,
  nbval) goes on past an exercise the learner has not done yet;
* each run of consecutive cells tagged ``answer`` (the worked answers to the questions at the
  end) replaced by one note saying that the answers are in the solution notebook;
* all outputs and execution counts cleared, and a short note under the title.

Run ``python -m unet_lib.exercises`` (``make exercises``) after editing a notebook;
``python -m unet_lib.exercises --check`` exits with status 1 when ``exercises/`` is out of date.

Never lose work: each exercise edition carries a stamp in its metadata, the SHA-256 of its
cells' types and sources as generated (``content_digest``). Regenerating overwrites or removes
a file only when it still matches its stamp (or already holds the new content) and has no
outputs; a file that a learner changed (a new cell, a half-written exercise, outputs), a file
that cannot be read, and a file without a stamp are left as they are, and the command names
them and says how to keep them or discard them (``--discard-changes``). ``--out`` may not be
the solutions folder or lie inside it, and a missing or empty solutions folder is an error.

``exercise_section`` selects what CI executes of an exercise edition: the exercise cells, the
cells after them, and only those earlier cells that they need by name (usually the imports), so
that CI does not train a network a second time; see tests/test_exercises.py.
"""

import argparse
import ast
import copy
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .atomic import atomic_write
from .launch import GENERATED_TAG, retarget_badges

__all__ = [
    "ExerciseError", "SOLUTION_TAG", "EXERCISE_TAG", "RAISES_TAG", "ANSWER_TAG", "STAMP_KEY",
    "make_skeleton", "exercise_edition", "content_digest", "render", "same_notebook", "generate",
    "exercise_section", "main",
]

SOLUTION_TAG = "solution"            # on a solution cell in notebooks/
EXERCISE_TAG = "exercise"            # on the same cell, now a skeleton, in exercises/
RAISES_TAG = "raises-exception"      # Jupyter's tag for a cell that is expected to fail
ANSWER_TAG = "answer"                # a worked answer: in the solution notebook only
BANNER_ID = "exercise-edition"       # a fixed cell id keeps the generated files reproducible
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
STAMP_KEY = "unet_lib_exercise"      # notebook metadata: {"source": ..., "sha256": content_digest}

_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


class ExerciseError(ValueError):
    """A solution notebook does not follow the exercise conventions; the message says where."""


# -- skeletons ---------------------------------------------------------------------------------

def _lines(source: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", source)   # the line breaks that ast counts


def _span(lines: list[str], l1: int, c1: int, l2: int, c2: int) -> str:
    """Source from (line l1, byte c1) to (line l2, byte c2); lines count from 1 and columns in
    UTF-8 bytes, as ast's positions do."""
    if l1 == l2:
        return lines[l1 - 1].encode()[c1:c2].decode()
    head, tail = lines[l1 - 1].encode()[c1:].decode(), lines[l2 - 1].encode()[:c2].decode()
    return "\n".join([head] + lines[l1 : l2 - 1] + [tail])


def _describe(stmt: ast.stmt, lines: list[str]) -> str:
    if isinstance(stmt, _Def):
        return f"the definition of `{stmt.name}` (line {stmt.lineno})"
    return f"`{lines[stmt.lineno - 1].strip()}` (line {stmt.lineno})"


def _skeleton_def(node: _Def, lines: list[str], qualname: str) -> str:
    """``node``'s decorators, signature and docstring, then the skeleton body (or, for a class,
    the skeletons of its methods)."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = node.body
    signature = _span(lines, first, 0, body[0].lineno, body[0].col_offset)
    kept = signature.rstrip().split("\n")
    if not signature.split("\n")[-1].strip():   # the body starts on a line of its own
        indent = signature.split("\n")[-1]
        while len(kept) > 1 and (not kept[-1].strip() or kept[-1].lstrip().startswith("#")):
            kept.pop()   # comments at the top of the body belong to the solution
    else:                                       # a one-line definition: `def f(x): return x`
        line = lines[node.lineno - 1]
        indent = line[: len(line) - len(line.lstrip())] + "    "
    parts = ["\n".join(kept)]
    rest = body
    has_doc = ast.get_docstring(node, clean=False) is not None
    if has_doc:   # it tells the learner what to write
        doc = body[0]
        parts.append(indent + _span(lines, doc.lineno, doc.col_offset, doc.end_lineno, doc.end_col_offset))
        rest = body[1:]
    if not isinstance(node, ast.ClassDef):
        says = "the docstring says" if has_doc or "." not in qualname else "the class's docstring says"
        message = f"Exercise `{qualname}`: replace this line with your code ({says} what to do)"
        return "\n".join(parts + [f'{indent}raise NotImplementedError("{message}")'])
    methods = [s for s in rest if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not methods:
        raise ExerciseError(f"class `{node.name}` has no methods, so its exercise edition would be an "
                            f"empty class; write the solution as methods (e.g. `__init__`)")
    # everything in the class body but the method signatures and docstrings is the solution
    return "\n\n".join(["\n".join(parts)] + [_skeleton_def(m, lines, f"{qualname}.{m.name}") for m in methods])


def make_skeleton(source: str, where: str = "the solution cell") -> str:
    """The exercise skeleton of a solution cell's ``source``.

    ``source`` must hold exactly one function or class definition with a docstring (comments
    above it are kept). The result keeps decorators, signature and docstring; the body becomes
    ``raise NotImplementedError("Exercise `name`: ...")``. A class keeps its header and
    docstring, and each method becomes a skeleton of its own. ``where`` names the cell in errors.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ExerciseError(f"{where} is not valid Python ({e.msg}, line {e.lineno}); a solution cell "
                            f"holds one function or class definition and no IPython magics") from None
    stmts, lines = tree.body, _lines(source)
    if not stmts:
        raise ExerciseError(f"{where} is empty; it must hold one function or class definition "
                            f"(signature, docstring, solution body)")
    if len(stmts) != 1 or not isinstance(stmts[0], _Def):
        found = ", ".join(_describe(stmt, lines) for stmt in stmts)
        raise ExerciseError(f"{where} must hold exactly one function or class definition (signature, "
                            f"docstring, solution body), found {found}; move other code to a cell of its own")
    node = stmts[0]
    if ast.get_docstring(node) is None:
        raise ExerciseError(f"{where}: `{node.name}` has no docstring; the exercise edition keeps only the "
                            f"signature and the docstring, so the docstring must say what to write")
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    above = "\n".join(lines[: first - 1])   # comments and blank lines above the definition
    skeleton = above + ("\n" if above else "") + _skeleton_def(node, lines, node.name)
    try:
        ast.parse(skeleton)
    except SyntaxError as e:   # a layout this module does not handle; say so rather than write it
        raise ExerciseError(f"{where}: the skeleton of `{node.name}` would not be valid Python ({e.msg}); "
                            f"put the signature, the docstring and the body on lines of their own") from None
    return skeleton


# -- notebooks ---------------------------------------------------------------------------------

def _first_line(cell: NotebookNode) -> str:
    return next((s.strip() for s in cell.source.splitlines() if s.strip()), "(empty)")


def _banner(source_name: str) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(
        "**Exercise edition.** The exercises at the end of this notebook are skeletons: write each\n"
        "function's body in place of `raise NotImplementedError`, run its cell, then run the check\n"
        "below it, which says what is wrong and where to look. Until then that check fails with a\n"
        "`NotImplementedError`, and \"Run All\" goes on past it.\n\n"
        f"*Instructors: this file is generated from `{source_name}` by `make exercises`; edit that\n"
        "notebook and regenerate.*")
    cell.id = BANNER_ID
    return cell


def _answers_note(source_name: str, n: int) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(
        f"**Answers.** Think about the questions above first. The worked answers, with the numbers\n"
        f"they rest on, are in the solution notebook `{source_name}`.")
    cell.id = f"answers-note-{n}"   # fixed ids keep the generated files reproducible
    return cell


def _drop_answers(cells: list, source_name: str) -> list:
    """``cells`` with each run of consecutive ``answer`` cells replaced by one note."""
    kept, notes = [], 0
    for cell in cells:
        if ANSWER_TAG in cell.metadata.get("tags", []):
            if not (kept and kept[-1].get("id", "").startswith("answers-note-")):
                notes += 1
                kept.append(_answers_note(source_name, notes))
            continue
        kept.append(cell)
    return kept


def exercise_edition(nb: NotebookNode, source_name: str = "the solution notebook",
                     edition_path: str | None = None) -> NotebookNode:
    """The exercise edition of the solution notebook ``nb`` (a new notebook; ``nb`` is unchanged).
    ``edition_path``, its path in the repository, is where its launch badges point
    (``unet_lib.launch``); without it they stay the solution notebook's.

    Raises ``ExerciseError`` naming the cell when a ``solution`` cell is not a single documented
    definition, or is not followed by a code cell that mentions the defined name (its check).
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)   # saved widget state is output too
    nb.cells = _drop_answers(nb.cells, source_name)
    cells = nb.cells
    for i, cell in enumerate(cells):
        cell.metadata.pop("execution", None)   # timestamps that nbclient records
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        tags = cell.metadata.get("tags", [])
        if SOLUTION_TAG not in tags:
            continue
        where = f"{source_name}, cell {i + 1} ({_first_line(cell)!r})"
        if cell.cell_type != "code":
            raise ExerciseError(f"{where} is a {cell.cell_type} cell tagged {SOLUTION_TAG!r}; only code cells "
                                f"hold solutions")
        skeleton = make_skeleton(cell.source, where)   # raises unless one documented definition
        name = ast.parse(cell.source).body[0].name
        cell.source = skeleton
        cell.metadata.tags = [EXERCISE_TAG if t == SOLUTION_TAG else t for t in tags]
        check = next((c for c in cells[i + 1 :] if c.cell_type == "code"), None)
        if check is None or SOLUTION_TAG in check.metadata.get("tags", []) \
                or not re.search(rf"\b{re.escape(name)}\b", check.source):
            raise ExerciseError(f"{where}: the next code cell must check the solution, e.g. "
                                f"`check_...({name})`; without it the exercise edition has no feedback")
        check_tags = check.metadata.setdefault("tags", [])
        if RAISES_TAG not in check_tags:
            check_tags.append(RAISES_TAG)
    if edition_path is not None:
        retarget_badges(nb, edition_path)
    # under the title, which may follow the generated launch badges
    at = next((i for i, c in enumerate(cells) if GENERATED_TAG not in c.metadata.get("tags", [])), len(cells))
    at += 1 if at < len(cells) and cells[at].cell_type == "markdown" else 0
    banner = _banner(source_name)
    if not all("id" in c for c in cells if not c.get("id", "").startswith("answers-note-")):
        del banner["id"]   # nbformat < 4.5 has no cell ids
        for c in cells:
            if c.get("id", "").startswith("answers-note-"):
                del c["id"]
    cells.insert(at, banner)
    # the stamp: what the generator wrote, so that a later run can tell a learner's changes apart
    nb.metadata[STAMP_KEY] = {"source": source_name, "sha256": content_digest(nb)}
    nbformat.validate(nb)
    return nb


def content_digest(nb: NotebookNode) -> str:
    """SHA-256 of what a learner could change in ``nb``: every cell's type and source, in order.
    Outputs, execution counts and metadata (the stamp included) do not count."""
    cells = [[cell.get("cell_type"), cell.get("source")] for cell in nb.get("cells", [])]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def render(nb: NotebookNode) -> str:
    """The exact text of ``nb`` as ``nbformat.write`` saves it (so comparing texts is exact)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def same_notebook(text_a: str, text_b: str) -> bool:
    """Whether two notebook files hold the same content, whatever their JSON layout (another
    nbformat version may indent or order keys differently)."""
    try:
        return json.loads(text_a) == json.loads(text_b)
    except json.JSONDecodeError:
        return text_a == text_b


def generate(notebooks_dir: Path | str = "notebooks", out_dir: Path | str = "exercises") -> dict[Path, str]:
    """The exercise editions of ``notebooks_dir/NN_*.ipynb``: {path in ``out_dir``: file text}."""
    notebooks_dir, out_dir = Path(notebooks_dir), Path(out_dir)
    if not notebooks_dir.is_dir():
        what = "is a file" if notebooks_dir.exists() else "does not exist"
        raise ExerciseError(f"the solution notebooks folder {notebooks_dir} {what} (resolved: "
                            f"{notebooks_dir.resolve()}); run from the repository root or pass --notebooks")
    paths = sorted(notebooks_dir.glob(NOTEBOOK_GLOB))
    if not paths:
        raise ExerciseError(f"the solution notebooks folder {notebooks_dir} holds no notebooks named "
                            f"{NOTEBOOK_GLOB} (resolved: {notebooks_dir.resolve()}); is it the right folder?")
    editions = {}
    for path in paths:
        nb = _read_notebook(path, "solution notebook")
        source_name = f"{notebooks_dir.name}/{path.name}"
        edition_path = (out_dir / path.name).as_posix() if not out_dir.is_absolute() else f"{out_dir.name}/{path.name}"
        editions[out_dir / path.name] = render(exercise_edition(nb, source_name, edition_path))
    return editions


# -- what CI executes --------------------------------------------------------------------------

_CELL_MAGIC = re.compile(r"\A\s*%%(time|timeit|capture)\b[^\n]*\n")   # these run the cell's own code


_Comprehension = ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp


def _comprehension_variables(tree: ast.AST) -> set[int]:
    """The ids of the ``Name`` nodes that are a comprehension's own variables: its targets, and
    their reads inside it. Since Python 3 they live in the comprehension's scope, not the cell's;
    only its first iterable runs in the cell's scope (``[x for x in x]`` reads the cell's x)."""
    local = set()
    for comp in ast.walk(tree):
        if isinstance(comp, _Comprehension):
            targets = {n.id for g in comp.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            outer = {id(n) for n in ast.walk(comp.generators[0].iter)}
            local |= {id(n) for n in ast.walk(comp)
                      if isinstance(n, ast.Name) and n.id in targets and id(n) not in outer}
    return local


def _names(source: str) -> tuple[set[str], set[str]] | None:
    """(names a cell binds, names it reads), or None when it cannot be parsed. Generous on
    purpose: a name bound anywhere in the cell counts (a comprehension's variables excepted),
    and assigning to ``x.attr`` or ``x[i]`` counts as binding ``x`` (it changes x)."""
    from IPython.core.inputtransformer2 import TransformerManager   # IPython comes with ipykernel

    try:
        tree = ast.parse(TransformerManager().transform_cell(_CELL_MAGIC.sub("", source)))
    except SyntaxError:
        return None
    binds, reads = set(), set()
    local = _comprehension_variables(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) in local:
            continue
        if isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else binds).add(node.id)
        elif isinstance(node, _Def):
            binds.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            binds.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.ctx, ast.Store):
            base = node.value
            while isinstance(base, ast.Attribute | ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name):
                binds.add(base.id)
    return binds, reads


def exercise_section(nb: NotebookNode) -> tuple[NotebookNode, list[int]]:
    """What CI executes of an exercise edition ``nb``: every cell from the first ``exercise``
    cell on, and the earlier code cells those need, found by name (transitively; usually only
    the imports). Returns the new notebook and the indices in ``nb`` of the earlier cells kept.

    Why: the cells before the exercises are the solution notebook's, which nbval executes and
    compares already; executing them again would train networks twice. A learner runs them
    all; CI runs what the exercises depend on. An earlier cell that cannot be parsed is kept.
    """
    start = next((i for i, c in enumerate(nb.cells) if EXERCISE_TAG in c.metadata.get("tags", [])), None)
    if start is None:
        raise ExerciseError("the notebook has no cell tagged 'exercise'; is it an exercise edition?")
    needed: set[str] = set()
    for cell in nb.cells[start:]:
        if cell.cell_type == "code":
            names = _names(cell.source)
            needed |= names[1] if names else set()
    kept = []
    for i in reversed(range(start)):
        cell = nb.cells[i]
        if cell.cell_type != "code":
            continue
        names = _names(cell.source)
        if names is None or names[0] & needed:
            kept.append(i)
            needed |= names[1] if names else set()
    kept.reverse()
    section = copy.deepcopy(nb)
    section.cells = [section.cells[i] for i in kept] + section.cells[start:]
    return section, kept


# -- command line ------------------------------------------------------------------------------

def _read_notebook(path: Path, what: str) -> NotebookNode:
    """``path`` read as a notebook, or an ``ExerciseError`` naming it (nbformat's own errors,
    such as ``NotJSONError``, do not say which file)."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception as error:   # NotJSONError, UnicodeDecodeError, KeyError, OSError...
        first = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
        raise ExerciseError(f"{path} cannot be read as a notebook ({type(error).__name__}{': ' if first else ''}"
                            f"{first}); the {what} is damaged or was saved half-way: restore it "
                            f"(e.g. `git checkout -- {path}`) or repair it in an editor") from None


def _status(path: Path, new_text: str | None) -> tuple[str, str]:
    """What the generator may do with the existing file ``path``, given ``new_text``, what would
    replace it (None when its solution notebook is gone), and why:

    * ``"replace"``: it still holds what the generator wrote (its stamp matches its cells), or
      already the new cells, and has no outputs;
    * ``"keep"``: it already holds the new cells, with outputs: nothing to update, so left as is;
    * ``"changed"``: a learner's changes, outputs, or a damaged file: never touched without
      ``--discard-changes``;
    * ``"foreign"``: no stamp, so not (provably) written by this generator.
    """
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:   # damaged, or saved half-way: the learner may still want what is in it
        # no stamp can be read either: overwritten only with --discard-changes, never removed
        return ("changed" if new_text is not None else "foreign"), \
            f"it cannot be read as a notebook ({type(error).__name__})"
    has_outputs = any(cell.get("outputs") for cell in nb.cells)
    digest = content_digest(nb)
    new = nbformat.reads(new_text, as_version=4) if new_text is not None else None
    if new is not None and digest == content_digest(new):
        return ("keep", "it holds the new cells already, and your outputs") if has_outputs else ("replace", "")
    stamp = nb.metadata.get(STAMP_KEY)
    if not isinstance(stamp, dict) or "sha256" not in stamp:
        return "foreign", "it has no generator stamp: not written by this generator, or older than the stamp"
    if stamp["sha256"] != digest:
        ours = {(c.cell_type, c.source) for c in new.cells} if new is not None else set()
        cells = [str(i + 1) for i, c in enumerate(nb.cells) if (c.cell_type, c.source) not in ours]
        where = (f" (cell{'s' * (len(cells) > 1)} {', '.join(cells[:8])}{'...' * (len(cells) > 8)} not in the "
                 f"new edition)") if cells and new is not None else ""
        return "changed", f"its cells were changed after the generator wrote it{where}"
    if has_outputs:
        return "changed", "it has outputs"
    return "replace", ""


def _is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()   # symlinks too
    return path == folder or folder in path.parents


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unet_lib.exercises", description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", default="notebooks", help="solution notebooks (default: notebooks)")
    parser.add_argument("--out", default="exercises", help="exercise editions (default: exercises)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if out of date")
    parser.add_argument("--discard-changes", action="store_true",
                        help="overwrite (or remove) exercise notebooks that were changed after the generator wrote "
                             "them, e.g. a learner's work; files without the generator's stamp are never removed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unet_lib.exercises [--check] [--discard-changes]``: write (or check) the
    exercise editions. Exit status: 0 done (or up to date), 1 out of date (``--check``), 2 an
    error in the arguments or a notebook, 3 refused to overwrite changed files."""
    args = _parser().parse_args(argv)
    notebooks, out = Path(args.notebooks), Path(args.out)
    if _is_inside(out, notebooks):
        print(f"error: --out {out} is the solution notebooks folder {notebooks} or inside it (resolved: "
              f"{out.resolve()}); the exercise editions would replace the solutions. Use --out exercises",
              file=sys.stderr)
        return 2
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a folder", file=sys.stderr)
        return 2
    try:
        editions = generate(notebooks, out)
    except ExerciseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    present = sorted(out.glob(NOTEBOOK_GLOB)) if out.is_dir() else []
    stale = [p for p in present if p not in editions]
    changed = [p for p, text in editions.items()
               if not p.exists() or not same_notebook(p.read_text(encoding="utf8", errors="replace"), text)]
    if args.check:
        for p in changed + stale:
            print(f"out of date: {p}", file=sys.stderr)
        if changed or stale:
            print("run `make exercises` and commit exercises/", file=sys.stderr)
        return 1 if changed or stale else 0

    status = {p: _status(p, editions.get(p)) for p in changed + stale if p.exists()}
    reasons = {p: why for p, (kind, why) in status.items() if kind != "replace"}
    kept = [p for p in changed if status.get(p, ("",))[0] == "keep"]
    # a file without the stamp is overwritten only with --discard-changes, and never removed
    foreign = [p for p in stale if status[p][0] == "foreign"]
    protected = [p for p in reasons if p not in foreign and p not in kept]
    if protected and not args.discard_changes:
        listing = "\n".join(f"  {p}: {reasons[p]}" for p in protected)
        print(f"error: regenerating would overwrite or remove work that the generator did not write:\n{listing}\n"
              f"Nothing was written. To keep it, copy it elsewhere first (e.g. `cp {protected[0]} "
              f"~/{protected[0].name}`); to discard it, run again with --discard-changes, which overwrites "
              f"(or removes) exactly the files listed", file=sys.stderr)
        return 3
    out.mkdir(parents=True, exist_ok=True)
    for p in kept:
        print(f"kept {p}: {reasons[p]}")
    changed = [p for p in changed if p not in kept]
    for p in changed:
        atomic_write(p, editions[p])
        print(f"wrote {p}" + (" (discarding its changes)" if p in reasons else ""))
    removed = 0
    for p in stale:   # its solution notebook is gone
        if p in foreign:
            print(f"left alone {p}: {reasons[p]}; its solution notebook is not in {notebooks}/", file=sys.stderr)
            continue
        p.unlink()
        removed += 1
        print(f"removed {p}" + (" (discarding its changes)" if p in reasons else ""))
    print(f"{len(editions)} exercise notebooks in {out}/, {len(changed) + removed} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
