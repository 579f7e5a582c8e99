"""What every learner check shares: its errors, its messages, the learner's call and random state.

The messages come in stages and in two languages; the learner's call gives friendly skeleton
errors and refuses shortcuts; the learner's random state is kept.

How a check reads, in any ``unet_lib/checks/nbNN_*.py``::

    @learner_check
    def check_up_forward(up_forward):
        got = call(up_forward, up, x, skip, refuse=UP_SHORTCUTS)      # the learner's code
        if got.shape != expected.shape:
            fail("{case}: gave shape {got}; expected {expected}",      # the symptom
                 "what does the up-convolution do to the channels?",    # hint 1: the concept
                 "compare up.up(x).shape with the skip's",              # hint 2 (a later try): a tool
                 case=name, got=tuple(got.shape), expected=tuple(expected.shape))
        return passed("✓ up_forward: same output as Up")

Messages are templates with named fields, written as string literals in the call (or in
``T("...")`` where a hint is chosen before the call), so that ``tests/test_checks_core.py`` can
find every one of them: the English template is its own key in the Chinese catalogue
(``unet_lib/checks/locale/zh.json``), chosen by ``set_language("zh")``. A changed English message
then has no translation, and the test says so.
"""

import functools
import json
import os
import sys
import threading
import types
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from torch import nn

__all__ = [
    "CheckError", "CheckPassed", "LANGUAGES", "set_language", "language", "T", "message", "fail", "passed",
    "learner_check", "call", "cached", "check_float32", "as_array", "reset_hints",
]


class CheckError(AssertionError):
    """The learner's answer is wrong; the message says what and how to find it."""

    def _render_traceback_(self) -> list[str]:
        """What Jupyter (IPython) shows instead of the traceback: the message alone. A traceback
        would print the check's source around ``fail(...)``, and with it the later hints."""
        return _message_only(self)


def _message_only(error: BaseException) -> list[str]:
    return [f"{type(error).__name__}: {error}"]


class CheckPassed(str):
    """A check's success message; shows without quotes in a notebook."""

    def __repr__(self) -> str:
        return str(self)


# -- messages in two languages ---------------------------------------------------------------

LANGUAGES = ("en", "zh")
_language = "en"


def set_language(language: str) -> None:
    """Show the checks' messages in ``language``: ``"en"`` (the default) or ``"zh"`` (Chinese).
    The Chinese notebooks call ``set_language("zh")`` in the first code cell after the generated (launch) cells."""
    global _language
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(map(repr, LANGUAGES))}; got {language!r}")
    _language = language


def language() -> str:
    """The language the checks' messages are shown in now."""
    return _language


@functools.lru_cache(maxsize=None)
def catalogue(language: str) -> dict[str, str]:
    """{English template: its translation} for ``language`` (empty for English, whose templates
    are the keys themselves)."""
    if language == "en":
        return {}
    path = resources.files(__package__) / "locale" / f"{language}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def T(template: str) -> str:
    """Mark a message template chosen before the call that shows it (a hint picked by a
    condition), so that the catalogue test finds it. Returns the template unchanged."""
    return template


def message(template: str, **values) -> str:
    """``template`` in the current language, its ``{fields}`` filled from ``values`` (a template
    given no values is shown as written, so only templates with fields double a literal brace).
    A template the catalogue lacks is shown in English rather than not at all."""
    text = catalogue(_language).get(template, template)
    return text.format(**values) if values else text


# -- staged hints ------------------------------------------------------------------------------

# (check, problem template) -> how often the learner has met it in this kernel: the first failure
# shows the first hint (the symptom's concept), a repeated one the next hint too (a tool)
_failures: Counter = Counter()
_running: list[str] = []      # the check being run, innermost last


def reset_hints() -> None:
    """Forget how often each failure was seen: the next failure shows its first hint only."""
    _failures.clear()


def fail(problem: str, *hints: str, **values) -> NoReturn:
    """Raise ``CheckError`` with ``problem`` (what was expected and what came back) and the hints
    this failure has earned: the first hint at the first time this problem is met in this kernel,
    hint k from the k-th time on. No hint may print the line that solves the exercise."""
    key = (_running[-1] if _running else "", problem)
    _failures[key] += 1
    shown = hints[:_failures[key]]
    lines = [message(problem, **values)]
    for k, hint in enumerate(shown, start=1):
        text = message(hint, **values)
        if len(hints) == 1:
            lines.append(message("Hint: {hint}", hint=text))
        else:
            lines.append(message("Hint {k} of {n}: {hint}", k=k, n=len(hints), hint=text))
    if len(shown) < len(hints):
        lines.append(message("(run the check again after a change for the next hint)"))
    raise CheckError("\n".join(lines))


