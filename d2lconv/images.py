"""Images for the command line: a sample the package draws itself, reading and writing with Pillow.

Images are 2-D NumPy float arrays, grayscale, 0 (black) to 1 (white). Only :func:`sample_image` works
without Pillow; reading, shrinking and writing need it (``pip install 'd2lconv[cli]'``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CLI_EXTRA = "pip install 'd2lconv[cli]'"


class MissingPackageError(RuntimeError):
    """An optional package of the ``cli`` extra is not installed."""


class ImageError(ValueError):
    """An image that cannot be read, or an output path that cannot be written."""


def require(module: str, purpose: str, extra: str = CLI_EXTRA) -> Any:
    """Import ``module`` (Pillow, matplotlib, tqdm; dask, zarr, tifffile), or say which package is missing and
    the pip command of the extra that installs it (``cli`` by default)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.split(".")[0]
        if (error.name or "").split(".")[0] != top:
            raise
        package = {"PIL": "Pillow"}.get(top, top)
        raise MissingPackageError(f"{purpose} needs {package}, which is not installed; install it with: "
                                  f"{extra}") from None


BACKGROUND_GRAIN = 0.12


SAMPLE_SIZE = 128


def sample_image(size: int = SAMPLE_SIZE) -> np.ndarray:
    """A ``size x size`` test picture with edges in every direction, drawn with NumPy (no file, no network).

    A soft diagonal gradient behind a bright disc, a dark square, a mid-grey triangle and a thin ring,
    with antialiased borders and a little seeded texture, so that every kernel has something to find.
    """
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    fine = 4  # draw at 4x and average down: antialiased borders
    t = (np.arange(size * fine) + 0.5) / (size * fine)  # pixel centres in [0, 1]
    y, x = np.meshgrid(t, t, indexing="ij")
    image = 0.35 + 0.2 * (x + y) / 2  # the soft gradient, 0.35 top left to 0.55 bottom right
    disc = (y - 0.3) ** 2 + (x - 0.3) ** 2 < 0.2**2
    image = np.where(disc, 0.95, image)
    square = (np.abs(y - 0.3) < 0.15) & (np.abs(x - 0.74) < 0.15)
    image = np.where(square, 0.08, image)
    # A triangle with a horizontal base and two slanted sides: apex (0.55, 0.3), base at y = 0.92.
    triangle = (y < 0.92) & (np.abs(x - 0.3) < (y - 0.55) * 0.6)
    image = np.where(triangle, 0.7, image)
    ring = np.abs(np.hypot(y - 0.74, x - 0.74) - 0.14) < 0.03
    image = np.where(ring, 0.15, image)
    image = image.reshape(size, fine, size, fine).mean(axis=(1, 3))
    shapes = (disc | square | triangle | ring).reshape(size, fine, size, fine).mean(axis=(1, 3))
    # Grain, stronger on the background (like paper): fine detail in every direction is what lets
    # gradient descent pin down every coefficient of a kernel quickly (see `d2lconv learn`).
    grain = np.random.default_rng(0).normal(0.0, 1.0, (size, size)) * (BACKGROUND_GRAIN * (1 - shapes) + 0.03 * shapes)
    return np.clip(image + grain, 0.0, 1.0)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A PNG, JPEG (or anything Pillow reads) as a grayscale float64 array in [0, 1]."""
    Image = require("PIL.Image", "reading an image")
    path = Path(path)
    if not path.exists():
        raise ImageError(f"cannot read image {str(path)!r}: no such file")
    if path.is_dir():
        raise ImageError(f"cannot read image {str(path)!r}: it is a directory")
    try:
        with Image.open(path) as picture:
            picture.load()
            mode = picture.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(picture, dtype=np.float64)
                return array / (65535.0 if array.max(initial=0) > 255 else 255.0)
            if "A" in picture.getbands() or mode == "P":  # composite transparency over white
                rgba = picture.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                picture = Image.alpha_composite(background, rgba)
            gray = picture.convert("L")
            return np.asarray(gray, dtype=np.float64) / 255.0
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's UnidentifiedImageError is an OSError
        reason = "not an image Pillow can read" if "cannot identify" in str(error) else str(error)
        raise ImageError(f"cannot read image {str(path)!r}: {reason}") from None


def shrink(image: np.ndarray, max_size: int) -> np.ndarray:
    """``image`` resized (Lanczos, aspect kept) so its longest side is at most ``max_size`` pixels."""
    height, width = image.shape
    scale = max_size / max(height, width)
    if scale >= 1:
        return image
    Image = require("PIL.Image", "shrinking an image")
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(np.asarray(image, dtype=np.float32))
    return np.clip(np.asarray(picture.resize(size, Image.Resampling.LANCZOS), dtype=np.float64), 0.0, 1.0)


def display_range(response: np.ndarray, signed: bool) -> tuple[float, float]:
    """The values shown as black and white: symmetric about 0 (0 is mid-grey) for signed maps."""
    response = np.asarray(response, dtype=np.float64)
    if signed:
        top = float(np.abs(response).max(initial=0.0)) or 1.0
        return -top, top
    low, high = float(response.min(initial=0.0)), float(response.max(initial=0.0))
    low = min(low, 0.0)
    return low, high if high > low else low + 1.0


def to_uint8(response: np.ndarray, signed: bool) -> np.ndarray:
    """``response`` as 8-bit gray: signed maps with 0 at mid-grey (128), a scale symmetric about 0."""
    low, high = display_range(response, signed)
    scaled = (np.asarray(response, dtype=np.float64) - low) / (high - low)
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def image_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format for ``path``'s extension, or an :class:`ImageError`."""
    Image = require("PIL.Image", "writing an image")
    suffix = Path(path).suffix.lower()
    formats = Image.registered_extensions()
    if suffix not in formats:
        raise ImageError(f"cannot write image {str(path)!r}: unknown extension {suffix or '(none)'!r}; "
                         "use .png or .jpg")
    return formats[suffix]


def check_output(path: str | os.PathLike[str]) -> Path:
    """Fail early, before any work, if ``path`` is in a missing directory or is a directory."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise ImageError(f"cannot write {str(path)!r}: it is a directory")
    if not folder.is_dir():
        raise ImageError(f"cannot write {str(path)!r}: directory {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ImageError(f"cannot write {str(path)!r}: directory {str(folder)!r} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else remove it.

    So a reader never sees half a file, and a failure leaves any previous file in place.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` completely or not at all."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_image(path: str | os.PathLike[str], response: np.ndarray, signed: bool) -> tuple[float, float]:
    """Write ``response`` as an 8-bit grayscale image; returns the values shown as black and white."""
    Image = require("PIL.Image", "writing an image")
    fmt = image_format(path)
    low, high = display_range(response, signed)
    picture = Image.fromarray(to_uint8(response, signed))
    with atomic_output(path) as temporary:
        picture.save(temporary, format=fmt)
    return low, high
