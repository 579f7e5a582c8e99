"""Tests for unet_lib.translation (the Chinese edition, issue #23): comments and docstrings of code
cells, faithfulness, the glossary, the store's checks (stale, missing, orphan), the generator and
its refusal to overwrite a learner's work, each both ways on small hand-made notebooks in tmp
folders; then the course's own glossary and Chinese edition (cheap: nothing is executed).

The course's Chinese edition is checked notebook by notebook: a notebook with a store
(``i18n/zh/NN_*.json``) must be complete and in step; one without a store is skipped with its
progress until ``EDITION_COMPLETE`` is set, after which a notebook without its translation fails.
"""

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from unet_lib import translation
from unet_lib.exercises import ANSWER_TAG, EXERCISE_TAG, SOLUTION_TAG
from unet_lib.translation import (
    LANGUAGE_CELL_ID,
    STAMP_KEY,
    Edition,
    Store,
    TranslationError,
    accept,
    check_edition,
    check_store,
    chinese_notebook,
    code_tokens,
    faithfulness_problems,
    glossary_problems,
    link_targets,
    main,
    numbers,
    quotes,
    read_glossary,
    read_store,
    scaffold,
    segments,
    store_text,
    to_translate,
    translate_code,
)

ROOT = Path(__file__).resolve().parents[1]
COURSE = Edition(ROOT)
GLOSSARY = read_glossary(ROOT / COURSE.glossary)
# Set to True when all twelve notebooks are translated: from then on a notebook without its store fails.
EDITION_COMPLETE = True


# -- comments and docstrings of code cells ---------------------------------------------------------

CODE = '''import torch   # the tensor library

# a block of two
# comment lines
def crop(x, size):
    """Crop x around the centre.

    Returns the middle part."""
    s = "# not a comment"   # noqa: F841
    return x[size:]          # (B, C, H, W) -> (B, C, h, w)
'''


def test_segments_are_comment_blocks_trailing_comments_and_docstrings():
    found = [(s.kind, s.text, s.indent) for s in segments(CODE)]
    assert found == [
        ("trailing comment", "# the tensor library", ""),
        ("comment", "# a block of two\n# comment lines", ""),
        ("docstring", '"""Crop x around the centre.\n\nReturns the middle part."""', "    "),
        ("trailing comment", "# (B, C, H, W) -> (B, C, h, w)", ""),   # the pragma and the string are not comments
    ]
    # a shape comment has no English word to translate: it is copied as it is
    assert [s.text for s in to_translate(CODE)][-1] == '"""Crop x around the centre.\n\nReturns the middle part."""'


def test_translate_code_replaces_only_comments_and_docstrings():
    zh = translate_code(CODE, {
        "# the tensor library": "# 张量库",
        "# a block of two\n# comment lines": "# 三行的\n# 一段\n# 注释",
        '"""Crop x around the centre.\n\nReturns the middle part."""': '"""以中心为准裁剪 x。\n\n返回中间部分。"""',
    })
    assert zh == '''import torch   # 张量库

# 三行的
# 一段
# 注释
def crop(x, size):
    """以中心为准裁剪 x。

    返回中间部分。"""
    s = "# not a comment"   # noqa: F841
    return x[size:]          # (B, C, H, W) -> (B, C, h, w)
'''
    assert code_tokens(zh) == code_tokens(CODE)
    assert translate_code(CODE, {}) == CODE


@pytest.mark.parametrize("changed", [
    CODE.replace("x[size:]", "x[:size]"),                      # the code
    CODE.replace('"# not a comment"', '"# 不是注释"'),           # a string that is not a docstring
    CODE.replace("import torch", "import numpy"),
])
def test_code_tokens_see_a_change_of_code(changed):
    assert code_tokens(changed) != code_tokens(CODE)


def test_code_tokens_ignore_comments_docstrings_and_their_layout():
    moved = CODE.replace("import torch   # the tensor library", "# 张量库\nimport torch")
    assert code_tokens(moved) == code_tokens(CODE)


@pytest.mark.parametrize("english, chinese, why", [
    ("# a block of two\n# comment lines", "# 两行\nimport os", "every line of a comment's translation must start with #"),
    ("# the tensor library", "# 张量\n# 库", "a comment after code must stay on one line"),
    ('"""Crop x around the centre.\n\nReturns the middle part."""', '"""裁剪""" + str(1)', "one string literal"),
    ('"""Crop x around the centre.\n\nReturns the middle part."""', '"""裁剪', "not a Python string literal"),
])
def test_a_translation_that_would_change_the_code_is_refused(english, chinese, why):
    assert translate_code(CODE, {english: chinese}) == CODE   # not applied
    nb = _notebook(_cell(new_code_cell, CODE, "cell-0"))
    store = scaffold(nb, Store("notebooks/01_toy.ipynb"))[0]
    for s in store.cells["cell-0"]["segments"]:
        s["zh"] = chinese if s["en"] == english or s["en"] == english.split("\n") else "# 译"
    problems, _ = check_store(nb, store, "01_toy.ipynb")
    assert [p.kind for p in problems if why in p.message] == ["invalid"]


