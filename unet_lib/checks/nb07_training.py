"""The checks of notebook 07, training: ``check_train_step``, ``check_lr_sweep``."""

import copy
import inspect
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..model import UNet
from ._core import CheckPassed, T, cached, call, fail, learner_check, passed

__all__ = ['check_train_step', 'check_lr_sweep']


def _library():
    """The library's training step and loop (imported late: ``unet_lib`` is loaded by then, and
    the public names stay wherever the training code lives)."""
    import unet_lib
    return unet_lib.train_step, unet_lib.fit


def _step_shortcuts() -> dict:
    """What ``check_train_step`` refuses: the library's step and loop, the helpers of the step's
    module (the library's step copied with ``exec`` still runs them: its forward for training,
    its model and batch checks), and ``inspect.getsource`` (the library's source run as the
    learner's own)."""
    from ..train import step
    reference, fit = _library()
    return {"unet_lib.train_step": reference, "unet_lib.fit": fit,
            "unet_lib.train.step._to_model": step._to_model, "unet_lib.train.step._Padded": step._Padded,
            "unet_lib.train.step._check_model": step._check_model,
            "unet_lib.train.step._check_batch": step._check_batch,
            "inspect.getsource": inspect.getsource}


def _train_step_case():
    """A tiny model with BatchNorm (so that a step run in eval mode gives another loss), two copies
    of it, and one batch of toy cells."""
    from ..data import ToyCells
    torch.manual_seed(0)
    model = UNet(depth=1, base_channels=4, batch_norm=True)
    twin = copy.deepcopy(model)
    data = ToyCells(2, size=32, seed=0, n_cells=(2, 4), radius=(4.0, 7.0))
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("image", "instances", "mask", "weight_map")}
    return model, twin, batch


def _watch_training(model: nn.Module) -> tuple[list, list, list]:
    """Hooks on ``model`` that record what one call of the learner's train_step did: the input
    sizes of every forward pass, and whether backward reached the parameters. Returns (input
    sizes, backward flags, handles to remove)."""
    sizes: list[tuple[int, int]] = []
    backward: list[bool] = []
    handles = [model.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))]
    handles += [p.register_hook(lambda grad: backward.append(True)) for p in model.parameters()]
    return sizes, backward, handles


def _loss_now(model: UNet, batch: dict, weighted: bool = True, training: bool = True) -> float:
    """The loss of ``model`` on ``batch`` as it is now, in training mode (BatchNorm normalises by
    the batch's statistics) or, with ``training=False``, in eval mode (by its running averages);
    a copy runs, so that neither the model nor its BatchNorm statistics change."""
    from ..losses import weighted_cross_entropy
    from ..tiling import padded_forward
    model = copy.deepcopy(model).train(training)
    with torch.no_grad():
        logits = padded_forward(model, batch["image"])
    return weighted_cross_entropy(logits, batch["mask"], batch["weight_map"] if weighted else None).item()


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


