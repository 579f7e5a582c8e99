"""Tests for unet_lib.checks.nb04_skip_connections_and_full_unet: ``check_output_size``,
``check_unet_forward``, ``check_valid_sizes`` both ways.

Each check passes a correct answer worked out here and fails deliberately broken versions, and
the library's shortcuts, with the intended message."""

import functools
import inspect
import textwrap

import pytest
import torch
import torch.nn.functional as F
from checktools import assert_passes, assert_skeleton_is_friendly, reference

import unet_lib.model
from unet_lib import UNet
from unet_lib.checks import CheckError, check_output_size, check_unet_forward, check_valid_sizes
from unet_lib.checks import nb04_skip_connections_and_full_unet as nb04
from unet_lib.tiling import _input_for, _valid_margin, context_margin

REFUSED = r"called {names}, which already does what this exercise asks you to write\nHint: write it yourself"


def refused(*names: str) -> str:
    return REFUSED.format(names=", ".join(rf"`{name}`" for name in names))


# -- output_size ---------------------------------------------------------------------------------

def by_formula(n: int, depth: int, check_valid: bool = True, shrink: int = 4, up: bool = True,
               multiple_of_4: bool = False) -> int | None:
    """A valid-padding U-Net's output size from its arithmetic; the mistakes switched on by the arguments."""
    if multiple_of_4 and n % 4:
        return None
    n -= shrink
    for _ in range(depth):
        if check_valid and (n < 2 or n % 2):
            return None
        n = n // 2 - shrink
    if check_valid and n < 1:
        return None
    for _ in range(depth if up else 0):
        n = 2 * n - shrink
        if check_valid and n < 1:
            return None
    return n


@functools.cache
def _unet(depth: int) -> UNet:
    return UNet(depth=depth, base_channels=1)


def test_output_size_by_hand():
    # depth 1, 20 px: 20 - 4 = 16, pool 8, 8 - 4 = 4, up 8, 8 - 4 = 4
    assert by_formula(20, 1) == _unet(1).output_size(20) == 4
    # 13 - 4 = 9 is odd: the max-pool cannot halve it
    assert by_formula(13, 1) is None
    assert by_formula(572, 4) == 388   # the paper's Fig. 1
    assert [n for n in range(1, 300) if by_formula(n, 2) is not None] == _unet(2).valid_input_sizes(1, 299)


def test_check_output_size_passes_the_arithmetic():
    assert_passes(check_output_size, by_formula)
    assert_skeleton_is_friendly(check_output_size, "output_size")


def by_the_model(n, depth):
    try:
        return UNet(depth=depth, base_channels=1).output_size(n)
    except ValueError:
        return None


def by_running_the_model(n, depth):
    try:
        with torch.no_grad():
            return _unet(depth)(torch.zeros(1, 1, n, n)).shape[-1]
    except ValueError:
        return None


def by_the_margin(n, depth):
    out = n - 2 * context_margin(UNet(depth=depth, base_channels=1))
    return out if by_formula(n, depth) is not None else None


def by_the_valid_sizes(n, depth):
    model = UNet(depth=depth, base_channels=1)
    return by_formula(n, depth) if n in model.valid_input_sizes(1, 300) else None


def by_the_cached_margin(n, depth):
    """The library's private margin, cached before the check runs: a cached answer runs no code."""
    out = n - 2 * _valid_margin(depth)
    return out if by_formula(n, depth) is not None else None


def raises_for_invalid(n, depth):
    out = by_formula(n, depth)
    if out is None:
        raise ValueError(f"input size {n} is not valid")
    return out


def by_exec_of_the_source(n, depth):
    """The library's arithmetic read with inspect.getsource and run as the learner's own code."""
    namespace = {}
    exec(textwrap.dedent(inspect.getsource(unet_lib.model._output_side)), {}, namespace)
    return namespace["_output_side"](n, depth, "valid")