def test_a_cell_that_is_not_python_is_copied_as_it_is():
    magic = "%timeit x = 1   # a comment\n!ls"
    assert segments(magic) is None and to_translate(magic) == []
    assert translate_code(magic, {"# a comment": "# 注释"}) == magic


# -- faithfulness -----------------------------------------------------------------------------------

def test_numbers_are_normalised_but_not_rounded():
    text = "16,384 pixels; 05; 0.50 and 0.5; arXiv 1505.04597; 3×3; F1, Conv2d; 第２节; 共16384个"
    assert numbers(text) == {"16384", "5", "0.50", "0.5", "1505.04597", "3", "2"}


def test_link_targets_of_every_kind():
    text = ('[a](https://arxiv.org/abs/1505.04597) ![b](fig.png "t") <https://x.org/y> see https://a.b/c. '
            '<a href="05_toy.ipynb">x</a>\n[ref]: https://ref.org\n（https://d2l.ai）')
    assert link_targets(text) == {"https://arxiv.org/abs/1505.04597", "fig.png", "https://x.org/y", "https://a.b/c",
                                  "05_toy.ipynb", "https://ref.org", "https://d2l.ai"}


ENGLISH = ('## 3. Pooling\n\nOne max-pooling keeps 41% of the 16,384 pixels '
           '([paper](https://arxiv.org/abs/1505.04597), `F.max_pool2d`, $2 \\times 2$).\n\n'
           '> "In order to localize, high resolution features\n> are combined." (Sec. 1)')
CHINESE = ('## 3. 池化\n\n一次最大池化保留了16384个像素中的41%（[论文](https://arxiv.org/abs/1505.04597)，'
           '`F.max_pool2d`，$2 \\times 2$）。\n\n'
           '> "In order to localize, high resolution features are combined." (Sec. 1)\n>\n'
           '> “为了定位，……”（第 1 节）')


def test_a_faithful_translation_passes():
    assert quotes(ENGLISH) == ['"In order to localize, high resolution features are combined." (Sec. 1)']
    assert faithfulness_problems(ENGLISH, CHINESE) == []


@pytest.mark.parametrize("chinese, message", [
    (CHINESE.replace("41%", "14%"), "number 41 of the English text is not in the translation"),
    (CHINESE.replace("16384", "16,348"), "number 16384 of the English text"),
    (CHINESE.replace("## 3.", "## 三、"), "number 3 of the English text"),
    (CHINESE.replace("(https://arxiv.org/abs/1505.04597)", "(https://arxiv.org/abs/1505.04598)"),
     "link target https://arxiv.org/abs/1505.04597 not in the translation"),
    (CHINESE.replace("`F.max_pool2d`", "最大池化函数"), "code span `F.max_pool2d` not in the translation"),
    (CHINESE.replace("$2 \\times 2$", "2×2"), "formula $2 \\times 2$ not in the translation"),
    (CHINESE.replace("high resolution features are combined", "高分辨率特征被合并"), "is not kept word for word"),
])
def test_a_translation_that_loses_something_fails(chinese, message):
    problems = faithfulness_problems(ENGLISH, chinese)
    assert any(message in p for p in problems), problems


# -- the glossary -----------------------------------------------------------------------------------

@pytest.mark.parametrize("chinese, variant, term", [
    ("每个渠道一张特征图", "渠道", "channel"),
    ("一个合并层把分辨率减半", "合并层", "pooling layer"),
    ("用反卷积把特征图放大", "反卷积", "transposed convolution"),
    ("最大汇聚保留了轮廓", "汇聚", "pooling"),
    ("批量归一化让训练更快", "批量归一化", "batch normalization"),
])
def test_the_glossary_rules_out_its_variants(chinese, variant, term):
    problems = glossary_problems("", chinese, GLOSSARY)
    assert any(p.startswith(f"{variant!r}: the glossary rules it out for {term!r}") for p in problems), problems
    assert glossary_problems("", chinese, GLOSSARY, exceptions=[variant]) == [] or variant == "汇聚"


