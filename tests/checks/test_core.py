"""Tests for unet_lib.checks._core and what every check shares: staged hints, messages in two
languages, refused shortcuts, friendly skeletons, the learner's random state kept, and every
check tested both ways in its notebook's test file."""

import ast
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from checktools import skeleton

from unet_lib import DoubleConv, UNet, checks
from unet_lib.checks import CheckError, _core
from unet_lib.checks._core import call, fail, learner_check, message, passed

HERE = Path(__file__).parent


# -- messages and staged hints -------------------------------------------------------------------

def test_check_error_is_an_assertion_error_with_a_hint():
    with pytest.raises(AssertionError, match=r"^it is wrong\nHint: look here$"):
        fail("it is wrong", "look here")
    assert issubclass(CheckError, AssertionError)   # pytest and nbval report it as a failed check


def test_jupyter_shows_the_message_without_the_checks_source():
    """IPython renders ``_render_traceback_`` instead of a traceback, which would print the
    source around ``fail(...)`` and so the hints of later stages."""
    with pytest.raises(CheckError) as info:
        fail("it is wrong", "look here", "the second stage")
    assert info.value._render_traceback_() == ["CheckError: it is wrong\nHint 1 of 2: look here\n"
                                               "(run the check again after a change for the next hint)"]
    with pytest.raises(NotImplementedError) as info:
        call(skeleton("my_answer"))
    assert info.value._render_traceback_() == [f"NotImplementedError: {info.value}"]


def test_fields_are_filled_and_a_template_without_fields_is_shown_as_written():
    with pytest.raises(CheckError, match=r"^got 3, expected \(1, 2\)\nHint: a \{dict\} stays$"):
        fail("got {got}, expected {expected}", "a {{dict}} stays", got=3, expected=(1, 2))
    assert message("a {brace} shown as written") == "a {brace} shown as written"


def _failure(check, answer) -> str:
    with pytest.raises(CheckError) as info:
        check(answer)
    return str(info.value)


@learner_check
def check_twice(fn):
    if call(fn) != 2:
        fail("returned {got}; expected 2", "first hint: the concept", "second hint: the tool", got=call(fn))
    return passed("✓ two")


def test_hints_come_in_stages_per_failure_and_the_last_stays():
    first = _failure(check_twice, lambda: 1)
    assert "Hint 1 of 2: first hint: the concept" in first and "second hint" not in first
    assert "run the check again" in first
    second = _failure(check_twice, lambda: 3)
    assert "Hint 1 of 2" in second and "Hint 2 of 2: second hint: the tool" in second
    assert "run the check again" not in second
    assert "Hint 2 of 2" in _failure(check_twice, lambda: 4)          # the last stage stays
    _core.reset_hints()
    assert "second hint" not in _failure(check_twice, lambda: 1)


def test_hints_are_counted_per_check():
    @learner_check
    def check_other(fn):
        fail("returned {got}; expected 2", "other first", "other second", got=call(fn))

    _failure(check_twice, lambda: 1)
    assert "other second" not in _failure(check_other, lambda: 1)


def test_messages_in_chinese_come_from_the_catalogue(monkeypatch):
    fake = {"returned {got}; expected 2": "返回了 {got}；应为 2", "first hint: the concept": "第一条提示",
            "Hint {k} of {n}": "提示 {k}/{n}"}
    monkeypatch.setattr(_core, "_language", "zh")
    monkeypatch.setattr(_core, "catalogue", lambda language: fake)
    text = _failure(check_twice, lambda: 1)
    assert text.startswith("返回了 1；应为 2\n提示 1/2: 第一条提示")
    # a template the catalogue lacks is shown in English, not dropped
    assert "(run the check again after a change for the next hint)" in text


def test_set_language_names_the_choices():
    with pytest.raises(ValueError, match=r"language must be one of 'en', 'zh'; got 'fr'"):
        checks.set_language("fr")
    checks.set_language("zh")
    assert checks.language() == "zh"


# -- refused shortcuts ---------------------------------------------------------------------------

def library_iou(a, b):
    return (a & b).sum() / (a | b).sum()


class Sampler:
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


