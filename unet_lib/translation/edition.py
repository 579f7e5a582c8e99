"""The whole Chinese edition: where its files are (``Edition``), every check of it, and its progress line."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..exercises import NOTEBOOK_GLOB, same_notebook
from .store import LANGUAGE, Store, TranslationError, _text, read_store
from .faithfulness import faithfulness_problems
from .glossary import Term, glossary_problems, read_glossary
from .style import style_problems
from .cell_checks import Problem, Progress, _diff, _first_line, check_store
from .notebooks import EXERCISE_TEXTS, chinese_exercises, chinese_notebook, compare_with_english, exercise_texts
from .catalogue import check_templates


def _read_notebook(path: Path) -> NotebookNode:
    """``path`` read as a notebook, or a ``TranslationError`` naming it."""
    try:
        return nbformat.reads(path.read_text(encoding="utf8"), as_version=4)
    except Exception as error:   # NotJSONError, UnicodeDecodeError, OSError, a validation error
        first = (str(error).strip().splitlines() or [""])[0][:120]
        raise TranslationError(f"{path} cannot be read as a notebook ({type(error).__name__}: {first}); restore it "
                               f"(e.g. `git checkout -- {path}`)") from None


@dataclass
class Edition:
    """Where the course's files are, relative to ``root`` (the repository)."""
    root: Path
    notebooks: str = "notebooks"
    exercises: str = "exercises"
    store: str = f"i18n/{LANGUAGE}"
    out: str = LANGUAGE
    glossary: str = f"i18n/glossary.{LANGUAGE}.tsv"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def english(self) -> list[Path]:
        return sorted(self.path(self.notebooks).glob(NOTEBOOK_GLOB))

    def store_of(self, name: str) -> str:
        return f"{self.store}/{Path(name).stem}.json"

    def stores(self) -> list[Path]:
        return sorted(self.path(self.store).glob("[0-9][0-9]_*.json"))

    def zh_notebook(self, name: str) -> str:
        return f"{self.out}/{self.notebooks}/{name}"

    def zh_exercises(self, name: str) -> str:
        return f"{self.out}/{self.exercises}/{name}"

    def texts_path(self) -> str:
        return f"{self.store}/{EXERCISE_TEXTS}"


def _read_texts(edition: Edition, glossary: Sequence[Term] = ()) -> tuple[dict[str, str], list[Problem]]:
    """The Chinese exercise-edition texts and their problems (stale, missing, placeholders)."""
    where = edition.texts_path()
    path = edition.path(where)
    if not path.is_file():
        return {}, [Problem(where, "", "missing", "the Chinese texts of the exercise edition's banner, answers note "
                                                  "and skeleton message; `scaffold` writes it")]
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as error:
        return {}, [Problem(where, "", "invalid", f"not valid JSON (line {error.lineno}: {error.msg})")]
    problems, texts = [], {}
    for key, english in exercise_texts().items():
        entry = data.get(key)
        if not isinstance(entry, dict) or not _text(entry.get("zh")):
            problems.append(Problem(where, key, "missing", f"not translated: {_first_line(english)!r}"))
            continue
        zh = _text(entry["zh"])
        if _text(entry.get("en")) != english:
            problems.append(Problem(where, key, "stale", "unet_lib.exercises writes another English text now; "
                                    "update \"zh\" and \"en\". What changed:\n"
                                    + _diff(_text(entry.get("en")) or "", english)))
            continue
        for placeholder in ("{source}", "{name}"):
            if placeholder in english and placeholder not in zh:
                problems.append(Problem(where, key, "invalid", f"the translation must keep {placeholder}"))
        for message in faithfulness_problems(english, zh):
            problems.append(Problem(where, key, "faithfulness", message))
        for message in glossary_problems(english, zh, glossary):
            problems.append(Problem(where, key, "glossary", message))
        for message in style_problems(zh.replace("{source}", "X").replace("{name}", "X")):
            problems.append(Problem(where, key, "style", message))
        texts[key] = zh
    for key in data:
        if key not in exercise_texts():
            problems.append(Problem(where, key, "orphan", "unet_lib.exercises writes no such text"))
    return texts, problems


