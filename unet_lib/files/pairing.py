"""Finding your files: the images and masks of two folders, paired by file name.

``find_pairs`` pairs them by the file name without its extension; ``chosen_pairs`` gives the
pairs an ``ImageFolder`` is restricted to."""

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..validate import describe
from .reading import _LISTED, IMAGE_SUFFIXES, _as_path, _names

__all__ = ["find_pairs", "chosen_pairs"]


def _list_folder(name: str, folder: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, Path], list[Path]]:
    """{stem: path} of the files with ``suffixes`` in ``folder``, and the other (ignored) files."""
    if not folder.exists():
        raise FileNotFoundError(f"{name} {folder} does not exist; give the folder that holds the "
                                f"{'images' if name == 'images_dir' else 'masks'}")
    if not folder.is_dir():
        raise NotADirectoryError(f"{name} {folder} is a file, not a folder; give the folder that holds it")
    found: dict[str, list[Path]] = defaultdict(list)
    ignored = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue                                              # .DS_Store, subfolders
        if path.suffix.lower() in suffixes:
            found[path.stem].append(path)
        else:
            ignored.append(path)
    if not found:
        other = f"; it holds {_names([p.name for p in ignored])}" if ignored else ", it is empty"
        raise ValueError(f"{name} {folder} has no {' / '.join(suffixes)} files{other}; convert the "
                         f"{'images' if name == 'images_dir' else 'masks'} to TIFF or PNG (e.g. with Fiji)")
    twins = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    if twins:
        listed = "; ".join(_names([p.name for p in paths]) for paths in list(twins.values())[:_LISTED])
        raise ValueError(f"{name} {folder} has several files with the same name but different extensions ({listed}); "
                         f"files are paired by name without extension: keep one of each")
    return {stem: paths[0] for stem, paths in found.items()}, ignored


def find_pairs(images_dir: str | Path, masks_dir: str | Path) -> dict[str, tuple[Path, Path]]:
    """{stem: (image_path, mask_path)} for the files of ``images_dir`` and ``masks_dir`` that share
    a name without extension, sorted by stem. Raises ``ValueError`` listing images without a mask
    and masks without an image: every file must have its partner."""
    images_dir, masks_dir = _as_path("images_dir", images_dir), _as_path("masks_dir", masks_dir)
    images, _ = _list_folder("images_dir", images_dir, IMAGE_SUFFIXES)
    # JPEG masks are listed too, so that read_mask can say why they are refused
    masks, _ = _list_folder("masks_dir", masks_dir, IMAGE_SUFFIXES)
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            parts.append(f"{len(lonely_images)} image{'s' if len(lonely_images) > 1 else ''} in {images_dir} without "
                         f"a mask in {masks_dir}: {_names([images[s].name for s in lonely_images])}")
        if lonely_masks:
            parts.append(f"{len(lonely_masks)} mask{'s' if len(lonely_masks) > 1 else ''} in {masks_dir} without "
                         f"an image in {images_dir}: {_names([masks[s].name for s in lonely_masks])}")
        hint = ("images and masks are paired by the file name without its extension (cell_01.tif pairs with "
                "cell_01.png): rename the masks to their image's name, or move the unpaired files out")
        # a common naming scheme: cell_01.tif and cell_01_mask.png
        suffixes = {m[len(i):] for m in lonely_masks for i in lonely_images if m.startswith(i) and len(m) > len(i)}
        if len(suffixes) == 1:
            hint += f" (the masks' names seem to end in {suffixes.pop()!r}: remove that from their names)"
        raise ValueError("; ".join(parts) + f". {hint}")
    return {stem: (images[stem], masks[stem]) for stem in sorted(images)}



def chosen_pairs(images_dir: str | Path, masks_dir: str | Path, stems: Sequence[str] | None
                 ) -> dict[str, tuple[Path, Path]]:
    """``find_pairs(images_dir, masks_dir)``, restricted to ``stems`` (sorted) unless it is None."""
    pairs = find_pairs(images_dir, masks_dir)
    if stems is None:
        return pairs
    if isinstance(stems, (str, bytes)) or not isinstance(stems, Sequence):
        raise TypeError(f"stems must be a list of file names without extension, or None, got {describe(stems)}")
    unknown = [s for s in stems if s not in pairs]
    if unknown:
        raise ValueError(f"stems names {len(unknown)} image{'s' if len(unknown) > 1 else ''} not in "
                         f"{images_dir} with a mask in {masks_dir}: {_names(unknown)}; stems are file names "
                         f"without extension, e.g. {_names(list(pairs)[:3])}")
    if not stems:
        raise ValueError("stems is empty; give at least one image, or None for all")
    return {s: pairs[s] for s in sorted(set(stems))}
