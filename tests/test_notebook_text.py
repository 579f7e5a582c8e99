"""Tests of the notebooks' text: formulas typeset in LaTeX, not written in Unicode math.

JupyterLab renders ``$...$`` and ``$$...$$`` with MathJax (and so does the course website); a
formula typed with Unicode symbols (``σ``, ``×``, ``≤``, ``²``) reads worse, cannot be searched as
the paper writes it, and drifts from the LaTeX next to it. Quotes of the paper (``>`` lines) and
code (``code spans`` and fenced blocks) keep their own characters, and so do sizes written as a
name rather than a formula (``a 3×3 convolution``, ``a 572×572 tile``: digits joined by ``×``) and
factors in words (``4× fewer``).
"""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# operators, relations, Greek letters, super- and subscripts, floor and ceiling
UNICODE_MATH = re.compile("[×÷−±≤≥≈≠∑∏√∞∈∉⊂∩∪∝⋅²³¹⁰⁴⁵⁶⁷⁸⁹⁻₀₁₂₃₄₅₆₇₈₉"
                          "αβγδεζηθικλμνξπρσςτυφχψωΓΔΘΛΞΠΣΦΨΩ⌈⌉⌊⌋]")
_FENCED = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_HTML_TAG = re.compile(r"<[^>\n]+>")
_SIZE = re.compile(r"(?<=\d)×(?=\d)|(?<=\d)×(?!\s*\d)")   # 3×3, 8×17×17: a size; 4× faster: a factor


def prose(markdown: str) -> list[str]:
    """The lines of ``markdown`` that are our own prose: no quotes, code, math or tags."""
    text = _FENCED.sub("", markdown)
    text = _MATH.sub(" ", text)
    text = _CODE_SPAN.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _SIZE.sub("x", text)
    return [line for line in text.splitlines() if not line.lstrip().startswith(">")]


def test_prose_leaves_out_quotes_code_and_math():
    markdown = ("A $3 \\times 3$ filter, a 3×3 one and `x × y`.\n> the paper's σ = 5\n```\nσ = 5\n```\n"
                "$$\\sigma$$ and 2 × 92 + 1")
    assert [m.group() for line in prose(markdown) for m in UNICODE_MATH.finditer(line)] == ["×"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_formulas_are_latex_not_unicode_math(path):
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for line in prose(cell.source):
            for m in UNICODE_MATH.finditer(line):
                start = max(0, m.start() - 30)
                found.append(f"cell {i}: {m.group()!r} in ...{line[start:m.end() + 30]}...")
    assert not found, (f"{path.name}: write formulas as LaTeX ($\\sigma$, $3 \\times 3$, $\\le$, $x^2$):\n"
                       + "\n".join(found[:40]) + (f"\n... and {len(found) - 40} more" if len(found) > 40 else ""))
