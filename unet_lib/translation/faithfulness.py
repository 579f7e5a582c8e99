"""Faithfulness: every number, link target, code span, formula and paper quote of the English text kept."""

import re


_FENCED = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$", re.S)
_MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^\s)>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_BARE_URL = re.compile(r"https?://[^\s<>()\[\]\"'`，。；：、）（《》]+")
_HTML_ATTR = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HTML_TAG = re.compile(r"</?[A-Za-z][^>\n]*>")   # a tag starts with a letter: "<= t" is no tag
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
