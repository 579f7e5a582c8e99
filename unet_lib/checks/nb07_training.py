"""The checks of notebook 07, training: ``check_train_step``, ``check_lr_sweep``."""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..model import UNet
from ._core import CheckPassed, call, fail, learner_check

__all__ = ['check_train_step', 'check_lr_sweep']


def _train_step_case():
    """A tiny model, two copies of it with SGD, and one batch of toy cells."""
    import copy

    from ..data import ToyCells
    torch.manual_seed(0)
    model = UNet(depth=1, base_channels=4)
    twin = copy.deepcopy(model)
    data = ToyCells(2, size=32, seed=0, n_cells=(2, 4), radius=(4.0, 7.0))
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("image", "instances", "mask", "weight_map")}
    return model, twin, batch


def _watch_training(model: nn.Module) -> tuple[list, list, list]:
    """Hooks on ``model`` that record what one call of the learner's train_step did: the input
    sizes the model ran on, and whether backward reached the parameters. Returns (input sizes,
    backward flags, handles to remove)."""
    sizes: list[tuple[int, int]] = []
    backward: list[bool] = []
    handles = [model.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))]
    handles += [p.register_hook(lambda grad: backward.append(True)) for p in model.parameters()]
    return sizes, backward, handles


@learner_check
def check_train_step(train_step: Callable) -> CheckPassed:
    """``train_step(model, optimizer, batch)`` must do one optimisation step with the paper's
    weighted loss on the mirror-padded batch and return the loss as a float; compared with
    ``unet_lib.train.train_step`` over two steps."""
    from ..train import train_step as reference
    model, twin, batch = _train_step_case()
    opt, opt_twin = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin))
    h, w = batch["image"].shape[-2:]
    unpadded_hint = ("logits = padded_forward(model, batch['image']): it mirror-pads the image by the context "
                     "margin, so that every pixel of the mask gets a prediction (do not crop the mask instead: "
                     "the loss must cover every pixel)")
    for step in (1, 2):
        sizes, backward, handles = _watch_training(model)
        try:
            try:
                got = call(train_step, model, opt, batch)
            except (ValueError, RuntimeError) as error:
                if (h, w) in sizes:   # the model ran on the unpadded image: its output is smaller than the mask
                    fail(f"train_step ran the model on the unpadded {h}x{w} image; a valid-padding U-Net's "
                          f"output is smaller than its input, so the logits do not cover the {h}x{w} mask "
                          f"({type(error).__name__}: {str(error).splitlines()[0][:120]})", unpadded_hint)
                raise
        finally:
            for handle in handles:
                handle.remove()
        expected = reference(twin, opt_twin, batch)
        unweighted = reference(_train_step_case()[0], torch.optim.SGD([torch.zeros(1)], lr=0.0), batch, False) \
            if step == 1 else None
        if isinstance(got, torch.Tensor):
            fail(f"train_step returned a tensor ({got!r}); expected a float",
                  "return loss.item(): a float, and no reference to the graph that holds every activation")
        if not isinstance(got, float):
            fail(f"train_step returned {got!r}; expected the loss as a float", "return loss.item()")
        if (h, w) in sizes:
            fail(f"step {step}: train_step ran the model on the unpadded {h}x{w} image, so its loss leaves out "
                  f"the pixels near the border (a valid-padding U-Net's output is smaller than its input)",
                  unpadded_hint)
        if abs(got - expected) > 1e-4 * max(1.0, abs(expected)):
            if unweighted is not None and abs(got - unweighted) < 1e-4 * max(1.0, abs(unweighted)):
                fail(f"step {step}: loss {got:.4f} is the unweighted cross-entropy; expected {expected:.4f}",
                      "pass batch['weight_map'] to weighted_cross_entropy: the weight map is the point")
            fail(f"step {step}: train_step returned loss {got:.4f}; expected {expected:.4f}",
                  "logits = padded_forward(model, batch['image']); loss = weighted_cross_entropy(logits, "
                  "batch['mask'], batch['weight_map']); return the loss computed before the update")
        changed = any(not torch.equal(p, q) for p, q in zip(model.parameters(), _train_step_case()[0].parameters()))
        if not changed:
            grads = [p.grad for p in model.parameters()]
            if backward and all(g is None or not g.any() for g in grads):
                fail("the model's weights did not change: loss.backward() ran, but the gradients were zero "
                      "when optimizer.step() came",
                      "optimizer.zero_grad() after loss.backward() erases the gradients just computed, so "
                      "step has nothing to do: call zero_grad() first, then backward(), then step()")
            if not backward:
                fail("the model's weights did not change, and no gradient reached them",
                      "call loss.backward() on the loss, then optimizer.step()")
            fail("the model's weights did not change", "call optimizer.step() after loss.backward()")
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            if not torch.allclose(p, q, atol=1e-5):
                hint = ("the second step differs: gradients add up across steps unless you call "
                        "optimizer.zero_grad() before loss.backward()" if step == 2 else
                        "one backward and one optimizer.step() per call, on the loss you return")
                fail(f"after step {step} the weights ({name}) differ from the library's", hint)
    return CheckPassed("✓ train_step: same loss and same weights as unet_lib.train.train_step over two steps")


