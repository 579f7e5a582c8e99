"""The translation store: one JSON file per notebook of English texts, their hashes and their translations."""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write


LANGUAGE = "zh"
GENERATED_TAG = "generated"            # issue #22's launch cells: their generator writes them, not the store
_HASH_DIGITS = 16


class TranslationError(ValueError):
    """A store, glossary or notebook cannot be used; the message names the file and what is wrong."""



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