def passed(template: str, **values) -> CheckPassed:
    """A check's success message, in the current language."""
    return CheckPassed(message(template, **values))


# -- the learner's call ------------------------------------------------------------------------

def learner_check(check: Callable) -> Callable:
    """Decorate every ``check_*``: it runs with torch's and numpy's global random states saved and
    restored (a check seeds its own cases and must not reseed the learner's notebook, which would
    make the cells after it draw other numbers than without the check); a skeleton method that
    torch calls deep inside ``nn.Module.__call__`` gets the friendly skeleton message; and the
    staged hints count failures per check."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        numpy_state = np.random.get_state()
        _running.append(check.__name__)
        try:
            with torch.random.fork_rng(devices=[]):   # devices=[]: the CPU generator; CUDA is untouched
                return check(*args, **kwargs)
        except NotImplementedError as error:
            friendly = _skeleton_method_error(error)
            if friendly is None:
                raise
            raise friendly from None
        finally:
            _running.pop()
            np.random.set_state(numpy_state)
    return run


# NotImplementedError raised in these folders is torch's or the course's own, not the learner's;
# the course's folder is the package's root, wherever this module sits inside it
_LIBRARY_DIRS = tuple(str(Path(m.__file__).parent) + "/" for m in (torch, np))
_COURSE_DIR = str(Path(sys.modules[__package__.partition(".")[0]].__file__).resolve().parent) + "/"


_CORE_FILE = str(Path(__file__))
_CHECKS_DIR = str(Path(__file__).parent) + os.sep


def _skeleton_message(name: str) -> str:
    return message("`{name}` is still the exercise skeleton: replace `raise NotImplementedError` with your "
                   "code, run that cell, then run this check again", name=name)


def _skeleton_method_error(error: NotImplementedError) -> NotImplementedError | None:
    """The friendly skeleton message for a NotImplementedError that the learner's code raised
    outside ``call``: a skeleton method, such as ``forward``, that torch calls from deep inside
    ``nn.Module.__call__``. None when the error came from torch, numpy or the course (or
    ``call`` has already made it friendly)."""
    if getattr(error, "_unet_friendly", False):
        return None
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return None
    filename = str(Path(tb.tb_frame.f_code.co_filename).resolve()).replace("\\", "/")
    if filename.startswith(_LIBRARY_DIRS) or filename.startswith(_COURSE_DIR):
        return None
    name = getattr(tb.tb_frame.f_code, "co_qualname", tb.tb_frame.f_code.co_name)
    return _friendly(name)


def _friendly(name: str) -> NotImplementedError:
    error = NotImplementedError(_skeleton_message(name))
    error._unet_friendly = True
    error._render_traceback_ = lambda: _message_only(error)   # no check source under the message
    return error


def _targets(shortcuts: Mapping[str, object]) -> tuple[dict, dict]:
    """({code object: name}, {id of a callable without Python code: name}) for the shortcuts: a
    function, a method (bound or not), a class (every function defined in its body, and for the
    course's own classes in the bodies of the course's classes it inherits from, such as UNet's
    size helpers: a class is refused by what its methods do), or a builtin (matched by identity)."""
    codes, objects = {}, {}
    for name, target in shortcuts.items():
        members = [target]
        if isinstance(target, type):
            own = target.__module__.partition(".")[0] == __package__.partition(".")[0]
            classes = [c for c in target.__mro__ if c is target or (own and c.__module__ == target.__module__)]
            members = [v for c in classes for v in vars(c).values()
                       if callable(v) or isinstance(v, (staticmethod, classmethod, property))]
            members += [p.fget for p in members if isinstance(p, property) and p.fget is not None]
        for member in members:
            objects[id(member)] = name
            func = getattr(member, "__func__", member)
            while func is not None:
                code = getattr(func, "__code__", None)
                if code is not None:
                    codes[code] = name
                func = getattr(func, "__wrapped__", None)
    return codes, objects


def cached(maxsize: int | None = None) -> Callable:
    """``functools.lru_cache`` for a check's reference helpers, behind a plain Python function: a
    cache hit runs no Python frame of its own, so without this the watch in ``call`` could not see
    a learner's function answering with the check's cached reference."""
    def decorate(helper: Callable) -> Callable:
        cache = functools.lru_cache(maxsize=maxsize)(helper)

        def run(*args, **kwargs):
            return cache(*args, **kwargs)
        # the wrapper's code carries the helper's file and name, so the watch sees the helper itself
        code = run.__code__.replace(co_filename=helper.__code__.co_filename, co_name=helper.__name__,
                                    co_qualname=helper.__qualname__)
        run = types.FunctionType(code, run.__globals__, helper.__name__, None, run.__closure__)
        functools.update_wrapper(run, helper)
        run.cache_clear = cache.cache_clear
        return run
    return decorate


_paused: list[bool] = []   # non-empty while tests build a broken answer from a check's own reference


@contextmanager
def unwatched():
    """For the tests of the checks only: calls made inside this block are not watched, so that a
    deliberately broken answer can be built from a check's own reference helper."""
    _paused.append(True)
    try:
        yield
    finally:
        _paused.pop()


