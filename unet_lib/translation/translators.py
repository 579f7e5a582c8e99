"""Helping the translators: a store brought up to its notebook (``scaffold``), updated translations ``accept``ed."""

import copy
from collections.abc import Sequence

from nbformat import NotebookNode

from .store import Store, TranslationError, _markdown_entry, _stored, _text
from .code_cells import to_translate
from .cell_checks import _translatable
from .notebooks import exercise_texts


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