@learner_check
def check_train_step(train_step: Callable) -> CheckPassed:
    """``train_step(model, optimizer, batch)`` must do one optimisation step with the paper's
    weighted loss over every pixel of the batch (its images mirror-padded) and return the loss it
    stepped on as a float; compared with the library's ``train_step`` over two steps, on a model
    with BatchNorm given in training mode. The library's ``train_step`` and ``fit`` (however
    reached, also as source run with ``exec``) are refused."""
    reference, _ = _library()
    refuse = _step_shortcuts()
    model, twin, batch = _train_step_case()
    opt, opt_twin = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin))
    h, w = batch["image"].shape[-2:]
    pixels = batch["mask"].numel()
    for step in (1, 2):
        before = copy.deepcopy(model)
        sizes, backward, handles = _watch_training(model)
        try:
            try:
                got = call(train_step, model, opt, batch, refuse=refuse)
            except (ValueError, RuntimeError) as error:
                if (h, w) in sizes:   # the model ran on the unpadded image: its output is smaller than the mask
                    fail("train_step ran the model on the unpadded {h}x{w} image and then raised {kind}: {error}",
                         "a valid-padding U-Net's output is smaller than its input, so its logits do not cover the "
                         "{h}x{w} mask: what did section 2 do so that every pixel gets a prediction?",
                         "padded_forward mirrors the image by the context margin first (do not crop the mask "
                         "instead: the loss must cover every pixel)",
                         h=h, w=w, kind=type(error).__name__, error=str(error).splitlines()[0][:120])
                raise
        finally:
            for handle in handles:
                handle.remove()
        if isinstance(got, torch.Tensor):
            fail("train_step returned a tensor ({got}); expected the loss as a float",
                 "a tensor that came out of the loss keeps the whole graph of the step (every activation) alive "
                 "as long as you keep it: return a Python number",
                 "a one-element tensor's item() gives its Python float", got=repr(got))
        if not isinstance(got, float):
            fail("train_step returned {got!r}; expected the loss as a float",
                 "return the loss of this step as a Python float", got=got)
        if (h, w) in sizes:
            fail("step {step}: train_step ran the model on the unpadded {h}x{w} image, so its loss leaves out the "
                 "pixels near the border (a valid-padding U-Net's output is smaller than its input)",
                 "every pixel of the mask needs a prediction: what did section 2 do to the image first?",
                 "padded_forward mirrors the image by the context margin (do not crop the mask instead: the loss "
                 "must cover every pixel)", step=step, h=h, w=w)
        expected = reference(twin, opt_twin, batch)
        if not _close(got, expected):
            problem = T("step {step}: train_step returned loss {got:.4f}; the library's step gives {expected:.4f}")
            values = dict(step=step, got=got, expected=expected, ratio=got / expected if expected else 0.0,
                          pixels=pixels)
            if _close(got, _loss_now(before, batch, training=False)):
                fail(problem, "that is the loss of the model in eval mode: there BatchNorm normalises by its running "
                              "averages instead of the batch's own statistics. The model came in training mode; a "
                              "training step runs it as it came (and leaves it so)", **values)
            if step == 1 and _close(got, _loss_now(before, batch, weighted=False)):
                fail(problem, "that is the unweighted cross-entropy: the paper's loss weighs every pixel by the "
                              "weight map (Eq. 1), which is what makes the borders between touching cells count",
                     "the batch carries the weight map as batch['weight_map']", **values)
            if _close(got, expected * pixels):
                fail(problem, "your loss is {ratio:.0f} times the library's, the number of pixels in the batch "
                              "({pixels}): you summed Eq. 1 over the pixels. The course averages them, so that the "
                              "size of the loss, and so the right learning rate, does not depend on the tile size",
                     **values)
            if _close(got, _loss_now(model, batch)):
                fail(problem, "that is the loss after the update: train_step returns the loss the step was computed "
                              "from, the one backward ran on (a training curve records where each step started), "
                              "and a second forward pass costs time and moves BatchNorm's running statistics",
                     **values)
            fail(problem, "the loss of a step is Eq. 1 with the batch's weight map, averaged over every pixel of the "
                          "mask, on the model's output for the mirror-padded images, computed before the update",
                 "compare your loss, step by step, with notebook 06's weighted_cross_entropy on the same logits: "
                 "if they agree, the logits differ (the model's input, or its mode)", **values)
        if not model.training:
            fail("step {step}: train_step left the model in eval mode; it came in training mode",
                 "the next step (fit calls train_step once per batch) would then run with BatchNorm's running "
                 "averages: a training step leaves the model's mode as it found it", step=step)
        if len(sizes) > 1:
            fail("step {step}: train_step ran the model {n} times; one step needs one forward pass",
                 "the forward pass whose loss you backpropagate is also the loss to return: run the model once",
                 step=step, n=len(sizes))
        changed = any(not torch.equal(p, q) for p, q in zip(model.parameters(), before.parameters()))
        if not changed:
            grads = [p.grad for p in model.parameters()]
            if backward and all(g is None or not g.any() for g in grads):
                fail("the model's weights did not change: backward ran, but the gradients were zero when the "
                     "optimizer stepped",
                     "clearing the gradients after backward erases the ones just computed: in which order must "
                     "clearing, backward and the update come?")
            if not backward:
                fail("the model's weights did not change, and no gradient reached them",
                     "the gradient of the loss with respect to every weight comes from backpropagation: the loss "
                     "tensor's backward()")
            fail("the model's weights did not change, although their gradients were computed",
                 "the gradients were computed, but nothing applied them to the weights: which object updates "
                 "the weights?", "the optimizer's step() applies the gradients")
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            if not torch.allclose(p, q, atol=1e-5):
                if step == 2:
                    fail("after step 2 the weights ({name}) differ from the library's; after step 1 they agreed",
                         "the second step differs: backward adds the new gradients to the old ones unless they are "
                         "cleared first, so every step must start from zero gradients",
                         "the optimizer's zero_grad() clears them", name=name)
                fail("after step 1 the weights ({name}) differ from the library's",
                     "one backward and one optimizer step per call, on the loss you return", name=name)
    return passed("✓ train_step: same loss and same weights as the library's train_step over two steps")


