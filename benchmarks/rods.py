"""A dataset unlike the course's: dark rods, sparse, on a bright uneven background (phase-contrast-like).

H, W = height, width.

The course's data are bright roundish cells that fill a quarter of the image. Bacteria in phase
contrast are the opposite on every count, and the own-images path met them (#21): dark rods
(about 6 px wide, 12-30 px long) covering under 2% of the image, alone or packed side by side in
small colonies, each with the bright halo that phase contrast draws around an object, on a bright
background lit unevenly (a vignette and slow blotches), with dark specks of debris that are not
objects, blur and noise, stored as 16-bit TIFFs. Under 1% of the image, the rods lie below the
1st percentile that ``percentile_normalize`` maps to 0.

    from rods import write_rods_folder          # with benchmarks/ on sys.path, as a benchmark has it
    images_dir, masks_dir = write_rods_folder(root, n_images=8, size=512, seed=0)

Run as a script, it writes a folder and measures the classical pipeline on it
(``unet_lib.baselines.classical_instances``): as the library runs it, for dark objects, with the
uneven illumination divided out, and with its settings chosen on images of another seed:

    .venv/bin/python benchmarks/rods.py [--out DIR] [--images 8] [--size 512]
"""

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from unet_lib.data import touching_borders, touching_fraction
from unet_lib.files import write_labels

BACKGROUND = 30000.0            # the bright background's mean grey value (16-bit)


def _capsule(shape: tuple[int, int], centre: np.ndarray, angle: float, length: float, width: float
             ) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The pixels of a rod (a capsule: points within width / 2 of a segment of ``length - width``)
    as (box, bool mask of the box), or None when it leaves the image."""
    half = (length - width) / 2
    axis = np.array([math.sin(angle), math.cos(angle)])            # (dy, dx)
    reach = half + width / 2 + 1
    top, left = int(math.floor(centre[0] - reach)), int(math.floor(centre[1] - reach))
    bottom, right = int(math.ceil(centre[0] + reach)) + 1, int(math.ceil(centre[1] + reach)) + 1
    if top < 1 or left < 1 or bottom > shape[0] - 1 or right > shape[1] - 1:
        return None
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float64)
    d = np.stack([yy - centre[0], xx - centre[1]])                  # (2, h, w) from the centre
    along = np.clip(d[0] * axis[0] + d[1] * axis[1], -half, half)   # the nearest point of the segment
    dist = np.hypot(d[0] - along * axis[0], d[1] - along * axis[1])
    return (slice(top, bottom), slice(left, right)), dist <= width / 2


def _smooth_field(size: int, features: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) zero-mean unit-SD noise with blobs about size / features across."""
    coarse = rng.standard_normal((features, features))
    field = ndimage.zoom(coarse, size / features, order=3, mode="reflect", grid_mode=True)[:size, :size]
    return (field - field.mean()) / (field.std() + 1e-12)