BROKEN_OUTPUT_SIZE = {
    "UNet.output_size (refused)": (by_the_model, refused("UNet.output_size")),
    # model(x) runs UNet.forward, and whatever size check it calls: both are named
    "model(x) (refused)": (by_running_the_model, r"called `UNet.forward`.*, which already does what this exercise"),
    "context_margin (refused)": (by_the_margin, refused("context_margin")),
    "valid_input_sizes (refused)": (by_the_valid_sizes, refused("UNet.valid_input_sizes")),
    "no validity check": (lambda n, depth: by_formula(n, depth, check_valid=False),
                          r"output_size\(1, depth=1\) = -16, but 1 is not a valid input size\n"
                          r"Hint 1 of 2: a 2x2 max-pool halves a size only when it is even"),
    "2 pixels per DoubleConv (one side only)": (lambda n, depth: by_formula(n, depth, shrink=2),
                                                r"output_size\(18, depth=1\) = 10; expected 2\n"
                                                r"Hint 1 of 2: each DoubleConv removes 4 pixels"),
    "UNet._output_side (refused)": (lambda n, depth: _unet(depth)._output_side(n, "input size"),
                                    refused("UNet._output_side")),
    "unet_lib.model._output_side (refused)": (lambda n, depth: unet_lib.model._output_side(n, depth, "valid"),
                                              refused("unet_lib.model._output_side")),
    "renamed _output_side (refused)": (lambda n, depth: (lambda f: f(n, depth, "valid"))(unet_lib.model._output_side),
                                       refused("unet_lib.model._output_side")),
    "_valid_margin, cached (refused)": (by_the_cached_margin, refused("unet_lib.tiling._valid_margin")),
    "exec of inspect.getsource (refused)": (by_exec_of_the_source, refused("inspect.getsource")),
    "raises instead of None": (raises_for_invalid,
                               r"output_size\(1, depth=1\) raised ValueError: input size 1 is not valid\n"
                               r"Hint: return None where the input size is not valid"),
    "a bug that raises": (lambda n, depth: [n][depth],
                          r"output_size\(18, depth=1\) raised IndexError: list index out of range\n"
                          r"Hint: run your function on this size and depth yourself"),
    "contracting path only": (lambda n, depth: by_formula(n, depth, up=False),
                              r"output_size\(18, depth=1\) = 3; expected 2"),
    "a condition the U does not need": (lambda n, depth: by_formula(n, depth, multiple_of_4=True),
                                        r"output_size\(18, depth=1\) = None, but 18 is a valid input size \(its "
                                        r"output has 2 pixels\)\nHint: only two things make a size invalid"),
    "a string": (lambda n, depth: None if by_formula(n, depth) is None else str(by_formula(n, depth)),
                 r"output_size\(18, depth=1\) returned '2' \(str\); expected the int 2"),
}


@pytest.mark.parametrize("answer, match", BROKEN_OUTPUT_SIZE.values(), ids=BROKEN_OUTPUT_SIZE.keys())
def test_check_output_size_fails_a_broken_answer(answer, match):
    _valid_margin(1), _valid_margin(2), _valid_margin(4)   # cached, as after the library has run
    with pytest.raises(CheckError, match=match):
        check_output_size(answer)


def test_check_output_size_hints_in_stages():
    wrong = lambda n, depth: by_formula(n, depth, shrink=2)   # noqa: E731
    with pytest.raises(CheckError) as first:
        check_output_size(wrong)
    with pytest.raises(CheckError) as second:
        check_output_size(wrong)
    assert "Hint 2 of 2" not in str(first.value) and "Hint 2 of 2: the up-convolution doubles" in str(second.value)


# -- unet_forward ----------------------------------------------------------------------------------

def unet_forward_by_hand(model, x, mistake=None):
    x = model.inc(x)
    skips = []
    for down in model.downs:
        if mistake != "skip after down":
            skips.append(x)
        x = down(x)
        if mistake == "skip after down":
            skips.append(x)
    if mistake == "drop-out left on":
        x = F.dropout(x, 0.5)                       # training=True: random at every call
    order = skips if mistake == "skips not reversed" else list(reversed(skips))
    for k, up in enumerate(model.ups):
        skip = skips[len(skips) - k] if mistake == "index one past the end" else order[k]
        x = up(x, skip)
    return x if mistake == "no outc" else model.outc(x)


