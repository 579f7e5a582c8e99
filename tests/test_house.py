"""Tests of the house itself (issue #20): every module of unet_lib says what it holds in one
sentence, no module imports one that imports it, no body is too long to read, no module too long
to find one's way in. Static: the files are parsed with ``ast``, nothing is imported or run, so the
whole file takes a fraction of a second.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "unet_lib"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_BODY = 100        # lines of a function's or class's body, its docstring not counted
MAX_MODULE = 600      # lines of a module

# Modules allowed to be longer than MAX_MODULE, each with its reason. Empty today.
LONG_MODULES: dict[str, str] = {}

# Modules whose docstring's first line is not one sentence yet, each with its reason. An entry
# that is no longer needed fails the test, so that the list only shrinks.
FIRST_LINE_PENDING: dict[str, str] = {}   # module: why its first line is not one sentence yet

# Abbreviations whose full stop ends no sentence.
_ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|et al|Fig|Figs|Sec|Eq|Eqs|vs|cf|approx)\.$")
_SENTENCE_END = re.compile(r"[.?!](?=\s+[A-Z(`\"'])")


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


_TREES = {path: ast.parse(path.read_text(encoding="utf8"), filename=str(path)) for path in MODULES}


def one_sentence_problem(docstring: str | None) -> str | None:
    """Why the first line of ``docstring`` is not one whole sentence, or None when it is."""
    if not docstring or not docstring.strip():
        return "no docstring"
    first = docstring.strip().splitlines()[0].strip()
    if not first.endswith((".", "?", "!")) or _ABBREVIATIONS.search(first):
        return f"its first line does not end a sentence: {first!r}"
    for match in _SENTENCE_END.finditer(first[:-1]):
        if not _ABBREVIATIONS.search(first[:match.end()]):
            return f"its first line holds more than one sentence: {first!r}"
    return None


@pytest.mark.parametrize("docstring, problem", [
    ("The U-Net of Ronneberger et al. (2015), Fig. 1, and its size arithmetic.", None),
    ("Pictures, e.g. a U; see Sec. 3.\n\nMore text. And more.", None),
    ("How good is a segmentation? Pixel-level metrics.", "more than one sentence"),
    ("Pictures for the notebooks. Functions return figures.", "more than one sentence"),
    ("Checkpoints: a model saved with the arguments that rebuild it, its training\nstate.", "does not end"),
    ("Figures, as in Fig.", "does not end"),
    ("", "no docstring"),
    (None, "no docstring"),
])
def test_the_sentence_rule_itself(docstring, problem):
    found = one_sentence_problem(docstring)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_every_module_says_what_it_holds_in_one_sentence(path):
    problem = one_sentence_problem(ast.get_docstring(_TREES[path], clean=False))
    if _name(path) in FIRST_LINE_PENDING:
        assert problem, f"{_name(path)} is fine now: remove it from FIRST_LINE_PENDING"
        pytest.skip(FIRST_LINE_PENDING[_name(path)])
    assert problem is None, f"{_name(path)}: {problem}"


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    """Lines from the first statement after the docstring to the end of the last one."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def test_no_function_or_class_body_is_over_100_lines():
    long = [f"{_name(path)}:{node.lineno} {node.name} ({_body_lines(node)} lines)"
            for path, tree in _TREES.items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and _body_lines(node) > MAX_BODY]
    assert not long, f"bodies over {MAX_BODY} lines; split them into named helpers: {long}"


def test_no_module_is_over_600_lines_unless_listed_with_a_reason():
    long = {_name(path): len(path.read_text(encoding="utf8").splitlines()) for path in MODULES}
    over = {name: n for name, n in long.items() if n > MAX_MODULE and name not in LONG_MODULES}
    assert not over, f"modules over {MAX_MODULE} lines: {over}; split them by topic (or list one with its reason)"
    assert all(long.get(name, 0) > MAX_MODULE for name in LONG_MODULES), "a listed module is short now: unlist it"


def imports(path: Path, tree: ast.Module, modules: set[str]) -> set[str]:
    """The unet_lib modules that ``path`` imports anywhere in it (also inside functions): for
    ``from X import y`` the module X.y when there is one, else X."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found |= {f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                      for alias in node.names}
    return {m for m in found if m in modules and m != here}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph`` ({module: modules it imports}): one path per circle found
    by a depth-first search, each starting and ending at the same module."""
    found, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "open":
                found.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_the_cycle_finder_itself():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    tree = ast.parse("from . import blocks\nfrom ..model import UNet\nfrom .x import y\nimport unet_lib.blocks")
    modules = {"unet_lib.viz", "unet_lib.viz.blocks", "unet_lib.model", "unet_lib.viz.x", "unet_lib.blocks"}
    assert imports(PACKAGE / "viz" / "style.py", tree, modules) == {
        "unet_lib.viz.blocks", "unet_lib.model", "unet_lib.viz.x", "unet_lib.blocks"}


def test_no_module_imports_one_that_imports_it():
    modules = {_module(path) for path in MODULES}
    graph = {_module(path): imports(path, tree, modules) for path, tree in _TREES.items()}
    assert sum(map(len, graph.values())) > len(graph), "the import graph came out (almost) empty: is it read?"
    assert not cycles(graph), "import circles: " + "; ".join(" -> ".join(c) for c in cycles(graph))