def test_the_glossary_passes_its_own_terms_and_ignores_code_and_quotes():
    english = "Each skip connection copies a feature map; `nn.ConvTranspose2d` is the transposed convolution."
    chinese = ("每个跳跃连接复制一张特征图；`nn.ConvTranspose2d`（有人叫它“反卷积”的代码见 `deconv`）是转置卷积。"
               .replace("（有人叫它“反卷积”的代码见 `deconv`）", "（`反卷积`）"))
    assert glossary_problems(english, chinese, GLOSSARY) == []
    quote = '> "the skip connections of the expansive path" (Sec. 2)'   # the paper's words, kept in English
    assert glossary_problems(quote, quote + "\n>\n> “扩展路径上的……”（第 2 节）", GLOSSARY) == []


def test_a_multiword_term_must_use_the_glossarys_chinese():
    english = "The skip connections carry detail from the contracting path."
    problems = glossary_problems(english, "跳连把细节从收缩路径带过来。", GLOSSARY)
    assert "the English says 'skip connection'; the translation does not use the glossary's '跳跃连接'" in problems
    assert glossary_problems(english, "跳跃连接把细节从收缩路径带过来。", GLOSSARY) == []
    assert glossary_problems(english, "把细节从收缩路径带过来。", GLOSSARY, exceptions=["skip connection"]) == []
    # the term may be written with a space or none around Latin letters, or partly as code
    assert glossary_problems("the Rand error", "Rand 误差", GLOSSARY) == []
    assert glossary_problems("valid padding", "`valid`填充", GLOSSARY) == []


@pytest.mark.parametrize("chinese, message", [
    ("约 55 分钟", "a space between Chinese and Latin text or digits: '约 5'"),
    ("U-Net 的感受野", "a space between Chinese and Latin text or digits: 't 的'"),
    ("`nn.Conv2d` 和 $x$", "a space between Chinese and Latin text or digits: 'X 和'"),
    ("细胞,背景", "half-width punctuation after Chinese: '胞,'"),
    ("卷积(convolution)", "half-width punctuation after Chinese: '积('"),
    ("**练习版。**本笔记本", "emphasis that Markdown does not render: '。**本'"),
    ("的**“是什么”**与", "emphasis that Markdown does not render: '的**“'"),
])
def test_typography_follows_d2l_zh(chinese, message):
    assert any(p.startswith(message) for p in translation.style_problems(chinese)), translation.style_problems(chinese)


def test_typography_leaves_code_quotes_and_markers_alone():
    text = ("## 3. 池化\n\n1. 约55分钟，U-Net的感受野；`nn.Conv2d`和$x$（convolution）。**练习版**。\n"
            '> "The typical use of networks" (Sec. 1)\n- 见[论文](https://a.b/c)。\n```\nx = 1 # 注释 a\n```')
    assert translation.style_problems(text) == []


def test_a_shape_keeps_its_english_brackets_and_a_comparison_is_no_tag():
    """i18n/README.md: shapes in English punctuation, also right after Chinese text; ``<= t``
    in a formula written out is text, not an HTML tag to strip."""
    assert translation.style_problems("形状为(B, C, H, W)的张量，输出(H_out, W_out)") == []
    assert translation.style_problems("背景（值 <= t）和前景（值 > t）") == []
    assert translation.style_problems("见式(1)") != []                      # one item: not a shape


@pytest.mark.parametrize("text, match", [
    ("english\tchinese\n", "the first line must be the header"),
    ("english\tchinese\tavoid\tnote\tsource\nchannel\t通道\t渠道\n", r"line 2: 3 tab-separated columns; expected 5"),
    ("english\tchinese\tavoid\tnote\tsource\nchannel\t通道\t\t\t\nChannel\t信道\t\t\t\n", "'Channel' is already on line 2"),
    ("english\tchinese\tavoid\tnote\tsource\nchannel\t\t\t\t\n", "must not be empty"),
    ("english\tchinese\tavoid\tnote\tsource\nbatch normalization\t批量规范化\t规范化\t\t\n",
     "'规范化', a variant to avoid for 'batch normalization', is part of '批量规范化'"),
])
def test_a_malformed_glossary_is_named(tmp_path, text, match):
    path = tmp_path / "glossary.tsv"
    path.write_text(text, encoding="utf8")
    with pytest.raises(TranslationError, match=match):
        read_glossary(path)


def test_the_course_glossary_has_the_terms_and_choices_of_the_issue():
    terms = {t.english: t for t in GLOSSARY}
    assert len(terms) >= 60
    chosen = {"convolution": "卷积", "padding": "填充", "stride": "步幅", "channel": "通道", "feature map": "特征图",
              "receptive field": "感受野", "pooling": "池化", "transposed convolution": "转置卷积",
              "up-convolution": "上卷积", "skip connection": "跳跃连接", "concatenation": "拼接",
              "contracting path": "收缩路径", "expansive path": "扩展路径", "batch normalization": "批量规范化",
              "cross-entropy": "交叉熵", "weight map": "权重图", "instance segmentation": "实例分割",
              "elastic deformation": "弹性形变", "overlap-tile strategy": "重叠平铺策略", "IoU": "交并比"}
    assert {english: terms[english].chinese for english in chosen} == chosen
    for english, variant in [("channel", "渠道"), ("pooling layer", "合并层"), ("transposed convolution", "反卷积")]:
        assert variant in terms[english].avoid
    assert all(t.source for t in GLOSSARY), [t.english for t in GLOSSARY if not t.source]


