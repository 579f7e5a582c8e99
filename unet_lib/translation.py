"""The Chinese edition (中文版): ``zh/notebooks`` and ``zh/exercises`` generated from the English
notebooks and a translation store, and the checks that keep the two languages in step.

The English notebooks in ``notebooks/`` stay the one source of truth. What is Chinese lives in
one store per notebook, ``i18n/zh/NN_topic.json``, keyed by the English cell's id:

* a **markdown cell**'s entry holds the English text it translates (``en``), that text's hash
  (``sha256``, its first 16 hex digits) and the translation (``zh``). When the English cell
  changes, its hash no longer matches: the translation is *stale* until a translator updates
  ``zh`` and runs ``accept``;
* a **code cell** is never stored: the Chinese cell is the English code with each comment and
  docstring replaced by its translation. Its entry holds ``segments``: pairs of an English comment
  (a run of full-line comments, or one trailing comment) or docstring and its translation, keyed by
  the English text. A code change leaves the translation current; a changed comment shows up as a
  new segment to translate (and the old one as left over);
* cells tagged ``generated`` (issue #22's launch badges and Colab install cell) are not
  translated here: they are copied from the English notebook and pointed at the Chinese notebook
  by their own generator (``unet_lib.launch.retarget_badges``, when that module exists).

Why a store beside the notebooks rather than in the Chinese notebooks' metadata: the Chinese
notebooks are generated files (as ``exercises/`` is), carry megabytes of copied figures, and are
opened and run by learners; the store is small, diffs line by line in review, is edited by
translators without Jupyter, and feeds both Chinese editions (solutions and exercises).

Generation (``python -m unet_lib.translation``, run by ``make exercises``) writes, for every
notebook that has a store:

* ``zh/notebooks/NN_topic.ipynb``: the English notebook with its markdown and comments translated,
  its outputs, figures and widget state copied (never re-executed), and one code cell
  (id ``zh-language``) that calls ``set_language("zh")``, so that the checks speak Chinese: the
  first code cell after the generated ones;
* ``zh/exercises/NN_topic.ipynb``: ``unet_lib.exercises.exercise_edition`` applied to that Chinese
  solution notebook (so the skeletons keep the Chinese docstrings), with the generator's own texts
  (the banner, the answers note, the skeleton's ``NotImplementedError`` message) taken from
  ``i18n/zh/_exercise_edition.json``.

A file in ``zh/`` that a learner changed (cells, outputs) is never overwritten or removed without
``--discard-changes``; each generated file carries a stamp of what was written.

The checks (``check`` here, ``tests/test_translation.py`` in ``make test``), each naming the
notebook and the cell: a translation that is *stale*, *missing* or left over (*orphan*); a Chinese
notebook whose code (outside comments and docstrings) or outputs differ from the English one, or
that is not what the generator writes now; faithfulness (every number, thousands separators
aside, every link target, code span, formula and paper quote of the English text appears in its
translation); the glossary (``i18n/glossary.zh.tsv``): no variant that it rules out, and its term
wherever the English uses one of its multi-word terms; and d2l-zh's typography (no space between
Chinese and Latin text, Chinese punctuation, emphasis that renders). They read files only, so
``make test`` spends about a second on all twelve notebooks. ``i18n/README.md`` is the
translators' guide.
"""

import argparse
import ast
import copy
import difflib
import hashlib
import io
import json
import re
import string
import sys
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .atomic import atomic_write
from .exercises import (
    ANSWER_TAG,
    EXERCISE_TAG,
    NOTEBOOK_GLOB,
    SOLUTION_TAG,
    content_digest,
    exercise_edition,
    render,
    same_notebook,
)
from .exercises import STAMP_KEY as EXERCISE_STAMP_KEY

__all__ = [
    "TranslationError", "LANGUAGE", "GENERATED_TAG", "LANGUAGE_CELL_ID", "STAMP_KEY", "Segment", "segments",
    "to_translate", "code_tokens", "translate_code", "source_hash", "Store", "read_store", "write_store", "store_text",
    "Term", "read_glossary", "glossary_problems", "faithfulness_problems", "style_problems", "Progress", "Problem",
    "check_store", "chinese_notebook", "exercise_texts", "chinese_exercises", "compare_with_english",
    "Edition", "check_edition", "generate", "scaffold", "accept", "check_templates", "catalogue_problems",
    "summary", "main",
]

LANGUAGE = "zh"
GENERATED_TAG = "generated"            # issue #22's launch cells: their generator writes them, not the store
LANGUAGE_CELL_ID = "zh-language"       # the code cell that calls set_language("zh")
LANGUAGE_SOURCE = ('from unet_lib.checks import set_language\n\n'
                   'set_language("zh")   # 练习的检查用中文给出结果和提示')
STAMP_KEY = "unet_lib_translation"     # zh/notebooks metadata: {"source", "store", "sha256"}
EXERCISE_TEXTS = "_exercise_edition.json"
_HASH_DIGITS = 16


class TranslationError(ValueError):
    """A store, glossary or notebook cannot be used; the message names the file and what is wrong."""


# -- texts ---------------------------------------------------------------------------------------

def source_hash(text: str) -> str:
    """The hash that keys a translation to the English text it was made from."""
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_DIGITS]


