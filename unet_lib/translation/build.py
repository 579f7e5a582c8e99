"""Writing the Chinese edition: every generated file, never over work that the generator did not write."""

import sys
from pathlib import Path

import nbformat

from ..atomic import atomic_write
from ..exercises import NOTEBOOK_GLOB, content_digest, render, same_notebook
from ..exercises import STAMP_KEY as EXERCISE_STAMP_KEY
from .cell_checks import Problem
from .notebooks import STAMP_KEY, _notebook_digest, chinese_exercises, chinese_notebook
from .edition import Edition, _read_notebook, _read_store, _read_texts, check_edition


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
        store, unreadable = _read_store(edition, name)
        problems += unreadable
        if store is None:
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
