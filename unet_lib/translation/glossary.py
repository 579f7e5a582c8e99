"""The glossary (``i18n/glossary.zh.tsv``): its terms read, and a translation checked against them."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .store import TranslationError
from .faithfulness import _CODE_SPAN, _prose


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