# -- the store's checks, on a hand-made notebook ----------------------------------------------------

def _notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _cell(make, source, cell_id, outputs=None, tags=None, count=None):
    cell = make(source, metadata={"tags": tags} if tags else {})
    cell.id = cell_id
    if outputs is not None:
        cell.outputs, cell.execution_count = outputs, count
    return cell


SOLUTION = '''def double(x: int) -> int:
    """Return twice `x`: the channels after the up-convolution's input doubles them."""
    # the solution
    return 2 * x'''


def english_notebook() -> nbformat.NotebookNode:
    return _notebook(
        _cell(new_markdown_cell, "# 01 · Toy\n\nWe pool 2 times and keep 16,384 pixels; see "
                                 "[the paper](https://arxiv.org/abs/1505.04597) and `center_crop`.\n\n"
                                 '> "a quote from the paper" (Sec. 1)', "title"),
        _cell(new_code_cell, "import math   # the standard library\n\nx = 2  # (B, C)", "imports",
              [new_output("stream", name="stdout", text="2\n")], count=1),
        _cell(new_markdown_cell, "Each skip connection copies a feature map across the U.", "skip"),
        _cell(new_code_cell, SOLUTION, "sol", [], tags=[SOLUTION_TAG], count=2),
        _cell(new_code_cell, "print(double(2))", "check", [new_output("stream", name="stdout", text="4\n")], count=3),
        _cell(new_markdown_cell, "**Answers.** 1. Twice.", "ans", tags=[ANSWER_TAG]),
    )


CHINESE_CELLS = {
    "title": "# 01 · 玩具\n\n我们池化2次，保留16,384个像素；见[论文](https://arxiv.org/abs/1505.04597)和"
             '`center_crop`。\n\n> "a quote from the paper" (Sec. 1)\n>\n> “论文中的一句话”（第1节）',
    "skip": "每个跳跃连接把一张特征图复制到U的另一侧。",
    "ans": "**答案**。1. 两倍。",
    "# the standard library": "# 标准库",
    '"""Return twice `x`: the channels after the up-convolution\'s input doubles them."""':
        '"""返回`x`的两倍：上卷积的输入让通道数翻倍之后的通道数。"""',
    "# the solution": "# 解答",
}


def translated_store(nb) -> Store:
    """A complete store for ``nb`` from CHINESE_CELLS (through ``scaffold``, as a translator starts)."""
    store = scaffold(nb, Store("notebooks/01_toy.ipynb"))[0]
    for cell_id, entry in store.cells.items():
        if "segments" in entry:
            for s in entry["segments"]:
                s["zh"] = CHINESE_CELLS[s["en"]]
        else:
            entry["zh"] = CHINESE_CELLS[cell_id].split("\n")
    return store


def test_a_complete_store_passes_and_counts_its_progress():
    nb = english_notebook()
    problems, progress = check_store(nb, translated_store(nb), "01_toy.ipynb", GLOSSARY)
    assert problems == []
    assert (progress.markdown_done, progress.markdown_total, progress.code_done, progress.code_total) == (3, 3, 2, 2)
    assert progress.notebooks_done == 1


def _kinds(problems, cell=None) -> list[str]:
    return sorted({p.kind for p in problems if cell is None or p.cell == cell})


def test_a_changed_english_cell_makes_its_translation_stale_until_accepted():
    nb = english_notebook()
    store = translated_store(nb)
    nb.cells[2].source = "Each skip connection copies a feature map across the U, cropped."
    problems, progress = check_store(nb, store, "01_toy.ipynb", GLOSSARY)
    assert [(p.cell, p.kind) for p in problems] == [("skip", "stale")]
    assert "accept 01_toy skip" in problems[0].message and "+Each skip connection copies a feature map across the U, " \
                                                           "cropped." in problems[0].message
    assert progress.markdown_done == 2
    store.cells["skip"]["zh"] = "每个跳跃连接把一张特征图裁剪后复制到U的另一侧。"
    assert check_store(nb, accept(nb, store, ["skip"]), "01_toy.ipynb", GLOSSARY)[0] == []


