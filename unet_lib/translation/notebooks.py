"""The Chinese notebooks: a solution notebook and its exercise edition made from the English one and a store."""

import ast
import copy
import hashlib
import json
import re

import nbformat
from nbformat import NotebookNode

from ..exercises import ANSWER_TAG, EXERCISE_TAG, SOLUTION_TAG, content_digest, exercise_edition
from ..exercises import STAMP_KEY as EXERCISE_STAMP_KEY
from .store import Store, _text
from .code_cells import code_tokens, translate_code
from .cell_checks import Problem, _is_generated


LANGUAGE_CELL_ID = "zh-language"       # the code cell that calls set_language("zh")
LANGUAGE_SOURCE = ('from unet_lib.checks import set_language\n\n'
                   'set_language("zh")   # 练习的检查用中文给出结果和提示')
STAMP_KEY = "unet_lib_translation"     # zh/notebooks metadata: {"source", "store", "sha256"}
EXERCISE_TEXTS = "_exercise_edition.json"



def _code_translations(entry: dict | None) -> dict[str, str]:
    return {_text(s["en"]): _text(s["zh"]) for s in (entry or {}).get("segments", []) if _text(s.get("zh"))}


def retarget_generated_cells(nb: NotebookNode, path: str) -> None:
    """The hook for issue #22's generator: point ``nb``'s generated launch cells at ``path`` (the
    notebook's own path in the repository, e.g. ``zh/notebooks/01_intuition.ipynb``). Until
    ``unet_lib.launch`` exists the cells stay as the English notebook has them."""
    try:
        from ..launch import retarget_badges
    except ImportError:
        return
    retarget_badges(nb, path)


def _notebook_digest(nb: NotebookNode) -> str:
    """SHA-256 of what a learner can change in a solution notebook: cells and their outputs."""
    cells = [[c.get("cell_type"), c.get("source"), c.get("outputs")] for c in nb.get("cells", [])]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def chinese_notebook(nb: NotebookNode, store: Store, path: str, store_path: str = "") -> NotebookNode:
    """The Chinese edition of the English notebook ``nb``, to be written at ``path`` (its path in
    the repository): markdown from ``store`` (the English text where there is no translation),
    code with its comments and docstrings translated, outputs, metadata and widget state copied,
    generated cells from their generator, and the ``set_language("zh")`` cell."""
    zh = copy.deepcopy(nb)
    for cell in zh.cells:
        if _is_generated(cell) or "id" not in cell:
            continue
        entry = store.cells.get(cell.id)
        if cell.cell_type == "markdown" and entry is not None and "segments" not in entry:
            text = _text(entry.get("zh"))
            if text and text.strip():
                cell.source = text
        elif cell.cell_type == "code":
            cell.source = translate_code(cell.source, _code_translations(entry))
    language = nbformat.v4.new_code_cell(LANGUAGE_SOURCE)
    language.id = LANGUAGE_CELL_ID
    at = next((i for i, c in enumerate(zh.cells) if c.cell_type == "code" and not _is_generated(c)), len(zh.cells))
    zh.cells.insert(at, language)
    retarget_generated_cells(zh, path)
    zh.metadata.pop(STAMP_KEY, None)
    zh.metadata[STAMP_KEY] = {"source": store.notebook, "store": store_path, "sha256": _notebook_digest(zh)}
    return zh


def _skeleton_message(skeleton: str) -> str:
    raise_stmt = next(n for n in ast.walk(ast.parse(skeleton)) if isinstance(n, ast.Raise))
    return raise_stmt.exc.args[0].value


