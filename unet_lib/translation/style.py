"""d2l-zh's typography: no space between Chinese and Latin text, Chinese punctuation, emphasis that renders."""

import re

from .faithfulness import _AUTOLINK, _BARE_URL, _CJK, _CODE_SPAN, _FENCED, _HTML_TAG, _MATH, _MD_LINK


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


# a shape such as (B, C, H, W) or (H_out, W_out) keeps its English punctuation (i18n/README.md):
# Latin items separated by commas, so only a bracket that holds such a list is left alone
_SHAPE = r"\(\s*[\w*+\-/. ]+(?:,\s*[\w*+\-/. ]+)+\)"
_HALF_WIDTH = re.compile(rf"[\u3400-\u9fff][,;:?!]|[\u3400-\u9fff]\((?!\))(?!{_SHAPE[2:]})")


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