def _text(value) -> str | None:
    """A stored text: a string, a list of lines (joined with newlines), or None (not translated)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    raise TranslationError(f"a text must be a string, a list of lines or null; got {type(value).__name__}")


def _stored(text: str | None):
    """How a text is written into the store: one line as a string, several as a list of lines."""
    return text if text is None or "\n" not in text else text.split("\n")


# -- code cells: comments and docstrings ----------------------------------------------------------

_PRAGMA = re.compile(r"#\s*(noqa|type:|pragma|fmt:|pylint:|isort:)")   # tool directives: never translated


@dataclass(frozen=True)
class Segment:
    """A translatable piece of a code cell: a run of full-line comments, one trailing comment, or a
    docstring. ``text`` is its English text with ``indent`` taken off every line after the first;
    ``start`` and ``end`` are character offsets in the cell's source."""
    kind: str      # "comment", "trailing comment" or "docstring"
    text: str
    start: int
    end: int
    indent: str


def _parse(source: str) -> tuple[list[tokenize.TokenInfo], ast.Module] | None:
    try:
        return list(tokenize.generate_tokens(io.StringIO(source).readline)), ast.parse(source)
    except (tokenize.TokenError, SyntaxError, ValueError):   # IPython magics, a half-written cell
        return None


def _offsets(source: str) -> list[int]:
    """The character offset at which each line (from 1) of ``source`` starts."""
    starts, at = [0, 0], 0
    for line in source.splitlines(keepends=True):
        at += len(line)
        starts.append(at)
    return starts


def _docstring_nodes(tree: ast.Module) -> list[ast.Constant]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.append(first.value)
    return found


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode()[:byte_col].decode(errors="ignore"))


def _dedent(text: str, indent: str) -> str | None:
    """``text`` with ``indent`` taken off every line after the first, or None when that does not
    give the text back exactly when put back on."""
    lines = text.split("\n")
    if not indent or len(lines) == 1:
        return text
    if not all(line.startswith(indent) or not line for line in lines[1:]):
        return None
    dedented = "\n".join(lines[:1] + [line[len(indent):] for line in lines[1:]])
    return dedented if _reindent(dedented, indent) == text else None


def _reindent(text: str, indent: str) -> str:
    lines = text.split("\n")
    return "\n".join(lines[:1] + [indent + line if line else line for line in lines[1:]])


def segments(source: str) -> list[Segment] | None:
    """The comments and docstrings of a code cell's ``source``, in order; None when the source is
    not plain Python (then the cell is copied as it is and nothing in it is translated)."""
    parsed = _parse(source)
    if parsed is None:
        return None
    tokens, tree = parsed
    lines, starts = source.splitlines(), _offsets(source)
    found: list[Segment] = []
    for node in _docstring_nodes(tree):
        line = lines[node.lineno - 1]
        col = _char_col(line, node.col_offset)
        start = starts[node.lineno] + col
        end = starts[node.end_lineno] + _char_col(lines[node.end_lineno - 1], node.end_col_offset)
        indent = line[:col] if not line[:col].strip() else ""
        text = source[start:end]
        dedented = _dedent(text, indent)
        found.append(Segment("docstring", text if dedented is None else dedented, start, end,
                             "" if dedented is None else indent))
    block: list[tokenize.TokenInfo] = []

    def close_block():
        if block:
            first, last = block[0], block[-1]
            indent = lines[first.start[0] - 1][:first.start[1]]
            found.append(Segment("comment", "\n".join(t.string for t in block),
                                 starts[first.start[0]] + first.start[1], starts[last.end[0]] + last.end[1], indent))
            block.clear()

    for token in tokens:
        if token.type != tokenize.COMMENT or _PRAGMA.match(token.string):
            continue
        row, col = token.start
        if lines[row - 1][:col].strip():       # after code on its line
            close_block()
            found.append(Segment("trailing comment", token.string, starts[row] + col, starts[row] + token.end[1], ""))
            continue
        if block and (row != block[-1].start[0] + 1 or col != block[-1].start[1]):
            close_block()
        block.append(token)
    close_block()
    return sorted(found, key=lambda s: s.start)


_WORD = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z][a-z]{2,}(?![A-Za-z0-9_])")


def to_translate(source: str) -> list[Segment]:
    """The segments of ``source`` that a translator translates: every docstring, and every comment
    with an English word in it (a shape comment such as ``# (B, 2C, H, W)`` is copied as it is)."""
    return [s for s in segments(source) or []
            if s.kind == "docstring" or _WORD.search(_CODE_SPAN.sub(" ", s.text))]


def code_tokens(source: str) -> list[tuple[int, str]]:
    """``source``'s tokens without its comments and line breaks inside statements, each docstring
    replaced by one marker: what must be the same in the English and the Chinese cell. A source
    that is not plain Python is compared as it is."""
    parsed = _parse(source)
    if parsed is None:
        return [(-1, source)]
    tokens, tree = parsed
    lines = source.splitlines()
    docs = {}
    for node in _docstring_nodes(tree):
        docs[(node.lineno, _char_col(lines[node.lineno - 1], node.col_offset))] = \
            (node.end_lineno, _char_col(lines[node.end_lineno - 1], node.end_col_offset))
    kept, skip_until = [], None
    for token in tokens:
        if skip_until is not None:
            if token.start < skip_until:
                continue
            skip_until = None
        if token.start in docs:
            kept.append((tokenize.STRING, "<docstring>"))
            skip_until = docs[token.start]
            continue
        if token.type in (tokenize.COMMENT, tokenize.NL):
            continue
        kept.append((token.type, "" if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER) else token.string))
    return kept


def _valid_translation(segment: Segment, zh: str) -> str | None:
    """Why ``zh`` cannot stand in for ``segment`` (None when it can)."""
    if not zh.strip():
        return "it is empty"
    if segment.kind != "docstring":
        lines = zh.split("\n")
        if segment.kind == "trailing comment" and len(lines) > 1:
            return "a comment after code must stay on one line"
        if not all(line.lstrip().startswith("#") for line in lines):
            return "every line of a comment's translation must start with #"
        return None
    try:
        tree = ast.parse(zh)
    except SyntaxError as error:
        return f"it is not a Python string literal ({error.msg})"
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr) \
            or not isinstance(tree.body[0].value, ast.Constant) or not isinstance(tree.body[0].value.value, str):
        return "a docstring's translation must be one string literal, quotes included"
    return None