@pytest.mark.parametrize("answer, shortcut", [
    (lambda a, b: library_iou(a, b), "library_iou"),                           # by its name
    (lambda a, b: (lambda f: f(a, b))(library_iou), "library_iou"),            # renamed, passed around
    (lambda a, b: len(list(Sampler(3))) and library_iou(a, b), "Sampler, library_iou"),   # a class
    (lambda a, b: torch.cat([torch.tensor([1.0])]).sum(), "torch.cat"),      # a builtin
    (lambda a, b: UNet(depth=0, base_channels=1).eval()(torch.zeros(1, 1, 5, 5)), "UNet.forward"),   # model(x)
    (lambda a, b: UNet.forward(UNet(depth=0, base_channels=1), torch.zeros(1, 1, 5, 5)), "UNet.forward"),
])
def test_a_shortcut_is_refused_however_it_is_reached(answer, shortcut):
    refuse = {"library_iou": library_iou, "Sampler": Sampler, "torch.cat": torch.cat, "UNet.forward": UNet.forward}
    a = b = np.ones(3, bool)
    names = ", ".join(f"`{s}`" for s in shortcut.split(", "))
    with pytest.raises(CheckError, match=rf"^`<lambda>` called {names}, which already does what this exercise "
                                         r"asks you to write\nHint: write it yourself"):
        call(answer, a, b, refuse=refuse)


def test_an_own_solution_and_an_allowed_function_pass_the_watch():
    def own_iou(a, b):
        return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()

    a, b = np.array([1, 1, 0], bool), np.array([1, 0, 0], bool)
    assert call(own_iou, a, b, refuse={"library_iou": library_iou}) == 0.5
    assert call(library_iou, a, b, refuse={"UNet.forward": UNet.forward}) == 0.5   # each check, its own list


def test_a_checks_own_reference_is_refused():
    from unet_lib.checks import nb05_toy_cells_and_augmentation as nb05

    with pytest.raises(CheckError, match=r"called `unet_lib.checks._touching_pairs`"):
        call(lambda instances: nb05._touching_pairs(instances), np.zeros((3, 3), int), refuse={})


def test_a_checks_cached_reference_is_refused_when_the_cache_answers():
    from unet_lib.checks import nb05_toy_cells_and_augmentation as nb05

    nb05._toy_images(0, 1, 0.5)                        # the cache holds the answer: no frame runs next time
    with pytest.raises(CheckError, match=r"called `unet_lib.checks._toy_images`"):
        call(lambda: nb05._toy_images(0, 1, 0.5), refuse={})


def test_a_shortcut_run_in_a_thread_the_answer_starts_is_refused():
    from concurrent.futures import ThreadPoolExecutor

    def in_a_thread(a, b):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(library_iou, a, b).result()

    with pytest.raises(CheckError, match="called `library_iou`"):
        call(in_a_thread, np.ones(2, bool), np.ones(2, bool), refuse={"library_iou": library_iou})


def test_a_shortcut_is_named_even_when_the_answer_then_raises():
    def raises_after(a, b):
        library_iou(a, b)
        raise RuntimeError("later")

    with pytest.raises(CheckError, match="called `library_iou`"):
        call(raises_after, np.ones(2, bool), np.ones(2, bool), refuse={"library_iou": library_iou})


def test_the_watch_restores_an_earlier_profiler():
    seen = []
    previous = lambda frame, event, arg: seen.append(event)   # noqa: E731
    import sys
    sys.setprofile(previous)
    try:
        call(lambda: library_iou(np.ones(1, bool), np.ones(1, bool)), refuse={})
        assert sys.getprofile() is previous and seen   # chained while watching, restored after
    finally:
        sys.setprofile(None)


# -- skeletons and the learner's random state -----------------------------------------------------

CHECKS = sorted(name for name in checks.__all__ if name.startswith("check_"))


def assert_skeleton_is_friendly(check, name: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"^`{name}` is still the exercise skeleton: replace "
                                                  r"`raise NotImplementedError` with your code"):
        check(skeleton(name))


@pytest.mark.parametrize("check", CHECKS)
def test_skeleton_gets_the_friendly_message(check):
    """Every check, present and future, calls the learner's code through `call` first."""
    assert_skeleton_is_friendly(getattr(checks, check), "my_answer")


def _draws_after(fn) -> tuple[float, float]:
    """torch's and numpy's next global random numbers after seeding both and running ``fn``."""
    torch.manual_seed(123)
    np.random.seed(123)
    fn()
    return torch.rand(1).item(), np.random.rand()


@pytest.mark.parametrize("check", CHECKS)
def test_checks_leave_the_learners_global_rng_alone(check):
    def run():
        with pytest.raises(NotImplementedError):
            getattr(checks, check)(skeleton("my_answer"))
    assert _draws_after(run) == _draws_after(lambda: None)


