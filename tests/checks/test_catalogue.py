"""The checks' Chinese catalogue (``unet_lib/checks/locale/zh.json``, {English template: Chinese
template}) against the templates the check modules use: a template in one language only, or a
translation whose {fields} differ from the English, fails. Tested both ways on a synthetic module.

The course's catalogue is checked module by module: ``_core`` and each notebook's module once that
notebook has its Chinese translation (``i18n/zh/NN_*.json``), so that the English checks can be
rewritten before the translators fill the catalogue; until then the test is skipped and says how
many templates are left. Fields and empty entries are checked always.
"""

import json
from pathlib import Path

import pytest

from unet_lib.checks import _core, set_language
from unet_lib.checks._core import fail
from unet_lib.translation import Edition, catalogue_problems, check_templates

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "unet_lib" / "checks"
LOCALE = CHECKS / "locale" / "zh.json"
MODULES = sorted(p for p in CHECKS.glob("*.py") if p.name != "__init__.py")

SYNTHETIC = '''
from ._core import T, fail, passed

def check_toy(fn, case):
    hint = T("look at the {what}") if case else T("count the {what}")
    got = fn()
    if got != 2:
        fail("{case}: got {got}, expected 2", hint, "a tool hint" if case else "another tool hint",
             case=case, got=got, what="sizes")
    message = "✓ toy"
    return passed(message)
'''
TEMPLATES = {"look at the {what}", "count the {what}", "{case}: got {got}, expected 2", "a tool hint",
             "another tool hint", "✓ toy"}
CHINESE = {"look at the {what}": "看看{what}", "count the {what}": "数一数{what}",
           "{case}: got {got}, expected 2": "{case}：得到 {got}，应为 2", "a tool hint": "一条工具提示",
           "another tool hint": "另一条工具提示", "✓ toy": "✓ 玩具"}


@pytest.fixture
def synthetic(tmp_path) -> Path:
    path = tmp_path / "nb99_toy.py"
    path.write_text(SYNTHETIC, encoding="utf8")
    return path


def test_templates_are_found_in_literals_choices_T_and_bound_names(synthetic):
    found = check_templates([synthetic])
    assert set(found) == TEMPLATES
    assert found["{case}: got {got}, expected 2"] == ["nb99_toy.py:8"]


def test_a_complete_catalogue_passes(synthetic):
    assert catalogue_problems(check_templates([synthetic]), CHINESE) == []


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("a tool hint"), "no translation of 'a tool hint' (used at nb99_toy.py:8)"),
    (lambda c: c.update({"an old hint": "旧提示"}), "'an old hint' is in the catalogue but no check uses it"),
    (lambda c: c.update({"{case}: got {got}, expected 2": "{case}：得到 {value}，应为 2"}),
     "the translation's fields ['case', 'value'] differ from the English ['case', 'got']"),
    (lambda c: c.update({"✓ toy": " "}), "'✓ toy' has an empty translation"),
])
def test_a_template_in_one_language_only_or_with_other_fields_fails(synthetic, change, message):
    catalogue = dict(CHINESE)
    change(catalogue)
    problems = catalogue_problems(check_templates([synthetic]), catalogue)
    assert any(message in p for p in problems), problems


def test_only_the_required_templates_must_be_translated(synthetic):
    templates = check_templates([synthetic])
    assert catalogue_problems(templates, {}, required=[]) == []
    missing = catalogue_problems(templates, {}, required=["✓ toy"])
    assert missing == ["no translation of '✓ toy' (used at nb99_toy.py:11)"]


# -- the course's catalogue ------------------------------------------------------------------------------

def _catalogue() -> dict[str, str]:
    return json.loads(LOCALE.read_text(encoding="utf8")) if LOCALE.is_file() else {}


def _translated_notebooks() -> set[str]:
    """The numbers ("01", ...) of the notebooks that have a Chinese translation."""
    return {p.name[:2] for p in Edition(ROOT).stores()}


def _modules_to_check() -> list:
    """A parameter per check module whose notebook is translated (``_core`` from the first one on),
    and one skipped parameter that says how many templates the others still need."""
    translated = _translated_notebooks()
    done = [m for m in MODULES if (bool(translated) if m.stem == "_core" else m.stem[2:4] in translated)]
    params = [pytest.param(m, id=m.stem) for m in done]
    left = [m for m in MODULES if m not in done]
    if left:
        catalogue = _catalogue()
        templates = check_templates(left)
        todo = sum(1 for t in templates if t not in catalogue)
        reason = (f"required once their notebook is translated: {', '.join(m.stem for m in left)} ({todo} of "
                  f"{len(templates)} templates to translate: "
                  f"python -m unet_lib.translation catalogue --add-missing NN)")
        params.append(pytest.param(None, id="not-translated-yet", marks=pytest.mark.skip(reason=reason)))
    return params


@pytest.mark.parametrize("module", _modules_to_check())
def test_the_chinese_catalogue_holds_every_template_of_a_translated_notebook(module):
    templates = check_templates([module])
    problems = [p for p in catalogue_problems(templates, _catalogue(), required=templates)
                if p.startswith("no translation")]
    assert not problems, f"{module.name}:\n" + "\n".join(problems)


def test_the_chinese_catalogue_has_no_stray_entries_and_keeps_every_field():
    templates = check_templates(MODULES)
    problems = catalogue_problems(templates, _catalogue(), required=[])
    if not _translated_notebooks():   # while the English checks are rewritten, an entry may fall out of use
        problems = [p for p in problems if "no check uses it" not in p]
    assert not problems, "\n".join(problems)


def test_set_language_zh_shows_the_catalogues_messages():
    """The catalogue ships with the package and reaches a learner's check."""
    _core.catalogue.cache_clear()
    assert _core.catalogue("zh") == _catalogue() and _catalogue()
    set_language("zh")
    again = "(run the check again after a change for the next hint)"
    with pytest.raises(AssertionError, match=r"^\{'a': 1\}\n提示1/2：（改动之后再运行一次检查，会看到下一条提示）\n（"):
        fail("{x}", again, again, x={"a": 1})
    assert _core.message("Hint: {hint}", hint="x") == "提示：x"


def test_the_catalogue_command_adds_a_notebooks_templates_to_fill_in(tmp_path, synthetic, capsys):
    from unet_lib.translation import main

    checks = tmp_path / "course" / "unet_lib" / "checks"
    checks.mkdir(parents=True)
    (checks / "_core.py").write_text('def hint():\n    return message("Hint")\n', encoding="utf8")
    (checks / "nb01_toy.py").write_text(synthetic.read_text(encoding="utf8"), encoding="utf8")
    (checks / "nb02_other.py").write_text('fail("other {x}", x=1)\n', encoding="utf8")
    root = ["--root", str(tmp_path / "course"), "catalogue"]
    assert main(root + ["--add-missing", "01"]) == 1          # added, but empty
    catalogue = json.loads((checks / "locale" / "zh.json").read_text(encoding="utf8"))
    assert set(catalogue) == TEMPLATES | {"Hint"} and set(catalogue.values()) == {""}
    assert "'Hint' has an empty translation" in capsys.readouterr().err
    catalogue.update(CHINESE, Hint="提示")
    (checks / "locale" / "zh.json").write_text(json.dumps(catalogue, ensure_ascii=False), encoding="utf8")
    assert main(root + ["01"]) == 0
    assert "checks' messages: 7/7 translated; 0 problems" in capsys.readouterr().out
    assert main(root) == 1                                    # notebook 02's template is not translated
    assert "no translation of 'other {x}'" in capsys.readouterr().err