# -- the learning-rate sweep ---------------------------------------------------------------------

# the check's case: the course design (depth 3, BatchNorm, valid padding) at 4 channels, three
# learning rates across the range, a few steps: cheap, and every plausible mistake shows
_SWEEP_LRS, _SWEEP_STEPS = (1e-4, 1e-2, 1.0), 4


@cached(maxsize=1)
def _sweep_case() -> tuple[UNet, dict]:
    """The check's model and batch (built once per process; the learner gets copies)."""
    torch.manual_seed(0)
    model = UNet(depth=3, base_channels=4, batch_norm=True)
    return model, _train_step_case()[2]


@cached(maxsize=8)
def _sweep_reference(mistake: str | None = None) -> tuple[tuple[float, ...], ...]:
    """The check's own run of the sweep (``mistake=None``), or what a known mistake gives; computed
    once per process."""
    train_step, _ = _library()
    model, batch = _sweep_case()
    model = copy.deepcopy(model)                      # the learner's copy stays as given
    curves = []
    for lr in _SWEEP_LRS:
        run = model if mistake == "one model" else copy.deepcopy(model)
        optimizer = (torch.optim.SGD if mistake == "sgd" else torch.optim.Adam)(run.parameters(), lr=lr)
        curves.append(tuple(train_step(run, optimizer, batch, weighted=mistake != "unweighted")
                            for _ in range(_SWEEP_STEPS)))
    return tuple(curves)