@learner_check
def check_block(cls):
    """A check like the course's that takes a learner's nn.Module class: it seeds its own case,
    builds the learner's block (which draws weights) and runs it through nn.Module.__call__."""
    torch.manual_seed(0)
    block = call(cls, 1, 2)
    block(torch.zeros(1, 1, 5, 5))
    return passed("✓ block")


def test_a_passing_check_leaves_the_global_rng_alone():
    assert _draws_after(lambda: check_block(DoubleConv)) == _draws_after(lambda: None)


class SkeletonForward(torch.nn.Module):
    """An exercise class whose __init__ is filled in and whose forward is still the skeleton."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x):
        raise NotImplementedError("Exercise `SkeletonForward`: replace this line with your code")


def test_a_skeleton_forward_gets_the_friendly_message():
    with pytest.raises(NotImplementedError, match=r"^`SkeletonForward.forward` is still the exercise skeleton: "
                                                  r"replace `raise NotImplementedError`") as info:
        check_block(SkeletonForward)
    assert info.value.__cause__ is None and info.value.__suppress_context__   # no torch traceback attached


def test_torchs_own_not_implemented_error_is_not_blamed_on_the_learner():
    class NoForward(torch.nn.Module):   # forgot to define forward: torch's message says so
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = torch.nn.Conv2d(in_channels, out_channels, 3)

    with pytest.raises(NotImplementedError, match=r"missing the required \"forward\" function"):
        check_block(NoForward)


@functools.cache
def _test_functions() -> dict[str, list[ast.FunctionDef]]:
    """{test file name: its test functions}, for every notebook's check tests."""
    return {path.name: [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)]
            for path in sorted(HERE.glob("test_nb*.py"))}


@pytest.mark.parametrize("check", CHECKS)
def test_every_check_is_tested_both_ways_in_its_notebooks_file(check):
    module = getattr(checks, check).__module__.rpartition(".")[2]
    tests = _test_functions().get(f"test_{module}.py", [])
    mine = [t for t in tests if t.name.startswith(f"test_{check}_")]
    assert any(t.name.startswith(f"test_{check}_passes") for t in mine), \
        f"no test_{check}_passes_... in tests/checks/test_{module}.py: show that it passes a right answer"
    assert any(isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "parametrize"
               for t in mine if not t.name.startswith(f"test_{check}_passes") for d in t.decorator_list), \
        f"no parameterised test_{check}_... in tests/checks/test_{module}.py: show that it fails broken versions"


def test_every_check_lives_in_its_notebooks_module():
    for name in CHECKS:
        module = getattr(checks, name).__module__
        assert module.startswith("unet_lib.checks.nb"), f"{name} is defined in {module}"


# -- every message is a template that the catalogue can hold ----------------------------------------

MESSAGE_CALLS = {"fail", "passed", "message", "T"}
MODULES = sorted((HERE.parent.parent / "unet_lib" / "checks").glob("*.py"))


def _is_template(node: ast.expr, assigned: dict[str, list[ast.expr]]) -> bool:
    """A plain string literal, a choice between templates, ``T("...")``, or a name that the
    function only ever binds to those."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.IfExp):
        return _is_template(node.body, assigned) and _is_template(node.orelse, assigned)
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "T":
        return len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
    if isinstance(node, ast.Name) and assigned.get(node.id):
        return all(_is_template(value, {}) for value in assigned[node.id])
    if isinstance(node, ast.Starred):
        return _is_template(node.value, assigned)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_template(e, assigned) for e in node.elts)
    return False


def _untemplated(path: Path) -> list[str]:
    """Where a message of ``path`` is not a template: an f-string, a built string, a
    ``CheckPassed(...)`` made by hand."""
    tree = ast.parse(path.read_text())
    problems = []
    for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))] or [tree]:
        if getattr(function, "name", "") in MESSAGE_CALLS:   # the machinery passes its caller's template on
            continue
        assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
        for node in ast.walk(function):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "CheckPassed" and path.name != "_core.py":
                problems.append(f"line {node.lineno}: CheckPassed(...) by hand; use passed(template, **values)")
            if name in MESSAGE_CALLS and not all(_is_template(a, assigned) for a in node.args):
                problems.append(f"line {node.lineno}: {name}(...) with a message that is not a template literal")
    return sorted(set(problems))


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_every_message_is_a_template_the_catalogue_can_hold(path):
    """Messages are string literals with {fields} (values as keyword arguments), so that every
    English template can be found here and given its translation."""
    problems = _untemplated(path)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