def test_missing_and_orphan_translations_are_named():
    nb = english_notebook()
    store = translated_store(nb)
    del store.cells["skip"]
    store.cells["gone"] = translation.store._markdown_entry("An old cell.", "一个旧单元格。")
    problems, progress = check_store(nb, store, "01_toy.ipynb", GLOSSARY)
    assert [(p.cell, p.kind) for p in problems] == [("skip", "missing"), ("gone", "orphan")]
    assert str(problems[0]).startswith("01_toy.ipynb, cell skip: missing: markdown cell not translated")
    assert progress.notebooks_done == 0


def test_a_code_change_keeps_the_translation_and_a_comment_change_makes_it_stale():
    nb = english_notebook()
    store = translated_store(nb)
    nb.cells[1].source = nb.cells[1].source.replace("x = 2", "x = 3")
    assert check_store(nb, store, "01_toy.ipynb", GLOSSARY)[0] == []
    nb.cells[1].source = nb.cells[1].source.replace("# the standard library", "# Python's standard library")
    problems = check_store(nb, store, "01_toy.ipynb", GLOSSARY)[0]
    assert [(p.cell, p.kind) for p in problems] == [("imports", "stale")]
    assert "left over from an earlier version: '# the standard library'" in problems[0].message


def test_scaffold_moves_a_translation_whose_cell_got_a_new_id_and_drops_orphans_on_request():
    nb = english_notebook()
    store = translated_store(nb)
    nb.cells[2].id = "skip-2"
    new, notes = scaffold(nb, store)
    assert "moved skip -> skip-2 (same English text)" in notes
    assert _text(new.cells["skip-2"]["zh"]) == CHINESE_CELLS["skip"] and "skip" not in new.cells
    new.cells["gone"] = translation.store._markdown_entry("An old cell.", "旧")
    assert "gone" in scaffold(nb, new)[0].cells and "gone" not in scaffold(nb, new, drop_orphans=True)[0].cells


def _text(value):
    return translation.store._text(value)


def test_accept_refuses_a_cell_without_translation():
    nb = english_notebook()
    store = scaffold(nb, Store("notebooks/01_toy.ipynb"))[0]
    with pytest.raises(TranslationError, match="cell 'skip': write its translation"):
        accept(nb, store, ["skip"])
    with pytest.raises(TranslationError, match="cell 'nope': no such English cell"):
        accept(nb, store, ["nope"])


def test_a_glossary_break_and_a_changed_number_in_a_translation_fail():
    nb = english_notebook()
    store = translated_store(nb)
    store.cells["skip"]["zh"] = "每个跳跃连接把一张特征图的每个渠道复制过去。"
    store.cells["title"]["zh"] = _text(store.cells["title"]["zh"]).replace("16,384", "16,348")
    problems = check_store(nb, store, "01_toy.ipynb", GLOSSARY)[0]
    assert [(p.cell, p.kind) for p in problems] == [("title", "faithfulness"), ("skip", "glossary")]
    store.cells["skip"]["glossary_exceptions"] = ["渠道"]
    assert [p.cell for p in check_store(nb, store, "01_toy.ipynb", GLOSSARY)[0]] == ["title"]


def test_generated_cells_are_not_translated_and_the_language_cell_follows_them():
    nb = english_notebook()
    badges = _cell(new_markdown_cell, "[![Open In Colab](x.svg)](https://colab/notebooks/01_toy.ipynb)",
                   "launch-badges", tags=["generated"])
    install = _cell(new_code_cell, "# In Colab: install the course\nimport sys", "colab-install", [],
                    tags=["generated"])
    nb.cells[1:1] = [install]
    nb.cells.insert(0, badges)
    store = translated_store(nb)
    assert "launch-badges" not in store.cells and "colab-install" not in store.cells
    assert check_store(nb, store, "01_toy.ipynb", GLOSSARY)[0] == []
    zh = chinese_notebook(nb, store, "zh/notebooks/01_toy.ipynb")
    assert [c.id for c in zh.cells[:4]] == ["launch-badges", "title", "colab-install", LANGUAGE_CELL_ID]
    store.cells["colab-install"] = {"segments": [{"en": "# In Colab: install the course", "zh": "# 在 Colab 中安装"}]}
    problems = check_store(nb, store, "01_toy.ipynb", GLOSSARY)[0]
    assert [(p.cell, p.kind) for p in problems] == [("colab-install", "orphan")]


# -- the generated edition, in a tmp course ------------------------------------------------------------

