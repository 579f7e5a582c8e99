"""The checks' message catalogue: the English templates of ``unet_lib.checks`` and their Chinese translations."""

import ast
import string
from collections.abc import Iterable
from pathlib import Path


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