def by_exec_of_forward(model, x):
    """UNet.forward's source read with inspect.getsource and run as the learner's own function."""
    namespace = {}
    exec(textwrap.dedent(inspect.getsource(UNet.forward)), vars(unet_lib.model), namespace)
    return namespace["forward"](model, x)


def test_check_unet_forward_passes_the_blocks_in_a_u():
    assert_passes(check_unet_forward, unet_forward_by_hand)
    assert_skeleton_is_friendly(check_unet_forward, "unet_forward")


def test_check_unet_forward_allows_up_blocks_called_as_modules():
    from unet_lib import Up

    def with_up_forward(model, x):   # Up.forward by its class-level name: allowed here (it is notebook 03's)
        x, skips = model.inc(x), []
        for down in model.downs:
            skips.append(x)
            x = down(x)
        for up, skip in zip(model.ups, reversed(skips)):
            x = Up.forward(up, x, skip)
        return model.outc(x)

    assert_passes(check_unet_forward, with_up_forward)


BROKEN_UNET_FORWARD = {
    "model(x) (refused)": (lambda m, x: m(x), refused("UNet.forward")),
    "model.forward(x) (refused)": (lambda m, x: m.forward(x), refused("UNet.forward")),
    "UNet.forward(model, x) (refused)": (lambda m, x: UNet.forward(m, x), refused("UNet.forward")),
    "renamed (refused)": (lambda m, x: (lambda f: f(m, x))(UNet.forward), refused("UNet.forward")),
    "exec of inspect.getsource (refused)": (by_exec_of_forward, refused("inspect.getsource")),
    "no outc": (lambda m, x: unet_forward_by_hand(m, x, "no outc"),
                r"has shape .*\nHint: finish with model.outc"),
    "skips not reversed": (lambda m, x: unet_forward_by_hand(m, x, "skips not reversed"),
                           r"raised RuntimeError: .*\nHint 1 of 2: a skip and the map coming up meet in the wrong "
                           r"level"),
    "skip after down": (lambda m, x: unet_forward_by_hand(m, x, "skip after down"),
                        r"raised ValueError: .*\nHint 1 of 2: a skip and the map"),
    "a list": (lambda m, x: [unet_forward_by_hand(m, x)], r"returned a list\nHint: return the class scores"),
    "the output shifted": (lambda m, x: unet_forward_by_hand(m, x) + 0.1,
                           r"right shape but different values from model\(x\)\nHint 1 of 2: the sizes fit, so every "
                           r"block ran, but some map met the wrong partner, or an operation that UNet.forward does "
                           r"not have changed the values"),
    "index one past the end": (lambda m, x: unet_forward_by_hand(m, x, "index one past the end"),
                               r"raised IndexError: list index out of range\nHint: a U-Net of depth d has d down "
                               r"blocks, d up blocks and so d skips"),
    "softmax on the logits": (lambda m, x: unet_forward_by_hand(m, x).softmax(1),
                              r"returns model\(x\) passed through a softmax\nHint: model\(x\) returns the raw class "
                              r"scores \(logits\): the softmax belongs to the loss"),
    "ReLU on the logits": (lambda m, x: F.relu(unet_forward_by_hand(m, x)),
                           r"returns model\(x\) passed through a ReLU\nHint: .*\(section 5.2\)"),
    "drop-out left on": (lambda m, x: unet_forward_by_hand(m, x, "drop-out left on"),
                         r"gives other values at every call with the same input\nHint: something random runs"),
    "another error": (lambda m, x: unet_forward_by_hand(m, x.numpy()),
                      r"raised TypeError: .*\nHint: run your function yourself on a model of this configuration"),
}