@pytest.fixture
def course(tmp_path) -> Edition:
    """A course with one English notebook, its complete store, the exercise texts and the glossary,
    and its Chinese edition generated."""
    edition = Edition(tmp_path / "course")
    (edition.root / "notebooks").mkdir(parents=True)
    (edition.root / "i18n/zh").mkdir(parents=True)
    nb = english_notebook()
    nbformat.write(nb, edition.root / "notebooks/01_toy.ipynb")
    (edition.root / "i18n/zh/01_toy.json").write_text(store_text(translated_store(nb)), encoding="utf8")
    shutil.copy(ROOT / COURSE.glossary, edition.root / "i18n")
    shutil.copy(ROOT / COURSE.texts_path(), edition.root / "i18n/zh")
    assert main(["--root", str(edition.root), "build"]) == 0
    return edition


def test_the_generated_edition_keeps_code_and_outputs_and_passes_every_check(course):
    english = nbformat.read(course.root / "notebooks/01_toy.ipynb", as_version=4)
    zh = nbformat.read(course.root / "zh/notebooks/01_toy.ipynb", as_version=4)
    assert [c.id for c in zh.cells] == ["title", LANGUAGE_CELL_ID, "imports", "skip", "sol", "check", "ans"]
    assert zh.cells[1].source.startswith('from unet_lib.checks import set_language\n\nset_language("zh")')
    assert zh.cells[0].source == CHINESE_CELLS["title"]
    assert zh.cells[2].source == "import math   # 标准库\n\nx = 2  # (B, C)"
    for en in english.cells:
        if en.cell_type == "code":
            cn = _cell_of(zh, en.id)
            assert cn.outputs == en.outputs and cn.execution_count == en.execution_count
    assert zh.metadata[STAMP_KEY]["source"] == "notebooks/01_toy.ipynb"
    exercises = nbformat.read(course.root / "zh/exercises/01_toy.ipynb", as_version=4)
    skeleton = next(c for c in exercises.cells if EXERCISE_TAG in c.metadata.get("tags", []))
    assert skeleton.source == ('def double(x: int) -> int:\n    """返回`x`的两倍：上卷积的输入让通道数翻倍之后的通道数。"""\n'
                               '    raise NotImplementedError("练习`double`：把这一行换成你的代码（文档字符串说明了要做什么）")')
    banner = next(c for c in exercises.cells if c.get("id") == "exercise-edition")
    assert banner.source.startswith("**练习版**。") and "`zh/notebooks/01_toy.ipynb`" in banner.source
    assert "两倍" not in json.dumps(exercises.cells[-1]) and "解答笔记本" in exercises.cells[-1].source   # no answers
    assert all(not c.get("outputs") for c in exercises.cells)
    problems, progress = check_edition(course)
    assert problems == [] and progress.notebooks_done == 1


def _edit_notebook(path: Path, change) -> None:
    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)


