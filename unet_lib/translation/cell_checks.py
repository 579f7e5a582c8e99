"""One notebook's store checked cell by cell: stale, missing and orphan translations, and their progress."""

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nbformat import NotebookNode

from .store import GENERATED_TAG, Store, _text, source_hash
from .code_cells import _valid_translation, to_translate
from .faithfulness import faithfulness_problems
from .glossary import Term, glossary_problems
from .style import style_problems


@dataclass
class Progress:
    """How much of one notebook (or of all) is translated."""
    markdown_done: int = 0
    markdown_total: int = 0
    code_done: int = 0        # code cells all of whose comments and docstrings are translated
    code_total: int = 0       # code cells with comments or docstrings
    notebooks_done: int = 0
    notebooks_total: int = 0

    def __add__(self, other: "Progress") -> "Progress":
        return Progress(*(a + b for a, b in zip(vars(self).values(), vars(other).values())))

    def __str__(self) -> str:
        return (f"{self.notebooks_done}/{self.notebooks_total} notebooks complete; markdown cells "
                f"{self.markdown_done}/{self.markdown_total}, code cells with comments "
                f"{self.code_done}/{self.code_total}")


@dataclass(frozen=True)
class Problem:
    """One thing the checks found, where: ``notebook`` and ``cell`` (an id, or "" for the file)."""
    notebook: str
    cell: str
    kind: str          # stale, missing, orphan, invalid, faithfulness, glossary, style, code, outputs, edition
    message: str

    def __str__(self) -> str:
        where = f"{self.notebook}, cell {self.cell}" if self.cell else self.notebook
        return f"{where}: {self.kind}: {self.message}"


def _is_generated(cell: NotebookNode) -> bool:
    return GENERATED_TAG in cell.get("metadata", {}).get("tags", [])


def _translatable(nb: NotebookNode) -> dict[str, NotebookNode]:
    """{id: cell} of the English cells that need a translation: non-empty markdown cells and code
    cells with comments or docstrings, generated cells excepted."""
    found = {}
    for cell in nb.cells:
        if _is_generated(cell) or "id" not in cell:
            continue
        if cell.cell_type == "markdown" and cell.source.strip():
            found[cell.id] = cell
        elif cell.cell_type == "code" and to_translate(cell.source):
            found[cell.id] = cell
    return found


def _first_line(text: str) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line[:70] + ("..." if len(line) > 70 else "")


def _diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(old.split("\n"), new.split("\n"), "English when translated", "English now",
                                 lineterm="", n=1)
    return "\n".join("    " + line for line in list(lines)[2:])


def _check_markdown(cell: NotebookNode, entry: dict | None, stem: str,
                    glossary: Sequence[Term]) -> tuple[list[tuple[str, str]], bool]:
    """([(kind, message)], translated and current) for one English markdown cell and its entry."""
    if entry is None:
        return [("missing", f"markdown cell not translated ({_first_line(cell.source)!r})")], False
    if "segments" in entry:
        return [("stale", "the cell is now a markdown cell; its translation is of a code cell")], False
    en, zh = _text(entry["en"]), _text(entry.get("zh"))
    if source_hash(en) != entry["sha256"]:
        return [("invalid", "the entry's \"en\" does not match its \"sha256\": edit only \"zh\"; "
                            "`python -m unet_lib.translation accept` writes \"en\" and \"sha256\"")], False
    if zh is None or not zh.strip():
        return [("missing", f"markdown cell not translated ({_first_line(cell.source)!r})")], False
    if entry["sha256"] != source_hash(cell.source):
        return [("stale", f"the English cell changed after it was translated; update \"zh\", then run "
                          f"`python -m unet_lib.translation accept {stem} {cell.id}`. What changed:\n"
                          + _diff(en, cell.source))], False
    exceptions = entry.get("glossary_exceptions", [])
    return ([("faithfulness", m) for m in faithfulness_problems(cell.source, zh)]
            + [("glossary", m) for m in glossary_problems(cell.source, zh, glossary, exceptions)]
            + [("style", m) for m in style_problems(zh)]), True


