"""Write files so that a crash, a full disk or a kill never leaves a half-written file behind.

Every file the project writes (checkpoints, results JSON, the command lines' outputs) goes
through ``atomic_write``: the bytes go to a temporary file in the target's folder, are flushed
and fsynced, and only then renamed over the target. A rename within one file system is atomic,
so a reader sees either the old file whole or the new one whole, never a mixture.
"""

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .validate import check_bool, describe

__all__ = ["atomic_write", "atomic_writer", "check_new_file"]


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with atomic_writer(path) as f: f.write(...)``: ``path`` is replaced only when the block
    ends without an error; on an error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name inside it, e.g. {path / 'model.pt'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):   # make the rename itself durable (not possible on every OS)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write ``data`` (bytes, a str as UTF-8, or a function that writes to a binary file, such as
    ``lambda f: torch.save(obj, f)``) to ``path`` atomically. Returns the path."""
    with atomic_writer(path) as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def check_new_file(path, suffix: str, why: str, overwrite: bool, example: str) -> Path:
    """``path`` (a str or Path) as the ``Path`` of a file to write: it must end in ``suffix`` (``why``
    says why), not be a folder (``example``: a file name to suggest inside it), and not exist unless
    ``overwrite``: no command overwrites work it did not create."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a file name (str or pathlib.Path), got {describe(path)}")
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ValueError(f"path {path} must end in {suffix}: {why} (e.g. {path.with_suffix(suffix).name})")
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; give a file name inside it, e.g. {path / example}")
    if path.exists() and not check_bool("overwrite", overwrite):
        raise FileExistsError(f"path {path} exists; no command overwrites work it did not create: give another name, "
                              f"or replace it on purpose with overwrite=True")
    return path
