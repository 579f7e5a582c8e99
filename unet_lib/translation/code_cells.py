"""Code cells in pieces: the comments and docstrings a translation replaces, and the code it must keep."""

import ast
import io
import re
import tokenize
from dataclasses import dataclass

from .faithfulness import _CODE_SPAN


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