def translate_code(source: str, translations: dict[str, str]) -> str:
    """``source`` with every comment and docstring whose English text is a key of
    ``translations`` replaced by its value; code, and what has no translation, stays."""
    found = segments(source)
    if not found:
        return source
    out, at = [], 0
    for segment in found:
        zh = translations.get(segment.text)
        if zh is None or _valid_translation(segment, zh) is not None:
            continue
        out += [source[at:segment.start], _reindent(zh, segment.indent)]
        at = segment.end
    out.append(source[at:])
    return "".join(out)


# -- the store -----------------------------------------------------------------------------------

@dataclass
class Store:
    """One notebook's translations: {cell id: entry}. A markdown entry is
    ``{"sha256", "en", "zh"}``; a code entry is ``{"segments": [{"en", "zh"}, ...]}``; either may
    have ``"glossary_exceptions"``: glossary variants or English terms this cell may use anyway."""
    notebook: str                                   # e.g. "notebooks/01_intuition.ipynb"
    cells: dict[str, dict] = field(default_factory=dict)


def read_store(path: Path | str) -> Store:
    """The store at ``path``; ``TranslationError`` naming the file when it cannot be read."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as error:
        raise TranslationError(f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: "
                               f"{error.msg}); a translation's quotes must be escaped as \\\" or written as “” "
                               f"in Chinese") from None
    except OSError as error:
        raise TranslationError(f"{path} cannot be read ({error.strerror})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), dict) \
            or not isinstance(data.get("notebook"), str):
        raise TranslationError(f"{path} must hold a JSON object with \"notebook\" (the English notebook's path) and "
                               f"\"cells\" ({{cell id: entry}})")
    for cell_id, entry in data["cells"].items():
        where = f"{path}, cell {cell_id!r}"
        if not isinstance(entry, dict):
            raise TranslationError(f"{where}: an entry must be a JSON object")
        exceptions = entry.get("glossary_exceptions", [])
        if not isinstance(exceptions, list) or not all(isinstance(e, str) for e in exceptions):
            raise TranslationError(f"{where}: \"glossary_exceptions\" must be a list of strings")
        try:
            if "segments" in entry:
                if not isinstance(entry["segments"], list) or not all(
                        isinstance(s, dict) and _text(s.get("en")) is not None for s in entry["segments"]):
                    raise TranslationError("\"segments\" must be a list of {\"en\": ..., \"zh\": ...}")
                for s in entry["segments"]:
                    _text(s.get("zh"))
            elif not {"sha256", "en"} <= entry.keys():
                raise TranslationError("a markdown entry needs \"sha256\", \"en\" and \"zh\"; "
                                       "a code entry \"segments\"")
            else:
                _text(entry["en"]), _text(entry.get("zh"))
        except TranslationError as error:
            raise TranslationError(f"{where}: {error}") from None
    return Store(data["notebook"], data["cells"])


def store_text(store: Store) -> str:
    """The store as it is written: one key per line, Chinese as it is (not \\u escapes)."""
    return json.dumps({"notebook": store.notebook, "language": LANGUAGE, "cells": store.cells},
                      ensure_ascii=False, indent=1) + "\n"


def write_store(path: Path | str, store: Store) -> Path:
    """Write ``store`` to ``path`` atomically, as ``store_text`` lays it out."""
    return atomic_write(path, store_text(store))


def _markdown_entry(source: str, zh: str | None = None) -> dict:
    return {"sha256": source_hash(source), "en": _stored(source), "zh": _stored(zh)}


# -- the glossary --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    """One row of ``i18n/glossary.zh.tsv``."""
    english: str
    chinese: str
    avoid: tuple[str, ...]   # variants the course's Chinese never uses for this term
    note: str
    source: str

    @property
    def required(self) -> bool:
        """A multi-word or hyphenated term is specific enough that wherever the English uses it,
        the translation must use the glossary's Chinese term."""
        return bool(re.search(r"[ -]", self.english))


GLOSSARY_COLUMNS = ("english", "chinese", "avoid", "note", "source")