def _read_store(edition: Edition, name: str) -> tuple[Store | None, list[Problem]]:
    """The store of the notebook ``name``, or None and the problem that says why it cannot be read."""
    try:
        return read_store(edition.path(edition.store_of(name))), []
    except TranslationError as error:
        return None, [Problem(name, "", "invalid", str(error))]


def check_edition(edition: Edition, names: Iterable[str] | None = None) -> tuple[list[Problem], Progress]:
    """Every check of the Chinese edition, for the English notebooks ``names`` (all by default):
    the stores, the glossary, faithfulness, and the committed ``zh/`` files against the English
    notebooks and against what the generator writes now. Notebooks without a store count in the
    progress and are not checked otherwise."""
    glossary_path = edition.path(edition.glossary)
    glossary = read_glossary(glossary_path) if glossary_path.is_file() else []
    english_names = [p.name for p in edition.english()]
    everything = names is None
    names = english_names if everything else list(names)
    problems: list[Problem] = []
    progress = Progress()
    texts, text_problems = None, []
    for name in names:
        if name not in english_names:
            if edition.path(edition.store_of(name)).is_file():
                problems.append(Problem(edition.store_of(name), "", "orphan", f"a translation store for {name}, "
                                        f"which {edition.notebooks}/ does not have"))
            continue
        nb = _read_notebook(edition.path(f"{edition.notebooks}/{name}"))
        store_file = edition.path(edition.store_of(name))
        if not store_file.is_file():
            progress += check_store(nb, Store(f"{edition.notebooks}/{name}"), name)[1]
            continue
        store, unreadable = _read_store(edition, name)
        problems += unreadable
        if store is None:
            continue
        found, done = check_store(nb, store, name, glossary)
        problems += found
        progress += done
        if texts is None:
            texts, text_problems = _read_texts(edition, glossary)
            problems += text_problems
        zh = chinese_notebook(nb, store, edition.zh_notebook(name), edition.store_of(name))
        for relative, want in ((edition.zh_notebook(name), zh),
                               (edition.zh_exercises(name),
                                chinese_exercises(zh, texts, edition.zh_notebook(name), edition.zh_exercises(name)))):
            path = edition.path(relative)
            if not path.is_file():
                problems.append(Problem(relative, "", "edition",
                                        "not generated yet: run `python -m unet_lib.translation`"))
                continue
            committed = _read_notebook(path)
            if relative == edition.zh_notebook(name):
                problems += compare_with_english(nb, committed, relative)
            if not same_notebook(json.dumps(committed), json.dumps(want)):
                cells = [c.get("id") for c, w in zip(committed.cells, want.cells) if c != w]
                which = f" (cells {', '.join(map(str, cells[:8]))})" if cells else ""
                problems.append(Problem(relative, "", "edition", f"not what the generator writes from the English "
                                        f"notebook and the store now{which}: run `python -m unet_lib.translation`"))
    for store_file in edition.stores() if everything else []:
        if f"{store_file.stem}.ipynb" not in english_names:
            problems.append(Problem(edition.store_of(store_file.stem), "", "orphan",
                                    f"a translation store for {store_file.stem}.ipynb, which {edition.notebooks}/ "
                                    f"does not have"))
    return problems, progress



def summary(edition: Edition) -> str:
    """One line of progress: notebooks, markdown cells, code cells and check messages translated
    (what ``make test`` prints at its end)."""
    progress = Progress()
    for path in edition.english():
        store_file = edition.path(edition.store_of(path.name))
        try:
            store = read_store(store_file) if store_file.is_file() else Store(path.name)
        except TranslationError:
            store = Store(path.name)
        progress += check_store(_read_notebook(path), store, path.name)[1]
    line = str(progress)
    checks = edition.path("unet_lib/checks")
    if checks.is_dir():
        templates = check_templates(sorted(checks.glob("*.py")))
        locale = checks / "locale" / f"{LANGUAGE}.json"
        catalogue = json.loads(locale.read_text(encoding="utf8")) if locale.is_file() else {}
        done = sum(1 for t in templates if isinstance(catalogue.get(t), str) and catalogue[t].strip())
        line += f"; check messages {done}/{len(templates)}"
    return line
