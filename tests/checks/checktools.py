"""What the check tests share: a skeleton like the exercise edition's, and the two assertions
every check's tests make (it passes a right answer; a skeleton gets the friendly message)."""

import functools

import pytest

from unet_lib.checks import CheckPassed
from unet_lib.checks._core import unwatched


def skeleton(name: str):
    """A function like the exercise edition's skeleton of ``name``."""
    def fn(*args):
        raise NotImplementedError(f"Exercise `{name}`: replace this line with your code")
    fn.__name__ = fn.__qualname__ = name
    return fn


def assert_passes(check, answer) -> None:
    result = check(answer)
    assert isinstance(result, CheckPassed) and result.startswith("✓")
    assert repr(result) == str(result)   # shows without quotes in a notebook


def assert_skeleton_is_friendly(check, name: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"^`{name}` is still the exercise skeleton: replace "
                                                  r"`raise NotImplementedError` with your code"):
        check(skeleton(name))


def reference(helper):
    """``helper`` (a check's own reference, which every check refuses when an answer calls it)
    made usable as a building block of a deliberately broken answer in a test."""
    @functools.wraps(helper)
    def run(*args, **kwargs):
        with unwatched():
            return helper(*args, **kwargs)
    return run