def read_glossary(path: Path | str) -> list[Term]:
    """The glossary's rows; ``TranslationError`` naming the line when one is malformed."""
    path = Path(path)
    lines = path.read_text(encoding="utf8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != GLOSSARY_COLUMNS:
        raise TranslationError(f"{path}: the first line must be the header {chr(9).join(GLOSSARY_COLUMNS)!r} "
                               f"(tab-separated)")
    terms, seen = [], {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(GLOSSARY_COLUMNS):
            raise TranslationError(f"{path}, line {n}: {len(cols)} tab-separated columns; expected "
                                   f"{len(GLOSSARY_COLUMNS)} ({', '.join(GLOSSARY_COLUMNS)})")
        english, chinese, avoid, note, source = (c.strip() for c in cols)
        if not english or not chinese:
            raise TranslationError(f"{path}, line {n}: the english and chinese columns must not be empty")
        if english.lower() in seen:
            raise TranslationError(f"{path}, line {n}: {english!r} is already on line {seen[english.lower()]}")
        seen[english.lower()] = n
        variants = tuple(v.strip() for v in avoid.split("|") if v.strip())
        terms.append(Term(english, chinese, variants, note, source))
    for term in terms:   # a variant inside a chosen term would fail every correct use of it
        for other in terms:
            clash = next((v for v in term.avoid if v in other.chinese), None)
            if clash is not None:
                raise TranslationError(f"{path}: {clash!r}, a variant to avoid for {term.english!r}, is part of "
                                       f"{other.chinese!r}, the term for {other.english!r}")
    return terms


# -- what a translation must keep ------------------------------------------------------------------

_FENCED = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$", re.S)
_MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^\s)>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_BARE_URL = re.compile(r"https?://[^\s<>()\[\]\"'`，。；：、）（《》]+")
_HTML_ATTR = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HTML_TAG = re.compile(r"<[^>\n]+>")
_SEPARATOR = ",\u2009\u202f\u00a0"   # thousands separators: comma, thin and no-break spaces
_NUMBER = re.compile(rf"(?<![A-Za-z0-9_.])(?:\d{{1,3}}(?:[{_SEPARATOR}]\d{{3}})+(?!\d)|\d+)(?:\.\d+)?")
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def numbers(text: str) -> set[str]:
    """Every number written with digits in ``text``, thousands separators and leading zeros taken
    off (16,384 and 16384 are one number; 05 and 5 too; 0.50 and 0.5 are not)."""
    found = set()
    for m in _NUMBER.finditer(text.translate(_FULLWIDTH_DIGITS)):
        number = re.sub(f"[{_SEPARATOR}]", "", m.group())
        found.add(re.sub(r"^0+(?=\d)", "", number))
    return found


def link_targets(text: str) -> set[str]:
    """Every link target of a markdown text: links, images, autolinks, bare URLs, HTML href/src,
    reference definitions."""
    found = set()
    for pattern in (_MD_LINK, _AUTOLINK, _HTML_ATTR, _REF_DEF):
        found |= {m.group(1) for m in pattern.finditer(text)}
    found |= {m.group().rstrip(".,;:!?") for m in _BARE_URL.finditer(text)}
    return found


def _spans(pattern: re.Pattern, text: str) -> set[str]:
    return {next(g for g in m.groups()[::-1] if g is not None).strip() for m in pattern.finditer(text)}


def _squash(text: str) -> str:
    return " ".join(text.split())


def quotes(markdown: str) -> list[str]:
    """The text of each blockquote (``>`` lines) of ``markdown``, whitespace squashed."""
    found, block = [], []
    for line in _FENCED.sub("", markdown).split("\n") + [""]:
        stripped = line.lstrip()
        if stripped.startswith(">"):
            block.append(stripped.lstrip(">").strip())
        elif block:
            text = _squash(" ".join(block))
            if text:
                found.append(text)
            block = []
    return found


def faithfulness_problems(english: str, chinese: str) -> list[str]:
    """What of ``english`` its translation ``chinese`` lost: numbers, link targets, code spans,
    formulas, and the English words of each blockquote (the paper's quotes stay in English, with
    the translation beside them)."""
    problems = []
    lost = sorted(numbers(english) - numbers(chinese), key=lambda n: (len(n), n))
    if lost:
        problems.append(f"number{'s' * (len(lost) > 1)} {', '.join(lost)} of the English text "
                        f"{'are' if len(lost) > 1 else 'is'} not in the translation")
    lost = sorted(link_targets(english) - link_targets(chinese))
    if lost:
        problems.append(f"link target{'s' * (len(lost) > 1)} {', '.join(lost)} not in the translation")
    code = _spans(_CODE_SPAN, _FENCED.sub("", english)) - _spans(_CODE_SPAN, _FENCED.sub("", chinese))
    if code:
        problems.append(f"code span{'s' * (len(code) > 1)} {', '.join(f'`{c}`' for c in sorted(code))} not in the "
                        f"translation (code is never translated)")
    math = _spans(_MATH, english) - _spans(_MATH, chinese)
    if math:
        problems.append(f"formula{'s' * (len(math) > 1)} {', '.join(f'${m}$' for m in sorted(math))} not in the "
                        f"translation")
    squashed = _squash(" ".join(line.lstrip().lstrip(">") for line in chinese.split("\n")))
    for quote in quotes(english):
        if _squash(quote) not in squashed:
            problems.append(f"the quote {quote[:60]!r}... is not kept word for word (a quote stays in English, "
                            f"its translation beside it)")
    return problems


def _prose(text: str, keep_english_quotes: bool) -> str:
    """``text`` without code, formulas, link targets, URLs and tags (and, unless
    ``keep_english_quotes``, without blockquote lines that have no Chinese: the paper's words)."""
    text = _FENCED.sub(" ", text)
    text = _CODE_SPAN.sub(" ", text)
    text = _MATH.sub(" ", text)
    text = _MD_LINK.sub(lambda m: m.group().split("](")[0], text)
    text = _BARE_URL.sub(" ", _AUTOLINK.sub(" ", _HTML_TAG.sub(" ", text)))
    if not keep_english_quotes:
        text = "\n".join(line for line in text.split("\n")
                         if not (line.lstrip().startswith(">") and not _CJK.search(line)))
    return text


_CJK_CHAR = r"[\u3400-\u9fff\uf900-\uffef]"   # also full-width punctuation
_SPACED = re.compile(rf"({_CJK_CHAR}) +[A-Za-z0-9X]|[A-Za-z0-9X%] +({_CJK_CHAR})")
_MARKER = re.compile(r"^\s*(?:>\s*)*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+)?")   # a quote, heading or list marker
_PUNCTUATION = "，。：；！？、（）“”‘’《》『』「」【】…—"


def _broken_emphasis(line: str) -> list[str]:
    """The ``*`` and ``**`` runs of ``line`` that CommonMark will not read as emphasis because of
    Chinese punctuation: an opener after text and before punctuation (的**“是什么”**), a closer
    after punctuation and before text (**练习版。**本)."""
    found, open_runs = [], set()
    for m in re.finditer(r"\*+", line):
        before = line[m.start() - 1] if m.start() else " "
        after = line[m.end()] if m.end() < len(line) else " "
        run = len(m.group())
        if run in open_runs:
            if before.isspace():
                continue
            open_runs.discard(run)
            if before in _PUNCTUATION and not (after.isspace() or after in _PUNCTUATION or not after.isalnum()):
                found.append(before + m.group() + after)
        else:
            if after.isspace():
                continue   # a list marker or a lone asterisk
            open_runs.add(run)
            if after in _PUNCTUATION and before.isalnum():
                found.append(before + m.group() + after)
    return found


_HALF_WIDTH = re.compile(r"[\u3400-\u9fff][,;:?!]|[\u3400-\u9fff]\((?!\))")


def style_problems(chinese: str) -> list[str]:
    """Where ``chinese`` breaks d2l-zh's typography (its STYLE_GUIDE.md), which the course follows:
    no space between Chinese and Latin letters, digits, code or formulas; Chinese punctuation
    after Chinese text; and emphasis that Markdown would show as asterisks. Code, formulas, links,
    tags and the paper's English quotes are left out."""
    text = _FENCED.sub(" ", chinese)
    text = _CODE_SPAN.sub("X", text)
    text = _MATH.sub("X", text)
    text = _MD_LINK.sub(lambda m: m.group().split("](")[0].lstrip("!["), text)
    text = _BARE_URL.sub("X", _AUTOLINK.sub("X", _HTML_TAG.sub("", text)))
    lines = [line for line in text.split("\n") if not (line.lstrip().startswith(">") and not _CJK.search(line))]
    problems = []
    for line in lines:
        for where in _broken_emphasis(line):
            problems.append(f"emphasis that Markdown does not render: {where!r} (move the Chinese punctuation "
                            f"outside the ** or *)")
        for m in _SPACED.finditer(_MARKER.sub("", line)):
            problems.append(f"a space between Chinese and Latin text or digits: {m.group()!r} (d2l-zh writes none)")
        for m in _HALF_WIDTH.finditer(line):
            problems.append(f"half-width punctuation after Chinese: {m.group()!r} (use ，；：？！（）)")
    return problems


def _english_term(term: Term) -> re.Pattern:
    words = [re.escape(w) for w in re.split(r"[ -]", term.english)]
    return re.compile(r"(?<![\w-])" + r"[ -]".join(words) + r"(?:s|es)?(?![\w-])", re.I)


def glossary_problems(english: str, chinese: str, glossary: Sequence[Term],
                      exceptions: Iterable[str] = ()) -> list[str]:
    """Where ``chinese`` breaks the glossary: a variant it rules out, or a multi-word English term
    of ``english`` whose Chinese term the translation does not use. ``exceptions`` lists variants
    and English terms allowed in this cell (the store's ``glossary_exceptions``)."""
    exceptions = set(exceptions)
    zh_prose = _prose(chinese, keep_english_quotes=False)
    # a term may sit in a code span (`valid`填充): kept for the term's check, not for the variants'
    zh_squashed = re.sub(r"\s+", "", _prose(_CODE_SPAN.sub(lambda m: m.group(2), chinese), keep_english_quotes=False))
    en_prose = "\n".join(line for line in _prose(english, keep_english_quotes=False).split("\n")
                         if not line.lstrip().startswith(">"))
    problems = []
    for term in glossary:
        for variant in term.avoid:
            if variant not in exceptions and variant in zh_prose:
                problems.append(f"{variant!r}: the glossary rules it out for {term.english!r}; write {term.chinese!r}")
        if term.required and term.english not in exceptions and _english_term(term).search(en_prose) \
                and re.sub(r"\s+", "", term.chinese) not in zh_squashed:
            problems.append(f"the English says {term.english!r}; the translation does not use the glossary's "
                            f"{term.chinese!r}")
    return problems


# -- checking one notebook's store ------------------------------------------------------------------

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


# -- the Chinese notebooks ------------------------------------------------------------------------

def _code_translations(entry: dict | None) -> dict[str, str]:
    return {_text(s["en"]): _text(s["zh"]) for s in (entry or {}).get("segments", []) if _text(s.get("zh"))}


def retarget_generated_cells(nb: NotebookNode, path: str) -> None:
    """The hook for issue #22's generator: point ``nb``'s generated launch cells at ``path`` (the
    notebook's own path in the repository, e.g. ``zh/notebooks/01_intuition.ipynb``). Until
    ``unet_lib.launch`` exists the cells stay as the English notebook has them."""
    try:
        from .launch import retarget_badges
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


# -- the whole edition ------------------------------------------------------------------------------

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
        try:
            store = read_store(store_file)
        except TranslationError as error:
            problems.append(Problem(name, "", "invalid", str(error)))
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


# -- writing ------------------------------------------------------------------------------------------

def _may_replace(path: Path, new_text: str | None, stamp_key: str) -> tuple[bool, str]:
    """Whether the generator may overwrite (or, with ``new_text`` None, remove) ``path``: only a file
    that still holds what it wrote (its stamp matches its content) or the new content already."""
    try:
        nb = nbformat.reads(path.read_text(encoding="utf8"), as_version=4)
    except Exception as error:   # damaged or half-saved: the learner may still want what is in it
        return False, f"it cannot be read as a notebook ({type(error).__name__})"
    if new_text is not None and same_notebook(path.read_text(encoding="utf8"), new_text):
        return True, ""
    stamp = nb.get("metadata", {}).get(stamp_key)
    if not isinstance(stamp, dict) or "sha256" not in stamp:
        return False, "it has no stamp of this generator"
    if stamp_key == STAMP_KEY:
        ours = stamp["sha256"] == _notebook_digest(nb)
    else:
        ours = stamp["sha256"] == content_digest(nb) and not any(c.get("outputs") for c in nb.cells)
    return (True, "") if ours else (False, "it was changed after the generator wrote it (cells or outputs)")


def generate(edition: Edition) -> tuple[dict[Path, str], list[Problem]]:
    """{path: text} of every Chinese notebook and exercise edition for the notebooks that have a
    store, and the problems met (a store that cannot be read is skipped)."""
    files, problems = {}, []
    texts = None
    for path in edition.english():
        name = path.name
        store_file = edition.path(edition.store_of(name))
        if not store_file.is_file():
            continue
        try:
            store = read_store(store_file)
        except TranslationError as error:
            problems.append(Problem(name, "", "invalid", str(error)))
            continue
        if texts is None:
            texts, found = _read_texts(edition)
            problems += found
        english = _read_notebook(path)
        zh = chinese_notebook(english, store, edition.zh_notebook(name), edition.store_of(name))
        files[edition.path(edition.zh_notebook(name))] = render(zh)
        exercises = chinese_exercises(zh, texts, edition.zh_notebook(name), edition.zh_exercises(name))
        files[edition.path(edition.zh_exercises(name))] = render(exercises)
    return files, problems


def _write(edition: Edition, discard_changes: bool) -> int:
    """Write the Chinese edition (``build``); see ``main`` for the exit status."""
    files, problems = generate(edition)
    for p in problems:
        print(f"{'error' if p.kind == 'invalid' else 'warning'}: {p}", file=sys.stderr)
    stale = []   # Chinese files whose store is gone
    for folder in (edition.notebooks, edition.exercises):
        out = edition.path(f"{edition.out}/{folder}")
        stale += [p for p in sorted(out.glob(NOTEBOOK_GLOB)) if p not in files] if out.is_dir() else []
    changed = [p for p, text in files.items()
               if not p.exists() or not same_notebook(p.read_text(encoding="utf8", errors="replace"), text)]
    refused, foreign = {}, {}
    for path in changed + stale:
        if path.exists():
            stamp = STAMP_KEY if path.parent.name == edition.notebooks else EXERCISE_STAMP_KEY
            ok, why = _may_replace(path, files.get(path), stamp)
            if not ok and path in stale and "stamp" in why:   # not (provably) ours: never removed
                foreign[path] = why
            elif not ok:
                refused[path] = why
    if refused and not discard_changes:
        listing = "\n".join(f"  {p}: {why}" for p, why in refused.items())
        print(f"error: writing the Chinese edition would overwrite or remove work that the generator did not "
              f"write:\n{listing}\nNothing was written. To keep it, copy it elsewhere first; to discard it, run "
              f"again with --discard-changes", file=sys.stderr)
        return 3
    for path in changed:
        atomic_write(path, files[path])
        print(f"wrote {path}")
    for path in stale:
        if path in foreign:
            print(f"left alone {path}: {foreign[path]}; it has no translation store in {edition.store}/",
                  file=sys.stderr)
            continue
        path.unlink()
        print(f"removed {path} (its translation store is gone)")
    _, progress = check_edition(edition)
    print(f"Chinese edition: {len(files) // 2} notebooks with a store, {len(changed) + len(stale)} files changed; "
          f"{progress}")
    return 2 if any(p.kind == "invalid" for p in problems) else 0


# -- helping the translators ----------------------------------------------------------------------------

def scaffold(nb: NotebookNode, store: Store, drop_orphans: bool = False) -> tuple[Store, list[str]]:
    """``store`` brought up to the English notebook ``nb``: an entry (``"zh": null``) for every
    cell and comment still to translate, entries of cells whose id changed moved to the new id
    (same English text), entries in the English order, left-over entries kept at the end (or dropped
    with ``drop_orphans``). Translations are never changed. Returns the new store and what changed."""
    wanted = _translatable(nb)
    old = dict(store.cells)
    notes = []
    by_text = {}
    for cell_id, entry in old.items():
        if cell_id not in wanted:
            key = _text(entry["en"]) if "segments" not in entry else \
                tuple(sorted(_text(s["en"]) for s in entry["segments"]))
            by_text.setdefault(key, cell_id)
    cells = {}
    for cell_id, cell in wanted.items():
        entry = old.get(cell_id)
        if cell.cell_type == "markdown":
            if entry is None and cell.source in by_text:
                moved = by_text.pop(cell.source)
                entry = old.pop(moved)
                notes.append(f"moved {moved} -> {cell_id} (same English text)")
            if entry is None or "segments" in entry:
                entry = _markdown_entry(cell.source)
                notes.append(f"added {cell_id} (markdown)")
            cells[cell_id] = entry
            continue
        found = [s.text for s in to_translate(cell.source)]
        if entry is None and tuple(sorted(found)) in by_text:
            moved = by_text.pop(tuple(sorted(found)))
            entry = old.pop(moved)
            notes.append(f"moved {moved} -> {cell_id} (same comments)")
        entry = copy.deepcopy(entry) if entry is not None and "segments" in entry else {"segments": []}
        have = {_text(s["en"]) for s in entry["segments"]}
        new = [{"en": _stored(t), "zh": None} for t in dict.fromkeys(found) if t not in have]
        if new:
            notes.append(f"added {len(new)} comment{'s' * (len(new) > 1)} or docstring{'s' * (len(new) > 1)} "
                         f"to {cell_id}")
        order = {t: i for i, t in enumerate(found)}
        entry["segments"] = sorted(entry["segments"] + new, key=lambda s: order.get(_text(s["en"]), len(order)))
        if drop_orphans:
            kept = [s for s in entry["segments"] if _text(s["en"]) in order]
            if len(kept) < len(entry["segments"]):
                notes.append(f"dropped {len(entry['segments']) - len(kept)} left-over comment(s) of {cell_id}")
            entry["segments"] = kept
        cells[cell_id] = entry
    for cell_id, entry in old.items():
        if cell_id not in cells:
            if drop_orphans:
                notes.append(f"dropped {cell_id} (no such English cell to translate)")
            else:
                cells[cell_id] = entry
                notes.append(f"kept left-over {cell_id} (`--drop-orphans` removes it)")
    return Store(store.notebook, cells), notes


def accept(nb: NotebookNode, store: Store, cell_ids: Sequence[str]) -> Store:
    """``store`` with the translations of ``cell_ids`` declared current: each markdown entry takes
    the English cell's text and hash now (after the translator updated ``zh``); each code entry
    drops the comments the English cell no longer has."""
    cells = {c.id: c for c in nb.cells if "id" in c}
    store = Store(store.notebook, copy.deepcopy(store.cells))
    for cell_id in cell_ids:
        cell, entry = cells.get(cell_id), store.cells.get(cell_id)
        if cell is None or entry is None:
            raise TranslationError(f"cell {cell_id!r}: {'no such English cell' if cell is None else 'no translation'} "
                                   f"in {store.notebook}")
        if cell.cell_type == "markdown":
            if "segments" in entry or not (_text(entry.get("zh")) or "").strip():
                raise TranslationError(f"cell {cell_id!r}: write its translation (\"zh\") before accepting it")
            store.cells[cell_id] = {**entry, **_markdown_entry(cell.source, _text(entry["zh"]))}
        else:
            english = {s.text for s in to_translate(cell.source)}
            entry["segments"] = [s for s in entry.get("segments", []) if _text(s["en"]) in english]
    return store


def exercise_texts_store(existing: dict | None) -> dict:
    """The exercise-edition texts file brought up to ``unet_lib.exercises``: its English texts
    now, the Chinese kept (null where none yet)."""
    existing = existing or {}
    return {key: {"en": _stored(english), "zh": (existing.get(key) or {}).get("zh")}
            for key, english in exercise_texts().items()}


# -- the checks' message catalogue ----------------------------------------------------------------------

MESSAGE_CALLS = {"fail", "passed", "message", "T"}


def _templates_of(node: ast.expr, assigned: dict[str, list[ast.expr]], found: set[str]) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        found.add(node.value)
    elif isinstance(node, ast.IfExp):
        _templates_of(node.body, assigned, found)
        _templates_of(node.orelse, assigned, found)
    elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "T" and node.args:
        _templates_of(node.args[0], {}, found)
    elif isinstance(node, ast.Name):
        for value in assigned.get(node.id, []):
            _templates_of(value, {}, found)
    elif isinstance(node, ast.Starred):
        _templates_of(node.value, assigned, found)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for element in node.elts:
            _templates_of(element, assigned, found)


def check_templates(paths: Iterable[Path | str]) -> dict[str, list[str]]:
    """{message template: where it is used ("file:line")} for every template in the check modules
    ``paths``: the string literals given to ``fail``, ``passed``, ``message`` and ``T`` (directly,
    as a choice ``a if c else b``, or through a name the function binds only to templates)."""
    found: dict[str, list[str]] = {}
    for path in map(Path, paths):
        tree = ast.parse(path.read_text(encoding="utf8"))
        scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
        for scope in scopes + [tree]:
            assigned: dict[str, list[ast.expr]] = {}
            for node in ast.walk(scope):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, []).append(node.value)
            for node in ast.walk(scope):
                name = getattr(node.func, "id", getattr(node.func, "attr", "")) if isinstance(node, ast.Call) else ""
                if name in MESSAGE_CALLS:
                    templates: set[str] = set()
                    for arg in node.args:
                        _templates_of(arg, assigned, templates)
                    for template in templates:
                        where = f"{path.name}:{node.lineno}"
                        if where not in found.setdefault(template, []):
                            found[template].append(where)
    return found