def _check_code(cell: NotebookNode, entry: dict | None,
                glossary: Sequence[Term]) -> tuple[list[tuple[str, str]], bool]:
    """([(kind, message)], every comment and docstring translated) for one English code cell."""
    if entry is not None and "segments" not in entry:
        return [("stale", "the cell is now a code cell; its translation is of a markdown cell")], False
    english = {s.text: s for s in to_translate(cell.source)}
    stored = {_text(s["en"]): _text(s.get("zh")) for s in (entry or {}).get("segments", [])}
    untranslated = [t for t in english if not (stored.get(t) or "").strip()]
    left_over = [t for t in stored if t not in english]
    found = []
    for text in untranslated:   # with left-overs: a comment that changed, so the translation is stale
        earlier = f" (left over from an earlier version: {', '.join(repr(_first_line(t)) for t in left_over)})"
        found.append(("stale" if left_over else "missing",
                      f"{english[text].kind} not translated: {_first_line(text)!r}" + (earlier if left_over else "")))
    if not untranslated:
        found += [("orphan", f"translated comment no longer in the English cell: {_first_line(t)!r} "
                             f"(`scaffold --drop-orphans` removes it)") for t in left_over]
    exceptions = (entry or {}).get("glossary_exceptions", [])
    for text, segment in english.items():
        zh = stored.get(text)
        if not (zh or "").strip():
            continue
        why = _valid_translation(segment, zh)
        if why is not None:
            found.append(("invalid", f"the translation of {_first_line(text)!r}: {why}"))
            continue
        found += [("faithfulness", f"{_first_line(text)!r}: {m}") for m in faithfulness_problems(text, zh)]
        found += [("glossary", f"{_first_line(text)!r}: {m}")
                  for m in glossary_problems(text, zh, glossary, exceptions)]
        found += [("style", f"{_first_line(text)!r}: {m}") for m in style_problems(zh.lstrip("#"))]
    return found, not untranslated


def check_store(nb: NotebookNode, store: Store, name: str,
                glossary: Sequence[Term] = ()) -> tuple[list[Problem], Progress]:
    """The problems of ``store`` against the English notebook ``nb`` (called ``name`` in the
    messages), and the translation progress: stale, missing, orphan and invalid entries, and in
    every current translation, faithfulness and the glossary."""
    problems: list[Problem] = []
    progress = Progress(notebooks_total=1)
    wanted = _translatable(nb)
    for cell_id, cell in wanted.items():
        entry = store.cells.get(cell_id)
        if cell.cell_type == "markdown":
            found, done = _check_markdown(cell, entry, Path(name).stem, glossary)
            progress.markdown_total += 1
            progress.markdown_done += done
        else:
            found, done = _check_code(cell, entry, glossary)
            progress.code_total += 1
            progress.code_done += done
        problems += [Problem(name, cell_id, kind, message) for kind, message in found]
    cells = {cell.id: cell for cell in nb.cells if "id" in cell}
    for cell_id, entry in store.cells.items():
        if cell_id in wanted:
            continue
        cell = cells.get(cell_id)
        if cell is None:
            segments_ = entry.get("segments") or [{"en": ""}]
            began = _text(entry.get("en")) if "segments" not in entry else _text(segments_[0]["en"])
            message = (f"translation of a cell the English notebook no longer has (it began: "
                       f"{_first_line(began or '')!r}); `scaffold` moves it when the cell only got a new id, "
                       f"`scaffold --drop-orphans` removes it")
        elif _is_generated(cell):
            message = "a generated cell is written by its generator (issue #22), not translated here"
        else:
            message = "this cell has nothing to translate now (no text, comment or docstring)"
        problems.append(Problem(name, cell_id, "orphan", message))
    if progress.markdown_done == progress.markdown_total and progress.code_done == progress.code_total:
        progress.notebooks_done = 1
    return problems, progress