def draw_rods(size: int, rng: np.random.Generator, coverage: tuple[float, float] = (0.006, 0.016),
              colonies: tuple[int, int] = (2, 5), length: tuple[float, float] = (12.0, 30.0),
              width: tuple[float, float] = (5.0, 7.0), loners: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """One image: (image uint16 (H, W), instances uint16 (H, W), 0 = background), H = W = size.

    Rods are added until they cover a fraction of the image drawn from ``coverage``: a share
    ``loners`` of them anywhere, the others in one of the colonies, which grow from their rods: a
    daughter end to end, or a neighbour pressed side by side, nearly aligned (a new rod may overlap
    earlier ones by at most 15% of its area; the overlap stays with the earlier rod, so touching
    rods share a straight-ish border).
    """
    target = rng.uniform(*coverage) * size * size
    seeds = rng.uniform(0.15 * size, 0.85 * size, (int(rng.integers(colonies[0], colonies[1] + 1)), 2))
    colony_rods: list[list[tuple]] = [[] for _ in seeds]          # (centre, angle, length, width) per colony
    instances = np.zeros((size, size), np.int64)
    area, n, tries = 0, 0, 0
    while area < target and tries < 5000:
        tries += 1
        length_i, width_i = rng.uniform(*length), rng.uniform(*width)
        colony = None if rng.random() < loners else int(rng.integers(len(seeds)))
        if colony is None:
            centre, angle = rng.uniform(20, size - 20, 2), rng.uniform(0, math.pi)
        elif not colony_rods[colony]:
            centre, angle = seeds[colony], rng.uniform(0, math.pi)
        else:
            # a colony grows from its rods: a daughter end to end, or a neighbour pressed side by side
            c, a, l, w = colony_rods[colony][int(rng.integers(len(colony_rods[colony])))]
            angle = a + rng.normal(0, 0.2)
            axis, across = np.array([math.sin(a), math.cos(a)]), np.array([math.cos(a), -math.sin(a)])
            side = 1 if rng.random() < 0.5 else -1
            if rng.random() < 0.3:
                centre = c + side * 0.5 * (l + length_i) * axis
            else:
                centre = c + side * 0.5 * (w + width_i) * across + rng.normal(0, 0.25 * l) * axis
        rod = _capsule(instances.shape, centre, angle, length_i, width_i)
        if rod is None:
            continue
        box, inside = rod
        taken = (instances[box] > 0) & inside
        if taken.sum() > 0.15 * inside.sum():
            continue
        n += 1
        instances[box] = np.where(inside & ~taken, n, instances[box])
        area += int((inside & ~taken).sum())
        if colony is not None:
            colony_rods[colony].append((centre, angle, length_i, width_i))
    # a rod whose pixels all went to earlier ones leaves a gap in the ids: renumber 1..n
    ids, inverse = np.unique(instances, return_inverse=True)
    instances = inverse.reshape(instances.shape) + (0 if ids[0] == 0 else 1)

    # the image: a bright background lit unevenly, dark rods with bright halos, specks, blur, noise
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    vignette = 1.0 - 0.6 * (yy**2 + xx**2)                            # 30% darker in the corners
    light = BACKGROUND * vignette * (1 + 0.06 * _smooth_field(size, 6, rng)) * (1 + 0.1 * (yy + xx))
    rods = instances > 0
    to_rod = ndimage.distance_transform_edt(~rods)                    # (H, W) pixels to the nearest rod
    halo = 0.35 * np.exp(-np.maximum(to_rod - 1, 0) / 2.0) * ~rods    # phase contrast's bright halo
    darkness = np.concatenate([[1.0], rng.uniform(0.3, 0.45, instances.max())])[instances]   # per rod
    contact = touching_borders(instances)                              # a paler line where rods touch
    relative = np.where(rods, darkness + 0.15 * contact, 1.0 + halo)
    specks = np.zeros((size, size))
    for y, x in rng.uniform(0, size, (int(rng.integers(5, 15)), 2)):
        specks[int(y), int(x)] = rng.uniform(0.4, 0.8)
    relative -= ndimage.gaussian_filter(specks, 1.2) * 2 * math.pi * 1.2**2 * 0.5   # debris: small dark blobs
    image = ndimage.gaussian_filter(light * relative, 1.0)              # the microscope's blur
    image = rng.poisson(np.clip(image, 0, None) / 8.0) * 8.0 + rng.normal(0, 300, image.shape)   # shot + read noise
    return np.clip(np.round(image), 0, 65535).astype(np.uint16), instances.astype(np.uint16)


def write_rods_folder(root: str | Path, n_images: int = 8, size: int = 512, seed: int = 0,
                      **kwargs) -> tuple[Path, Path]:
    """``n_images`` of ``draw_rods(size, np.random.default_rng([seed, i]), **kwargs)`` as
    root/images/rods_{i:02d}.tif (uint16) and root/masks/rods_{i:02d}.tif (uint16 instance ids).
    Returns (images_dir, masks_dir)."""
    images, masks = Path(root) / "images", Path(root) / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image, instances = draw_rods(size, np.random.default_rng([seed, i]), **kwargs)
        tifffile.imwrite(images / f"rods_{i:02d}.tif", image)
        write_labels(masks / f"rods_{i:02d}.tif", instances)
    return images, masks


# -- the classical pipeline on it ------------------------------------------------------------------

def classical_rods(image: np.ndarray, dark: bool = True, min_size: int = 30, footprint: int = 11,
                   flatten: float | None = None, threshold: float | None = None) -> np.ndarray:
    """``classical_instances`` as a practitioner would run it on phase contrast. ``flatten``: the
    uneven illumination divided out first (the image over its Gaussian blur of that sigma: the
    background becomes 1.0, Fiji's flat-field correction in one line). Then, with ``threshold``
    None, the library's pipeline on the image normalised (1st to 99.8th percentile) and inverted
    for ``dark`` objects (Otsu's threshold); with a ``threshold`` (of the flattened image, e.g. 0.7:
    30% darker than the background), the same steps with that threshold in place of Otsu's, as a
    Fiji user sets one by eye: blur (sigma 1), threshold, fill holes, size filter, watershed split.
    Returns (H, W) int64 instances."""
    from unet_lib.baselines import classical_instances, remove_small_objects, watershed_split
    from unet_lib.data import percentile_normalize
    x = image.astype(np.float64)
    if flatten:
        x = x / ndimage.gaussian_filter(x, flatten)
    if threshold is None:
        x = percentile_normalize(x)
        return classical_instances(1.0 - x if dark else x, min_size=min_size, peak_footprint=footprint)
    blurred = ndimage.gaussian_filter(x, 1.0)
    foreground = ndimage.binary_fill_holes(blurred < threshold if dark else blurred > threshold)
    foreground = remove_small_objects(ndimage.label(foreground)[0], min_size) > 0
    return watershed_split(foreground, footprint)


def _scores(pairs, setting: tuple) -> dict:
    """Pooled F1, merged, split and foreground Dice of ``classical_rods(image, *setting)``."""
    from unet_lib.metrics import InstanceScores, instance_scores
    total, inter, n_pred, n_true = InstanceScores(), 0, 0, 0
    for image, truth in pairs:
        pred = classical_rods(image, *setting)
        total = total + instance_scores(pred, truth.astype(np.int64))
        inter += int(((pred > 0) & (truth > 0)).sum())
        n_pred, n_true = n_pred + int((pred > 0).sum()), n_true + int((truth > 0).sum())
    return dict(f1=total.f1, merged=total.merged, split=total.split, dice=2 * inter / (n_pred + n_true))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the folders here (default: a temporary one)")
    parser.add_argument("--images", type=int, default=8, help="images to score (default 8)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1, help="the scored images' seed (settings chosen on seed 0)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out if args.out is not None else Path(tmp)
        images_dir, masks_dir = write_rods_folder(root, args.images, args.size, args.seed)
        pairs = [(tifffile.imread(p), tifffile.imread(masks_dir / p.name)) for p in sorted(images_dir.iterdir())]
    tuning = [draw_rods(args.size, np.random.default_rng([0, i])) for i in range(4)]
    fractions = [float((t > 0).mean()) for _, t in pairs]
    below = [float((image[t > 0] < np.percentile(image, 1)).mean()) for image, t in pairs]
    areas = np.concatenate([np.bincount(t.ravel())[1:] for _, t in pairs])
    areas = areas[areas > 0]
    touching = np.mean([touching_fraction(t) for _, t in pairs])
    print(f"{len(pairs)} images {args.size}x{args.size} (seed {args.seed}), uint16: {areas.size} rods of median {int(np.median(areas))} px "
          f"covering {min(fractions):.2%} to {max(fractions):.2%} of an image, {touching:.0%} of them touching another; "
          f"{np.mean(below):.0%} of the rod pixels lie below the image's 1st percentile")
    # (dark, min_size, footprint, flatten, threshold): what a practitioner would try, chosen on seed 0
    grid = [(True, m, f, s, t) for m in (10, 30, 60) for f in (5, 7, 11) for s in (15.0, 40.0)
            for t in (None, 0.6, 0.7, 0.8)]
    tuned_scores = {setting: _scores(tuning, setting)["f1"] for setting in grid}
    tuned = max(grid, key=lambda setting: tuned_scores[setting])
    print(f"\nclassical_instances (blur, Otsu, fill, size filter, watershed split), pooled over the images; "
          f"tuned: the best of {len(grid)} settings on 4 images of seed 0 (F1 there {tuned_scores[tuned]:.3f})")
    print(f"  {'version':<46} {'min_size':>8} {'footprint':>9} {'flatten':>7} {'thresh':>6} | {'F1':>6} {'merged':>6} "
          f"{'split':>6} {'Dice':>6}")
    for label, setting in (("library defaults (bright objects)", (False, 30, 11, None, None)),
                           ("dark objects (inverted), library sizes", (True, 30, 11, None, None)),
                           ("dark, illumination flattened, library sizes", (True, 30, 11, 40.0, None)),
                           ("dark, flattened, tuned (threshold set by eye)", tuned)):
        s = _scores(pairs, setting)
        print(f"  {label:<46} {setting[1]:>8} {setting[2]:>9} {str(setting[3]):>7} {str(setting[4] or 'Otsu'):>6} | "
              f"{s['f1']:>6.3f} {s['merged']:>6} {s['split']:>6} {s['dice']:>6.3f}")
    if args.out is not None:
        print(f"\nwrote {images_dir} and {masks_dir}")


if __name__ == "__main__":
    main()