def _fields(template: str) -> list[str] | None:
    """The ``{fields}`` of a template, sorted (None when its braces do not parse)."""
    try:
        return sorted(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)
    except ValueError:
        return None


def catalogue_problems(templates: dict[str, list[str]], catalogue: dict[str, str],
                       required: Iterable[str] | None = None) -> list[str]:
    """What is wrong with the Chinese ``catalogue`` ({English template: Chinese template}) for the
    ``templates`` the code uses: a template without a translation (only those ``required`` when
    given), an entry that no code uses, an empty translation, a translation whose {fields} differ."""
    problems = []
    required = set(templates) if required is None else set(required)
    for template in sorted(required):
        if template not in catalogue:
            problems.append(f"no translation of {template!r} (used at {', '.join(templates.get(template, []))})")
    for template, chinese in sorted(catalogue.items()):
        if template not in templates:
            problems.append(f"{template!r} is in the catalogue but no check uses it")
            continue
        if not isinstance(chinese, str) or not chinese.strip():
            problems.append(f"{template!r} has an empty translation")
            continue
        if _fields(template) != _fields(chinese):
            problems.append(f"{template!r}: the translation's fields {_fields(chinese)} differ from the English "
                            f"{_fields(template)}")
    return problems


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


# -- the command line ----------------------------------------------------------------------------------