@pytest.mark.parametrize("answer, match", BROKEN_UNET_FORWARD.values(), ids=BROKEN_UNET_FORWARD.keys())
def test_check_unet_forward_fails_a_broken_forward(answer, match):
    with pytest.raises(CheckError, match=match):
        check_unet_forward(answer)


def test_check_unet_forward_never_prints_the_loop():
    for _ in range(3):   # every stage of every hint
        for answer, _match in BROKEN_UNET_FORWARD.values():
            with pytest.raises(CheckError) as info:
                check_unet_forward(answer)
            text = str(info.value)
            assert "zip(" not in text and "reversed(" not in text and "= up(" not in text


# -- valid_sizes -----------------------------------------------------------------------------------

def valid_sizes_by_trying(model, lo, hi, even=True, first_pool_only=False, down_only=False, channels=None,
                          stop=None, catch=True):
    """Run the model's blocks on n x n zeros for every n in the range; the mistakes switched on by
    the arguments."""
    sizes = []
    for n in range(lo, (hi + 1) if stop is None else stop):
        x = torch.zeros(1, model.in_channels if channels is None else channels, n, n)
        try:
            with torch.no_grad():
                x, skips = model.inc(x), []
                for k, down in enumerate(model.downs):
                    if even and x.shape[-1] % 2 and (k == 0 or not first_pool_only):
                        raise ValueError("odd")
                    skips.append(x)
                    x = down(x)
                if not down_only:
                    for up, skip in zip(model.ups, reversed(skips)):
                        x = up(x, skip)
        except (RuntimeError, ValueError):
            if not catch:
                raise
            continue
        sizes.append(n)
    return sizes


def test_the_blocks_agree_with_the_library_on_the_checks_cases():
    for config in [dict(depth=1), dict(depth=3), dict(in_channels=3, depth=2), dict(depth=3, padding="same"),
                   dict(depth=2, upsampling="bilinear")]:
        model = UNet(base_channels=1, **config).eval()
        assert [n for n in range(1, 131) if reference(nb04._blocks_accept)(model, n)] == model.valid_input_sizes(1, 130)


def test_check_valid_sizes_passes_the_blocks():
    result = check_valid_sizes(valid_sizes_by_trying)
    assert_passes(check_valid_sizes, valid_sizes_by_trying)
    assert "smallest" not in result   # the notebook asks the learner to predict the smallest sizes next
    assert_skeleton_is_friendly(check_valid_sizes, "valid_sizes")


def by_arithmetic(model, lo, hi):
    """The valid sizes from arithmetic derived for any padding: also a right answer."""
    shrink = 4 if model.padding == "valid" else 0
    sizes = []
    for n in range(lo, hi + 1):
        m, ok = n - shrink, True
        for _ in range(model.depth):
            ok = ok and m >= 2 and m % 2 == 0
            m = m // 2 - shrink
        ok = ok and m >= 1
        for _ in range(model.depth):
            m = 2 * m - shrink
            ok = ok and m >= 1
        if ok:
            sizes.append(n)
    return sizes


def test_check_valid_sizes_passes_derived_arithmetic():
    assert_passes(check_valid_sizes, by_arithmetic)


def by_model_call(model, lo, hi):
    sizes = []
    for n in range(lo, hi + 1):
        try:
            with torch.no_grad():
                model(torch.zeros(1, model.in_channels, n, n))
        except ValueError:
            continue
        sizes.append(n)
    return sizes


def _raises(fn, *args) -> bool:
    try:
        fn(*args)
    except ValueError:
        return True
    return False


def valid_padding_formula(model, lo, hi):
    """The valid-padding arithmetic, whatever the model's padding."""
    return by_arithmetic(UNet(depth=model.depth, base_channels=1), lo, hi)