@learner_check
def check_lr_sweep(lr_sweep: Callable) -> CheckPassed:
    """``lr_sweep(model, batch, lrs, steps)`` must train, for each learning rate, the given model's
    weights afresh with Adam for ``steps`` training steps on ``batch``, and return every run's
    losses ([[loss of step 1, ..., loss of step ``steps``] for each lr]), leaving ``model`` as it
    was. Compared with the check's own runs (cached) of the course design at 4 channels;
    ``fit`` is refused (the sweep is the exercise)."""
    _, fit = _library()
    model, batch = _sweep_case()
    given = copy.deepcopy(model)
    state = {k: v.clone() for k, v in given.state_dict().items()}
    lrs, steps = list(_SWEEP_LRS), _SWEEP_STEPS
    got = call(lr_sweep, given, {k: v.clone() for k, v in batch.items()}, list(lrs), steps,
               refuse={"unet_lib.fit": fit})
    if isinstance(got, (torch.Tensor, np.ndarray)):
        got = got.tolist()
    if not isinstance(got, (list, tuple)) or len(got) != len(lrs):
        fail("lr_sweep(model, batch, {lrs}, {steps}) returned {got!r}; expected a list of {n} runs, one per "
             "learning rate", "one entry per learning rate, in the order of lrs", lrs=lrs, steps=steps, got=got,
             n=len(lrs))
    if all(isinstance(run, (int, float, np.floating, torch.Tensor)) and np.ndim(run) == 0 for run in got):
        fail("lr_sweep returned one number per learning rate; expected each run's losses, step by step",
             "a training curve per learning rate: the list of the {steps} losses of its run, so that you can see "
             "how fast (and how steadily) each one falls", steps=steps)
    for lr, run in zip(lrs, got):
        if isinstance(run, (torch.Tensor, np.ndarray)):
            run = run.tolist()
        if not isinstance(run, (list, tuple)):
            fail("the run at lr = {lr:g} is a {kind}; expected a list of {steps} losses",
                 "a training curve per learning rate: the list of the losses of its steps",
                 lr=lr, kind=type(run).__name__, steps=steps)
        if len(run) != steps:
            fail("the run at lr = {lr:g} has {n} losses; {steps} steps give {steps} losses, one per step",
                 "one step too few: your loop stops a step early (or skips recording one), so every curve ends "
                 "one update before the others would" if len(run) == steps - 1 else
                 "one step too many: your loop runs (or records) one more than asked" if len(run) == steps + 1 else
                 "count the steps your loop runs and the losses it records: one loss per step",
                 "a step is one call of the training step, and it returns the loss it stepped on: record that",
                 lr=lr, n=len(run), steps=steps)
        bad = [v for v in run if isinstance(v, bool) or not isinstance(v, (int, float, np.floating))]
        if bad:
            fail("the run at lr = {lr:g} holds {kind} values; expected floats",
                 "record the float of each loss (train_step returns one), not the tensor: a tensor keeps the "
                 "step's graph alive", lr=lr, kind=type(bad[0]).__name__)
    got = tuple(tuple(float(v) for v in run) for run in got)

    def same(a, b) -> bool:
        return all(_close(x, y) for run_a, run_b in zip(a, b) for x, y in zip(run_a, run_b))

    expected = _sweep_reference()
    if not same(got, expected):
        if same(got, _sweep_reference("one model")):
            fail("lr_sweep's runs differ from the check's runs of the same experiment",
                 "each learning rate went on training the model of the one before: the runs do not start from the "
                 "same weights, so the comparison measures the order of the runs, not the learning rates",
                 "every run starts from the weights of the model you were given, and the model you were given "
                 "must still have them when you return: what do you train instead?")
        if same(got, _sweep_reference("sgd")):
            fail("lr_sweep's runs differ from the check's runs of the same experiment",
                 "those are SGD's steps; the question is about the course's optimizer, Adam, whose step size the "
                 "learning rate sets almost directly (section 3)")
        if same(got, _sweep_reference("unweighted")):
            fail("lr_sweep's runs differ from the check's runs of the same experiment",
                 "that is the unweighted loss; train with the course's loss, Eq. 1 with the weight map "
                 "(train_step's default)")
        first = next((i, t) for i, (run, ref) in enumerate(zip(got, expected)) for t, (x, y) in
                     enumerate(zip(run, ref)) if not _close(x, y))
        lr, t = lrs[first[0]], first[1] + 1
        if t == 1:
            fail("at lr = {lr:g} the loss of step 1 already differs from the check's run",
                 "the first loss depends only on the starting weights and the loss function: does every run start "
                 "from the weights of the model you were given, with the course's weighted loss?",
                 "the first step's loss is computed before any update: if it differs, the start differs (another "
                 "model, other weights, eval mode, another loss)", lr=lr)
        fail("at lr = {lr:g} your losses agree with the check's run up to step {before} and differ from step {t} on",
             "the start is right, the updates are not: the optimizer (Adam, with this learning rate) and the "
             "weights it updates",
             "an optimizer holds the parameters it updates and keeps state between steps (Adam's running "
             "averages of the gradients): which parameters does this run's optimizer update, and what state "
             "does it start with?", lr=lr, t=t, before=t - 1)
    if any(not torch.equal(v, given.state_dict()[k]) for k, v in state.items()):
        fail("lr_sweep changed the model it was given (its weights or BatchNorm's running statistics)",
             "a sweep measures: the model you pass in is the common start of every run, and the caller may "
             "need it afterwards; train copies of it",
             "Python's copy module makes deep copies: new tensors with the same values, weights and BatchNorm "
             "statistics alike")
    return passed("✓ lr_sweep matches the check's own runs ({n} learning rates, {steps} Adam steps each, every run "
                  "from the weights it was given) and leaves the model as it was", n=len(lrs), steps=steps)