def exercise_texts() -> dict[str, str]:
    """The English texts that ``unet_lib.exercises`` writes into an exercise edition, as templates
    (``{source}``: the solution notebook; ``{name}``: the exercise): ``banner``, ``answers-note``,
    ``skeleton`` and ``skeleton-method`` (the NotImplementedError of a method without docstring)."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell('def f():\n    """Do it."""\n    return 1', metadata={"tags": [SOLUTION_TAG]}),
        nbformat.v4.new_code_cell("check(f)"),
        nbformat.v4.new_code_cell('class C:\n    """Do it."""\n    def m(self):\n        return 1',
                                  metadata={"tags": [SOLUTION_TAG]}),
        nbformat.v4.new_code_cell("check(C)"),
        nbformat.v4.new_markdown_cell("answer", metadata={"tags": [ANSWER_TAG]}),
    ])
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
    edition = exercise_edition(nb, "{source}")
    by_id = {c.get("id"): c for c in edition.cells}
    skeletons = [c.source for c in edition.cells if EXERCISE_TAG in c.metadata.get("tags", [])]
    return {
        "banner": by_id["exercise-edition"].source,
        "answers-note": by_id["answers-note-1"].source,
        "skeleton": _skeleton_message(skeletons[0]).replace("`f`", "`{name}`"),
        "skeleton-method": _skeleton_message(skeletons[1]).replace("`C.m`", "`{name}`"),
    }


def _skeleton_pattern(template: str) -> re.Pattern:
    """``raise NotImplementedError("<template with any name>")`` as the exercise generator writes it."""
    head, _, tail = template.partition("{name}")
    return re.compile(r"(raise NotImplementedError\()\"" + re.escape(head) + r"(?P<name>[\w.]+)" + re.escape(tail)
                      + r"\"\)")


def chinese_exercises(zh_nb: NotebookNode, texts: dict[str, str], source: str, path: str) -> NotebookNode:
    """The exercise edition of the Chinese solution notebook ``zh_nb`` (written at ``path``; its
    solution notebook is ``source``), with the generator's English texts replaced by ``texts``
    ({key of ``exercise_texts``: its Chinese template}); a key without a translation stays English."""
    edition = exercise_edition(zh_nb, source)
    english = exercise_texts()
    for cell in edition.cells:
        cell_id = cell.get("id", "")
        if cell_id == "exercise-edition" and texts.get("banner"):
            cell.source = texts["banner"].replace("{source}", source)
        elif cell_id.startswith("answers-note-") and texts.get("answers-note"):
            cell.source = texts["answers-note"].replace("{source}", source)
        elif EXERCISE_TAG in cell.metadata.get("tags", []):
            for key in ("skeleton", "skeleton-method"):
                if texts.get(key):
                    chinese = texts[key]
                    cell.source = _skeleton_pattern(english[key]).sub(
                        lambda m, zh=chinese: m.group(1) + json.dumps(zh.replace("{name}", m["name"]),
                                                                      ensure_ascii=False) + ")", cell.source)
    retarget_generated_cells(edition, path)
    edition.metadata.pop(STAMP_KEY, None)   # the solution notebook's stamp; this file has its own
    edition.metadata[EXERCISE_STAMP_KEY] = {"source": source, "sha256": content_digest(edition)}
    return edition


def compare_with_english(nb: NotebookNode, zh: NotebookNode, name: str) -> list[Problem]:
    """Where the Chinese notebook ``zh`` differs from the English ``nb`` in what it must share:
    the cells (ids, types, order), each code cell's code outside comments and docstrings, its
    outputs and execution count."""
    problems = []
    english = [c for c in nb.cells]
    chinese = [c for c in zh.cells if c.get("id") != LANGUAGE_CELL_ID]
    en_ids, zh_ids = [c.get("id") for c in english], [c.get("id") for c in chinese]
    if en_ids != zh_ids:
        extra, lost = [i for i in zh_ids if i not in en_ids], [i for i in en_ids if i not in zh_ids]
        message = "its cells are not the English notebook's cells" + (f"; extra: {', '.join(map(str, extra))}"
                                                                      if extra else "") \
            + (f"; missing: {', '.join(map(str, lost))}" if lost else "") + ("" if extra or lost else " (order)")
        return [Problem(name, "", "edition", message)]
    if sum(c.get("id") == LANGUAGE_CELL_ID for c in zh.cells) != 1:
        problems.append(Problem(name, "", "edition", f"it needs exactly one {LANGUAGE_CELL_ID!r} cell "
                                                     f"(set_language(\"zh\"))"))
    for en, cn in zip(english, chinese):
        where = en.get("id")
        if en.cell_type != cn.cell_type:
            problems.append(Problem(name, where, "edition", f"a {cn.cell_type} cell where the English has a "
                                                            f"{en.cell_type} cell"))
            continue
        if en.cell_type != "code" or _is_generated(en):
            continue
        if code_tokens(en.source) != code_tokens(cn.source):
            problems.append(Problem(name, where, "code", "the code differs from the English cell's (only comments "
                                                         "and docstrings are translated)"))
        if en.get("outputs") != cn.get("outputs"):
            problems.append(Problem(name, where, "outputs", "the outputs differ from the English run's (they are "
                                                            "copied, never re-executed)"))
        if en.get("execution_count") != cn.get("execution_count"):
            problems.append(Problem(name, where, "outputs", "the execution count differs from the English run's"))
    return problems