BROKEN_VALID_SIZES = {
    "model(x) (refused)": (by_model_call, r"called `UNet.forward`.*, which already does what this exercise"),
    "valid_input_sizes (refused)": (lambda m, lo, hi: m.valid_input_sizes(lo, hi), refused("UNet.valid_input_sizes")),
    "min_input_size (refused)": (lambda m, lo, hi: [n for n in range(lo, hi + 1) if n >= m.min_input_size()
                                                     and (n - m.min_input_size()) % 2**m.depth == 0],
                                 refused("UNet.min_input_size")),
    "errors only, no even check": (lambda m, lo, hi: valid_sizes_by_trying(m, lo, hi, even=False),
                                   r"depth=1.* lists 19, but an input of 19 x 19 pixels sends a map of odd size 15 into a "
                                   r"max-pool\nHint 1 of 2: the paper, Sec. 2"),
    "only the first max-pool checked": (lambda m, lo, hi: valid_sizes_by_trying(m, lo, hi, first_pool_only=True),
                                        r"depth=3.* lists 94, but an input of 94 x 94 pixels sends a map of odd size 41 into a max-pool"),
    "contracting path only": (lambda m, lo, hi: valid_sizes_by_trying(m, lo, hi, down_only=True),
                              r"depth=1.* lists 14, but for an input of 14 x 14 pixels the way up runs out of pixels\n"
                              r"Hint: run the whole U"),
    "range(lo, hi)": (lambda m, lo, hi: valid_sizes_by_trying(m, lo, hi, stop=hi),
                      r"lo=10, hi=30\) misses 30, the last size of the range\nHint: the range includes both ends"),
    "one input channel": (lambda m, lo, hi: valid_sizes_by_trying(m, lo, hi, channels=1),
                          r"in_channels=3.* found no valid size, but the model accepts 3 sizes in this range\n"
                          r"Hint: the model takes model.in_channels = 3 channels"),
    "errors not caught": (lambda m, lo, hi: valid_sizes_by_trying(m, lo, hi, catch=False),
                          r"raised RuntimeError: .*\nHint: on a size that is far too small a block fails"),
    "valid padding's arithmetic on a same-padding model": (
        valid_padding_formula, r"padding='same'\), lo=1, hi=24\) found no valid size.*\n"
                               r"Hint: this model pads its convolutions"),
    "_valid_sizes_rule (refused)": (lambda m, lo, hi: (lambda first, step: [n for n in range(lo, hi + 1) if n >= first
                                                                             and (n - first) % step == 0])(
                                        *unet_lib.model._valid_sizes_rule(m.depth, m.padding)),
                                    refused("unet_lib.model._valid_sizes_rule")),
    "_input_for (refused)": (lambda m, lo, hi: sorted({_input_for(m, out)[0] for out in range(1, hi)} & set(range(lo, hi + 1))),
                             refused("unet_lib.tiling._input_for")),
    "UNet._check_input (refused)": (lambda m, lo, hi: [n for n in range(lo, hi + 1)
                                                       if not _raises(m._check_input, torch.zeros(1, m.in_channels, n, n))],
                                    refused("UNet._check_input")),
    "the paper's rule, 16k + 12 from 188": (lambda m, lo, hi: [n for n in range(lo, hi + 1) if n >= 188 and n % 16 == 12],
                                            r"depth=1, .* found no valid size, but the model accepts 7 sizes in this range\n"
                                            r"Hint: if your function runs the blocks, .* If it computes a rule, walk one "
                                            r"size through this model by hand"),
    "a bug that raises": (lambda m, lo, hi: [n for n in range(lo, hi + 1)][hi],
                          r"raised IndexError: .*\nHint: run your function yourself on this model and range"),
    "booleans": (lambda m, lo, hi: [reference(nb04._blocks_accept)(m, n) for n in range(lo, hi + 1)],
                 r"returned booleans; expected the sizes n themselves"),
    "a number": (lambda m, lo, hi: len(valid_sizes_by_trying(m, lo, hi)), r"returned 7; expected a list of ints"),
}


@pytest.mark.parametrize("answer, match", BROKEN_VALID_SIZES.values(), ids=BROKEN_VALID_SIZES.keys())
def test_check_valid_sizes_names_the_mistake(answer, match):
    with pytest.raises(CheckError, match=match):
        check_valid_sizes(answer)