@contextmanager
def _watching(shortcuts: Mapping[str, object], seen: list[str]):
    """Append to ``seen`` the name of every shortcut entered while the block runs, however it is
    reached: by its own name, renamed, imported earlier, through a method or ``module(x)``."""
    codes, objects = _targets(shortcuts)
    previous = sys.getprofile()

    def shortcut(code) -> str | None:
        name = codes.get(code)
        if name is None and code.co_filename.startswith(_CHECKS_DIR) and code.co_filename != _CORE_FILE \
                and "<locals>" not in code.co_qualname:
            # a check's own reference answer (a module-level helper of the checks) is never the
            # learner's; what a check defines inside itself (hooks that spy on the learner's model,
            # lambdas it passes in) runs as part of the check
            name = "unet_lib.checks." + code.co_qualname
        return name

    def inside_a_shortcut(frame) -> bool:
        """Whether a caller of ``frame``, up to ``call``, is itself a shortcut: only the outermost
        shortcut the learner's code entered is named, not the helpers it calls."""
        caller = frame.f_back
        while caller is not None and caller.f_code.co_filename != _CORE_FILE:
            if shortcut(caller.f_code) is not None:
                return True
            caller = caller.f_back
        return False

    def profile(frame, event, arg):
        if _paused:
            name = None
        elif event == "call":
            name = shortcut(frame.f_code)
        elif event == "c_call":
            name = objects.get(id(arg))
        else:
            name = None
        if name is not None and name not in seen and not inside_a_shortcut(frame) \
                and not (event == "c_call" and shortcut(frame.f_code) is not None):
            seen.append(name)
        if previous is not None:
            previous(frame, event, arg)

    # threads the learner's code starts are watched too (a thread pool is not a way around the check)
    previous_threads = threading.getprofile() if hasattr(threading, "getprofile") else None
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)
        threading.setprofile(previous_threads)


def call(fn: Callable, *args, refuse: Mapping[str, object] | None = None, **kwargs):
    """Call the learner's ``fn``. A skeleton's NotImplementedError becomes a message that says what
    to do, without a stack trace from inside the check. ``refuse`` maps a name to a function,
    method, class or builtin that already does the exercise's job: if ``fn`` runs any of them,
    however it reached it, the check fails and says which (after the call, so that the learner's
    own errors come second)."""
    name = getattr(fn, "__name__", repr(fn))
    seen: list[str] = []
    try:
        with _watching(refuse or {}, seen):
            result = fn(*args, **kwargs)
    except NotImplementedError as error:
        if seen:
            _refused(name, seen)
        if getattr(error, "_unet_friendly", False):
            raise
        raise _friendly(name) from None
    except Exception:
        if seen:
            _refused(name, seen)
        raise
    if seen:
        _refused(name, seen)
    return result


def _refused(name: str, seen: list[str]) -> NoReturn:
    fail("`{name}` called {shortcuts}, which already does what this exercise asks you to write",
         "write it yourself from the idea in the text: the check watches what your function runs, "
         "whatever name it has there",
         name=name, shortcuts=", ".join(f"`{s}`" for s in seen))


def check_float32(module: nn.Module, what: str) -> None:
    """A float64 (or half) module fails on the check's float32 inputs deep inside torch; say so."""
    dtypes = sorted({str(p.dtype) for p in module.parameters()} - {"torch.float32"})
    if dtypes:
        fail("{what} has {dtypes} parameters; the inputs here, like images, are torch.float32",
             "leave dtype at its default (do not pass dtype=torch.float64 or call .double() / .half())",
             what=what, dtypes=", ".join(dtypes))


def as_array(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The learner's (H, W) answer as a float numpy array, or a CheckError that says what came back."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        fail("{name} returned a {kind}; expected a numpy array of shape {shape}", "return the (H, W) array itself",
             name=name, kind=type(value).__name__, shape=shape)
    if value.shape != shape:
        fail("{name} returned shape {got}; expected {shape}", "one value per pixel, (H, W)",
             name=name, got=value.shape, shape=shape)
    return value.astype(np.float64)