def _lr_sweep_reference(lrs, batch, steps: int, seed: int, mistake: str | None = None) -> list[float]:
    """What ``lr_sweep`` must return (``mistake=None``), or what a known mistake returns."""
    from ..train import train_step
    losses = []
    model = None
    if mistake == "seed once":
        torch.manual_seed(seed)
    for lr in lrs:
        if mistake == "seed once":
            model = UNet(**_LR_SWEEP_MODEL)
        elif model is None or mistake != "one model":
            torch.manual_seed(seed)
            model = UNet(**_LR_SWEEP_MODEL)
        optimizer = (torch.optim.SGD if mistake == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
        step_losses = [train_step(model, optimizer, batch, weighted=mistake != "unweighted") for _ in range(steps)]
        losses.append(step_losses[0] if mistake == "first loss" else step_losses[-1])
    return losses


# the tiny model of the learning-rate exercise (notebook 07): the course model's design, 4 channels
_LR_SWEEP_MODEL = dict(depth=1, base_channels=4, batch_norm=True)


@learner_check
def check_lr_sweep(lr_sweep: Callable) -> CheckPassed:
    """``lr_sweep(lrs, batch, steps, seed)`` must train, for each learning rate, a fresh
    ``UNet(depth=1, base_channels=4, batch_norm=True)`` built right after ``torch.manual_seed(seed)``
    with Adam for ``steps`` calls of ``train_step`` on ``batch``, and return the loss of each run's
    last step. Compared with the check's own runs (within 1e-3, relative): too small, good and too
    large learning rates."""
    _, _, batch = _train_step_case()
    lrs, steps, seed = (1e-5, 0.1, 10.0), 6, 3
    torch.manual_seed(12345)   # a learner who does not seed gets other weights, the same every time
    got = call(lr_sweep, list(lrs), batch, steps, seed)
    if isinstance(got, (torch.Tensor, np.ndarray)):
        got = got.tolist()
    if not isinstance(got, (list, tuple)) or len(got) != len(lrs):
        fail(f"lr_sweep({list(lrs)}, batch, {steps}, {seed}) returned {got!r}; expected a list of {len(lrs)} floats",
              "one loss per learning rate, in the order of lrs")
    if not all(isinstance(v, (int, float, np.floating)) for v in got):
        fail(f"lr_sweep returned {got!r}; expected floats",
              "record the float that train_step returns (or loss.item()), not the tensor")
    expected = _lr_sweep_reference(lrs, batch, steps, seed)

    def same(a, b) -> bool:
        return all(abs(x - y) <= 1e-3 * max(1.0, abs(y)) for x, y in zip(a, b))

    if same(got, expected):
        start = _lr_sweep_reference(lrs[:1], batch, 1, seed)[0]   # the loss before any update
        seen = []
        if abs(got[0] - start) < 0.01 * start:
            seen.append(f"lr = {lrs[0]:g} moves the loss by less than 1%")
        if got[1] < 0.5 * start:
            seen.append(f"lr = {lrs[1]:g} more than halves it")
        if got[2] > got[1]:
            seen.append(f"lr = {lrs[2]:g} ends higher than lr = {lrs[1]:g}")
        return CheckPassed(f"✓ lr_sweep matches the check's own runs ({steps} Adam steps from the same weights at "
                           f"lr = {', '.join(f'{lr:g}' for lr in lrs)})" + (": " + "; ".join(seen) if seen else ""))
    shown = ", ".join(f"{v:.4f}" for v in got)
    wanted = ", ".join(f"{v:.4f}" for v in expected)
    problem = f"lr_sweep({list(lrs)}, batch, steps={steps}, seed={seed}) = [{shown}]; expected [{wanted}]"
    hints = {
        "first loss": "these are the losses of the first step, before any update: return the loss of the last step",
        "one model": ("each learning rate continued training the previous one's model: build a fresh model for "
                      "every learning rate (torch.manual_seed(seed), then UNet(...), inside the loop)"),
        "seed once": ("only the first model starts from the seed's weights: call torch.manual_seed(seed) inside the "
                      "loop, right before building each model, so that every learning rate starts from the same "
                      "weights (otherwise you compare initialisations, not learning rates)"),
        "sgd": "use torch.optim.Adam(model.parameters(), lr=lr): the course trains with Adam",
        "unweighted": "use the weighted loss (train_step's default, or weighted_cross_entropy with batch['weight_map'])",
    }
    for mistake, hint in hints.items():
        if same(got, _lr_sweep_reference(lrs, batch, steps, seed, mistake)):
            fail(problem, hint)
    if abs(got[0] - expected[0]) > 1e-3 * max(1.0, abs(expected[0])):
        hint = (f"the first run already differs: torch.manual_seed(seed) right before "
                f"UNet(depth=1, base_channels=4, batch_norm=True), Adam with lr, then {steps} train_step calls "
                f"on batch; return the last loss")
    else:
        hint = "a new model, after torch.manual_seed(seed), and a new Adam optimizer for every learning rate"
    fail(problem, hint)
