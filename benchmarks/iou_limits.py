"""What limits the course model's foreground IoU: training time, or the noise in the toy images?

Trains the course model (unet_lib.train.COURSE_MODEL) with the course recipe (COURSE_TRAIN on
course_data's tiles) while changing one thing at a time, and scores each run on held-out toy
cells drawn with the same noise (ToyCells(32, seed=2000, noise=...)):

* more epochs at the course's noise (0.06): does longer training close the gap to IoU 0.95?
* less image noise (0.03, 0.0) at the course's 18 epochs: how much of the gap is the data?

Each row also says where the wrong pixels are: within 3 px of a contact between two cells, or
elsewhere (outer outlines). About 1 minute per 18 epochs on a 2-core CPU; the default rows take
about 6 minutes.

    .venv/bin/python benchmarks/iou_limits.py [--rows 18:0.06 54:0.06 18:0.03 18:0.0]
"""

import argparse
import dataclasses

import numpy as np
import torch
from scipy import ndimage

from unet_lib import UNet
from unet_lib.data import ToyCells
from unet_lib.tiling import padded_forward
from unet_lib.train import COURSE_MODEL, COURSE_TRAIN, course_data, evaluate, fit


def train(epochs: int, noise: float) -> tuple[UNet, float]:
    """The course recipe with ``epochs`` and image ``noise``; returns the model and its seconds."""
    train_data, val_data = course_data(noise=noise)
    torch.manual_seed(0)
    model = UNet(**COURSE_MODEL)
    config = dataclasses.replace(COURSE_TRAIN, epochs=epochs, progress=False)
    history = fit(model, train_data, val_data, config)
    return model, history["seconds"][-1]


@torch.no_grad()
def where_wrong(model: UNet, data: ToyCells) -> tuple[int, int, int]:
    """(wrong pixels within 3 px of a contact, wrong pixels elsewhere, pixels in the union)."""
    near = elsewhere = union = 0
    for i in range(len(data)):
        sample = data[i]
        pred = padded_forward(model.eval(), sample["image"][None]).argmax(1)[0].numpy() == 1
        mask, instances = sample["mask"].numpy() == 1, sample["instances"].numpy()
        contact = ndimage.binary_dilation((instances > 0) & ~mask, iterations=3)   # the separating lines
        wrong = pred != mask
        near += int((wrong & contact).sum())
        elsewhere += int((wrong & ~contact).sum())
        union += int((pred | mask).sum())
    return near, elsewhere, union


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["18:0.06", "54:0.06", "18:0.03", "18:0.0"],
                        help="epochs:noise pairs; the course recipe is 18:0.06")
    args = parser.parse_args()
    print(f"{'epochs':>6} {'noise':>6} {'seconds':>8} {'IoU':>6} {'F1':>6} {'wrong near contacts':>20} "
          f"{'wrong elsewhere':>16}")
    for row in args.rows:
        epochs, noise = int(row.split(":")[0]), float(row.split(":")[1])
        model, seconds = train(epochs, noise)
        test = ToyCells(32, noise=noise, seed=2000)
        scores = evaluate(model, test)
        near, elsewhere, union = where_wrong(model, test)
        print(f"{epochs:>6} {noise:>6.2f} {seconds:>8.0f} {scores['iou']:>6.3f} {scores['f1']:>6.3f} "
              f"{near / union:>19.1%} {elsewhere / union:>16.1%}", flush=True)
    print("wrong pixels as a share of the union of predicted and true foreground (1 - IoU = their sum)")


if __name__ == "__main__":
    main()
