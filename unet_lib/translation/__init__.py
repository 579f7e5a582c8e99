"""The Chinese edition (中文版): the notebooks and exercises in Chinese, and the checks that keep them in step.

``zh/notebooks`` and ``zh/exercises`` are generated from the English notebooks and a translation
store. One module per part: ``store`` (the stores), ``code_cells`` (a code cell's comments and
docstrings), ``faithfulness``, ``glossary`` and ``style`` (what a translation is checked for),
``cell_checks`` (one notebook's store checked cell by cell), ``notebooks`` (the Chinese notebooks),
``edition`` (the whole edition and its checks), ``build`` (writing it), ``translators``
(``scaffold``, ``accept``), ``catalogue`` (the checks' messages) and ``cli`` (the command line);
their public names are gathered here.

The English notebooks in ``notebooks/`` stay the one source of truth. What is Chinese lives in
one store per notebook, ``i18n/zh/NN_topic.json``, keyed by the English cell's id:

* a **markdown cell**'s entry holds the English text it translates (``en``), that text's hash
  (``sha256``, its first 16 hex digits) and the translation (``zh``). When the English cell
  changes, its hash no longer matches: the translation is *stale* until a translator updates
  ``zh`` and runs ``accept``;
* a **code cell** is never stored: the Chinese cell is the English code with each comment and
  docstring replaced by its translation. Its entry holds ``segments``: pairs of an English comment
  (a run of full-line comments, or one trailing comment) or docstring and its translation, keyed by
  the English text. A code change leaves the translation current; a changed comment shows up as a
  new segment to translate (and the old one as left over);
* cells tagged ``generated`` (issue #22's launch badges and Colab install cell) are not
  translated here: they are copied from the English notebook and pointed at the Chinese notebook
  by their own generator (``unet_lib.launch.retarget_badges``, when that module exists).

Why a store beside the notebooks rather than in the Chinese notebooks' metadata: the Chinese
notebooks are generated files (as ``exercises/`` is), carry megabytes of copied figures, and are
opened and run by learners; the store is small, diffs line by line in review, is edited by
translators without Jupyter, and feeds both Chinese editions (solutions and exercises).

Generation (``python -m unet_lib.translation``, run by ``make exercises``) writes, for every
notebook that has a store:

* ``zh/notebooks/NN_topic.ipynb``: the English notebook with its markdown and comments translated,
  its outputs, figures and widget state copied (never re-executed), and one code cell
  (id ``zh-language``) that calls ``set_language("zh")``, so that the checks speak Chinese: the
  first code cell after the generated ones;
* ``zh/exercises/NN_topic.ipynb``: ``unet_lib.exercises.exercise_edition`` applied to that Chinese
  solution notebook (so the skeletons keep the Chinese docstrings), with the generator's own texts
  (the banner, the answers note, the skeleton's ``NotImplementedError`` message) taken from
  ``i18n/zh/_exercise_edition.json``.

A file in ``zh/`` that a learner changed (cells, outputs) is never overwritten or removed without
``--discard-changes``; each generated file carries a stamp of what was written.

The checks (``check`` of the command line, ``tests/test_translation.py`` in ``make test``), each naming the
notebook and the cell: a translation that is *stale*, *missing* or left over (*orphan*); a Chinese
notebook whose code (outside comments and docstrings) or outputs differ from the English one, or
that is not what the generator writes now; faithfulness (every number, thousands separators
aside, every link target, code span, formula and paper quote of the English text appears in its
translation); the glossary (``i18n/glossary.zh.tsv``): no variant that it rules out, and its term
wherever the English uses one of its multi-word terms; and d2l-zh's typography (no space between
Chinese and Latin text, Chinese punctuation, emphasis that renders). They read files only, so
``make test`` spends about a second on all twelve notebooks. ``i18n/README.md`` is the
translators' guide.
"""

from .build import generate
from .catalogue import MESSAGE_CALLS, catalogue_problems, check_templates
from .cell_checks import Problem, Progress, check_store
from .cli import main
from .edition import EXERCISE_TEXTS, Edition, check_edition, summary
from .faithfulness import faithfulness_problems, link_targets, numbers, quotes
from .glossary import GLOSSARY_COLUMNS, Term, glossary_problems, read_glossary
from .notebooks import (LANGUAGE_CELL_ID, LANGUAGE_SOURCE, STAMP_KEY, chinese_exercises, chinese_notebook,
                        compare_with_english, exercise_texts, retarget_generated_cells)
from .code_cells import Segment, code_tokens, segments, to_translate, translate_code
from .store import GENERATED_TAG, LANGUAGE, Store, TranslationError, read_store, source_hash, store_text, write_store
from .style import style_problems
from .translators import accept, exercise_texts_store, scaffold

__all__ = [
    "TranslationError", "LANGUAGE", "GENERATED_TAG", "LANGUAGE_CELL_ID", "STAMP_KEY", "Segment", "segments",
    "to_translate", "code_tokens", "translate_code", "source_hash", "Store", "read_store", "write_store", "store_text",
    "Term", "read_glossary", "glossary_problems", "faithfulness_problems", "style_problems", "Progress", "Problem",
    "check_store", "chinese_notebook", "exercise_texts", "chinese_exercises", "compare_with_english",
    "Edition", "check_edition", "generate", "scaffold", "accept", "check_templates", "catalogue_problems",
    "summary", "main",
    # public beside the list above, as before the split
    "numbers", "link_targets", "quotes", "LANGUAGE_SOURCE", "EXERCISE_TEXTS", "GLOSSARY_COLUMNS", "MESSAGE_CALLS",
    "retarget_generated_cells", "exercise_texts_store",
]