def _name(edition: Edition, given: str) -> str:
    """The English notebook's file name for ``given`` ("01", "01_intuition" or the file name)."""
    matches = [p.name for p in edition.english()
               if p.stem == given or p.name == given or p.name.startswith(f"{given}_")]
    if len(matches) != 1:
        raise TranslationError(f"{given!r} names {'no' if not matches else 'more than one'} notebook in "
                               f"{edition.notebooks}/; give its number (01) or name (01_intuition)")
    return matches[0]


def _print_problems(problems: Sequence[Problem], limit: int = 200) -> None:
    for p in problems[:limit]:
        print(p, file=sys.stderr)
    if len(problems) > limit:
        print(f"... and {len(problems) - limit} more", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unet_lib.translation [build|check|progress|scaffold|accept|catalogue]``.
    Exit status: 0 done, 1 problems found (check, catalogue), 2 an error, 3 refused to overwrite."""
    parser = argparse.ArgumentParser(prog="python -m unet_lib.translation", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (default: .)")
    commands = parser.add_subparsers(dest="command")
    build = commands.add_parser("build", help="write zh/notebooks and zh/exercises (the default command)")
    build.add_argument("--discard-changes", action="store_true",
                       help="overwrite (or remove) Chinese notebooks that were changed after the generator wrote them")
    commands.add_parser("check", help="every check; exit 1 on a problem")
    commands.add_parser("progress", help="translated cells per notebook")
    scaffold_cmd = commands.add_parser("scaffold", help="create or update stores: an entry for every cell to translate")
    scaffold_cmd.add_argument("notebooks", nargs="+", help="01, 01_intuition, ... or 'all'")
    scaffold_cmd.add_argument("--drop-orphans", action="store_true", help="remove translations of cells that are gone")
    accept_cmd = commands.add_parser("accept", help="declare updated translations current")
    accept_cmd.add_argument("notebook")
    accept_cmd.add_argument("cells", nargs="+", help="cell ids")
    catalogue_cmd = commands.add_parser("catalogue", help="the checks' Chinese messages: what is missing or unused")
    catalogue_cmd.add_argument("--add-missing", action="store_true",
                               help="add each missing template with an empty translation to fill in")
    catalogue_cmd.add_argument("notebooks", nargs="*",
                               help="with --add-missing: only the templates of these notebooks' check modules "
                                    "(01, 02, ...) and of _core")
    args = parser.parse_args(argv)
    edition = Edition(args.root)
    try:
        if args.command in (None, "build"):
            return _write(edition, getattr(args, "discard_changes", False))
        if args.command == "check":
            problems, progress = check_edition(edition)
            _print_problems(problems)
            print(f"Chinese edition: {progress}; {len(problems)} problem{'s' * (len(problems) != 1)}")
            return 1 if problems else 0
        if args.command == "progress":
            for path in edition.english():
                store_file = edition.path(edition.store_of(path.name))
                store = read_store(store_file) if store_file.is_file() else Store(path.name)
                _, progress = check_store(_read_notebook(path), store, path.name)
                print(f"{path.stem}: {'' if store_file.is_file() else '(no store) '}markdown "
                      f"{progress.markdown_done}/{progress.markdown_total}, "
                      f"code {progress.code_done}/{progress.code_total}")
            print(f"Chinese edition: {summary(edition)}")
            return 0
        if args.command == "scaffold":
            given = [p.name for p in edition.english()] if args.notebooks == ["all"] else \
                [_name(edition, n) for n in args.notebooks]
            for name in given:
                store_file = edition.path(edition.store_of(name))
                store = read_store(store_file) if store_file.is_file() else Store(f"{edition.notebooks}/{name}")
                new, notes = scaffold(_read_notebook(edition.path(f"{edition.notebooks}/{name}")), store,
                                      args.drop_orphans)
                if not store_file.is_file() or store_text(new) != store_text(store):
                    write_store(store_file, new)
                print(f"{edition.store_of(name)}: " + ("; ".join(notes) if notes else "up to date"))
            texts_file = edition.path(edition.texts_path())
            existing = json.loads(texts_file.read_text(encoding="utf8")) if texts_file.is_file() else None
            texts = exercise_texts_store(existing)
            if existing != texts:
                atomic_write(texts_file, json.dumps(texts, ensure_ascii=False, indent=1) + "\n")
                print(f"{edition.texts_path()}: updated to unet_lib.exercises' English texts")
            return 0
        if args.command == "accept":
            name = _name(edition, args.notebook)
            store_file = edition.path(edition.store_of(name))
            english = _read_notebook(edition.path(f"{edition.notebooks}/{name}"))
            store = accept(english, read_store(store_file), args.cells)
            write_store(store_file, store)
            print(f"{edition.store_of(name)}: accepted {', '.join(args.cells)}")
            return 0
        if args.command == "catalogue":
            checks = edition.path("unet_lib/checks")
            locale = checks / "locale" / f"{LANGUAGE}.json"
            templates = check_templates(sorted(checks.glob("*.py")))
            mine = templates if not args.notebooks else check_templates(
                [checks / "_core.py"] + [p for n in args.notebooks for p in sorted(checks.glob(f"nb{n[:2]}_*.py"))])
            catalogue = json.loads(locale.read_text(encoding="utf8")) if locale.is_file() else {}
            if args.add_missing:
                catalogue.update({t: "" for t in mine if t not in catalogue})
                atomic_write(locale, json.dumps(catalogue, ensure_ascii=False, indent=1) + "\n")
                print(f"{locale}: {len(catalogue)} entries; fill in the empty ones")
            problems = catalogue_problems(templates, catalogue, required=mine)
            for line in problems:
                print(line, file=sys.stderr)
            done = sum(1 for t in mine if isinstance(catalogue.get(t), str) and catalogue[t].strip())
            print(f"checks' messages: {done}/{len(mine)} translated; {len(problems)} problems")
            return 1 if problems else 0
    except TranslationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