def _edit_store(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf8"))
    change(data["cells"])
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf8")


def _cell_of(nb, cell_id):
    return next(c for c in nb.cells if c.get("id") == cell_id)


def _set(cell_id: str, **fields):
    """A change of a notebook: cell ``cell_id`` gets ``fields``."""
    return lambda nb: [setattr(_cell_of(nb, cell_id), k, v) for k, v in fields.items()]


def _stdout(text: str) -> list:
    return [new_output("stream", name="stdout", text=text)]


EN, STORE, ZH = "notebooks/01_toy.ipynb", "i18n/zh/01_toy.json", "zh/notebooks/01_toy.ipynb"
BREAKAGES = {
    "English markdown changed": (EN, _set("skip", source="New text."), [("01_toy.ipynb", "skip", "stale")]),
    "English code changed": (EN, _set("imports", source="import math   # the standard library\n\nx = 3"),
                             [(ZH, "imports", "code"), (ZH, "", "edition")]),
    "English outputs changed": (EN, _set("check", outputs=_stdout("5\n")), [(ZH, "check", "outputs")]),
    "Chinese code edited": (ZH, _set("check", source="print(double(3))"), [(ZH, "check", "code"), (ZH, "", "edition")]),
    "language cell removed": (ZH, lambda nb: nb.cells.pop(1), [(ZH, "", "edition")]),
    "number changed in the translation": (
        STORE, lambda cells: cells["title"].update(zh=_text(cells["title"]["zh"]).replace("2次", "3次")),
        [("01_toy.ipynb", "title", "faithfulness"), (ZH, "", "edition")]),
    "banned term in the translation": (
        STORE, lambda cells: cells["skip"].update(zh="每个跳跃连接把特征图的渠道复制过去。"),
        [("01_toy.ipynb", "skip", "glossary")]),
    "space in the translation": (
        STORE, lambda cells: cells["skip"].update(zh="每个跳跃连接把一张特征图复制到 U 的另一侧。"),
        [("01_toy.ipynb", "skip", "style")]),
    "translation missing": (STORE, lambda cells: cells.pop("skip"), [("01_toy.ipynb", "skip", "missing")]),
    "orphan translation": (STORE, lambda cells: cells.update(gone=translation.store._markdown_entry("Old.", "旧。")),
                           [("01_toy.ipynb", "gone", "orphan")]),
    "docstring changed in English": (EN, _set("sol", source=SOLUTION.replace("Return twice", "Give twice")),
                                     [("01_toy.ipynb", "sol", "stale"), (ZH, "", "edition")]),
}


@pytest.mark.parametrize("path, change, expected", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_every_check_fails_naming_the_notebook_and_cell(course, path, change, expected):
    edit = _edit_store if path.endswith(".json") else _edit_notebook
    edit(course.root / path, change)
    problems, _ = check_edition(course)
    found = {(p.notebook, p.cell, p.kind) for p in problems}
    assert set(expected) <= found, problems


def test_a_missing_chinese_file_and_a_store_without_english_notebook_are_named(course):
    (course.root / "zh/exercises/01_toy.ipynb").unlink()
    shutil.copy(course.root / "i18n/zh/01_toy.json", course.root / "i18n/zh/02_gone.json")
    problems, _ = check_edition(course)
    assert {(p.notebook, p.kind) for p in problems} == {("zh/exercises/01_toy.ipynb", "edition"),
                                                       ("i18n/zh/02_gone.json", "orphan")}


def test_stale_exercise_texts_are_named(course):
    path = course.root / course.texts_path()
    data = json.loads(path.read_text(encoding="utf8"))
    data["banner"]["en"] = "**Exercise edition.** An older banner."
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf8")
    problems, _ = check_edition(course)
    assert ("i18n/zh/_exercise_edition.json", "banner", "stale") in {(p.notebook, p.cell, p.kind) for p in problems}


def test_build_refuses_to_overwrite_a_learners_work_unless_told(course, capsys):
    _edit_notebook(course.root / ZH, _set("check", outputs=_stdout("mine\n")))
    _edit_store(course.root / "i18n/zh/01_toy.json", lambda cells: cells["skip"].update(zh="每个跳跃连接复制一张特征图。"))
    capsys.readouterr()
    assert main(["--root", str(course.root), "build"]) == 3
    assert "zh/notebooks/01_toy.ipynb: it was changed after the generator wrote it" in capsys.readouterr().err
    assert "mine" in (course.root / "zh/notebooks/01_toy.ipynb").read_text()
    assert main(["--root", str(course.root), "build", "--discard-changes"]) == 0
    assert "mine" not in (course.root / "zh/notebooks/01_toy.ipynb").read_text()
    assert check_edition(course)[0] == []


def test_build_removes_the_edition_of_a_store_that_is_gone_but_never_a_file_it_did_not_write(course, capsys):
    (course.root / "i18n/zh/01_toy.json").unlink()
    foreign = course.root / "zh/notebooks/02_mine.ipynb"
    nbformat.write(english_notebook(), foreign)
    assert main(["--root", str(course.root)]) == 0
    assert not (course.root / "zh/notebooks/01_toy.ipynb").exists() and foreign.exists()
    assert "left alone" in capsys.readouterr().err and foreign.exists()
    assert main(["--root", str(course.root), "build", "--discard-changes"]) == 0 and foreign.exists()


def test_the_command_line_scaffolds_accepts_and_checks(course, capsys):
    root = ["--root", str(course.root)]
    _edit_notebook(course.root / "notebooks/01_toy.ipynb",
                   lambda nb: nb.cells.insert(3, _cell(new_markdown_cell, "A new paragraph.", "new")))
    assert main(root + ["scaffold", "01"]) == 0
    assert "added new (markdown)" in capsys.readouterr().out
    assert read_store(course.root / "i18n/zh/01_toy.json").cells["new"]["zh"] is None
    assert main(root + ["check"]) == 1
    out = capsys.readouterr()
    assert "01_toy.ipynb, cell new: missing" in out.err and "markdown cells 3/4" in out.out
    _edit_store(course.root / "i18n/zh/01_toy.json", lambda cells: cells["new"].update(zh="新的一段。"))
    assert main(root + ["build"]) == 0 and main(root + ["check"]) == 0
    assert "1/1 notebooks complete; markdown cells 4/4" in capsys.readouterr().out
    assert main(root + ["accept", "01", "nope"]) == 2
    assert main(root + ["scaffold", "99"]) == 2
    assert "'99' names no notebook" in capsys.readouterr().err


def test_a_damaged_store_is_named(course, capsys):
    (course.root / "i18n/zh/01_toy.json").write_text('{"notebook": "x", "cells": {"a": {"zh": "未转义的"引号"}}}')
    problems, _ = check_edition(course)
    assert [(p.kind, "is not valid JSON (line 1" in p.message) for p in problems] == [("invalid", True)]


def test_build_without_any_store_writes_nothing(tmp_path, capsys):
    (tmp_path / "notebooks").mkdir()
    nbformat.write(english_notebook(), tmp_path / "notebooks/01_toy.ipynb")
    assert main(["--root", str(tmp_path)]) == 0
    assert not (tmp_path / "zh").exists()
    assert "0 notebooks with a store" in capsys.readouterr().out


# -- the course's own Chinese edition ------------------------------------------------------------------

ENGLISH_NOTEBOOKS = [p.name for p in COURSE.english()]


def _notebooks_to_check() -> list:
    """A parameter per notebook that has a store (every notebook once EDITION_COMPLETE), and one
    skipped parameter that says how much of the others is left to translate."""
    done = [n for n in ENGLISH_NOTEBOOKS if (ROOT / COURSE.store_of(n)).is_file() or EDITION_COMPLETE]
    params = [pytest.param(n, id=Path(n).stem) for n in done]
    left = [n for n in ENGLISH_NOTEBOOKS if n not in done]
    if left:
        progress = sum((check_store(nbformat.read(ROOT / COURSE.notebooks / n, as_version=4), Store(n), n)[1]
                        for n in left), translation.Progress())
        reason = (f"not translated yet: {', '.join(n[:2] for n in left)} ({progress.markdown_total} markdown cells, "
                  f"{progress.code_total} code cells with comments); see i18n/README.md")
        params.append(pytest.param(None, id="not-translated-yet", marks=pytest.mark.skip(reason=reason)))
    return params


@pytest.mark.parametrize("name", _notebooks_to_check())
def test_the_chinese_edition_is_in_step(name):
    """Stale, missing and orphan translations, faithfulness, the glossary, typography, and zh/
    against the English notebook and the generator, for each notebook that has a store."""
    problems, _ = check_edition(COURSE, [name])
    assert not problems, "\n".join(map(str, problems[:60])) + "\nsee i18n/README.md"


def test_every_store_and_chinese_notebook_has_its_english_notebook():
    english = {Path(n).stem for n in ENGLISH_NOTEBOOKS}
    stores = {p.stem for p in COURSE.stores()}
    assert stores <= english, f"stores without an English notebook: {sorted(stores - english)}"
    for folder in ("zh/notebooks", "zh/exercises"):
        generated = {p.stem for p in (ROOT / folder).glob("[0-9][0-9]_*.ipynb")}
        assert generated <= stores, (f"{folder}: {sorted(generated - stores)} have no store: run "
                                     f"`python -m unet_lib.translation`, which removes them")


def test_the_exercise_edition_texts_are_translated_and_current():
    if not COURSE.stores() and not EDITION_COMPLETE:
        pytest.skip("checked from the first translated notebook on")
    problems = translation.edition._read_texts(COURSE, GLOSSARY)[1]
    assert not problems, "\n".join(map(str, problems))


def test_the_progress_of_the_chinese_edition(record_property):
    """The line that ``make test`` prints at its end (tests/conftest.py)."""
    line = translation.summary(COURSE)
    record_property("chinese_edition", line)
    counts = [tuple(map(int, pair)) for pair in re.findall(r"(\d+)/(\d+)", line)]
    assert len(counts) == 4 and all(done <= total for done, total in counts), line
    assert counts[0][1] == len(ENGLISH_NOTEBOOKS) and counts[1][1] > 0, line


def test_a_class_exercise_gets_the_chinese_message_of_a_method_skeleton():
    solution = 'class Pair:\n    """两个数。"""\n\n    def total(self):\n        return 2'
    nb = _notebook(_cell(new_markdown_cell, "# 02 · 类", "title"),
                   _cell(new_code_cell, solution, "sol", [], tags=[SOLUTION_TAG]),
                   _cell(new_code_cell, "check(Pair)", "check", []))
    texts = {key: _text(entry["zh"]) for key, entry in json.loads((ROOT / COURSE.texts_path()).read_text()).items()}
    edition = translation.chinese_exercises(nb, texts, "zh/notebooks/02_x.ipynb", "zh/exercises/02_x.ipynb")
    skeleton = _cell_of(edition, "sol").source
    assert 'raise NotImplementedError("练习`Pair.total`：把这一行换成你的代码（类的文档字符串说明了要做什么）")' in skeleton
    assert _cell_of(edition, "exercise-edition").source.startswith("**练习版**。")


def test_a_code_span_broken_across_lines_is_the_same_span_on_one_line():
    english = "Set `TRAIN_LIVE =\nFalse` to load the shipped run."
    assert translation.faithfulness_problems(english, "把`TRAIN_LIVE = False`设为加载已发布的运行。") == []
