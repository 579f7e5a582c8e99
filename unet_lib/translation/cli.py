"""The command line ``python -m unet_lib.translation [build|check|progress|scaffold|accept|catalogue]``."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_write
from .store import LANGUAGE, Store, TranslationError, read_store, store_text, write_store
from .cell_checks import Problem, check_store
from .edition import Edition, _read_notebook, check_edition, summary
from .build import _write
from .translators import accept, exercise_texts_store, scaffold
from .catalogue import catalogue_problems, check_templates


_DESCRIPTION = ("The Chinese edition (中文版): zh/notebooks and zh/exercises generated from the English "
                "notebooks and the translation stores, and the checks that keep them in step.")


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
    args = _parser().parse_args(argv)
    edition = Edition(args.root)
    commands = {None: _build, "build": _build, "check": _check, "progress": _progress, "scaffold": _scaffold,
                "accept": _accept, "catalogue": _catalogue}
    try:
        return commands[args.command](edition, args)
    except TranslationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unet_lib.translation", description=_DESCRIPTION)
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
    return parser


def _build(edition: Edition, args: argparse.Namespace) -> int:
    return _write(edition, getattr(args, "discard_changes", False))


def _check(edition: Edition, args: argparse.Namespace) -> int:
    problems, progress = check_edition(edition)
    _print_problems(problems)
    print(f"Chinese edition: {progress}; {len(problems)} problem{'s' * (len(problems) != 1)}")
    return 1 if problems else 0


def _progress(edition: Edition, args: argparse.Namespace) -> int:
    for path in edition.english():
        store_file = edition.path(edition.store_of(path.name))
        store = read_store(store_file) if store_file.is_file() else Store(path.name)
        _, progress = check_store(_read_notebook(path), store, path.name)
        print(f"{path.stem}: {'' if store_file.is_file() else '(no store) '}markdown "
              f"{progress.markdown_done}/{progress.markdown_total}, "
              f"code {progress.code_done}/{progress.code_total}")
    print(f"Chinese edition: {summary(edition)}")
    return 0


def _scaffold(edition: Edition, args: argparse.Namespace) -> int:
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


def _accept(edition: Edition, args: argparse.Namespace) -> int:
    name = _name(edition, args.notebook)
    store_file = edition.path(edition.store_of(name))
    english = _read_notebook(edition.path(f"{edition.notebooks}/{name}"))
    store = accept(english, read_store(store_file), args.cells)
    write_store(store_file, store)
    print(f"{edition.store_of(name)}: accepted {', '.join(args.cells)}")
    return 0


def _catalogue(edition: Edition, args: argparse.Namespace) -> int:
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
