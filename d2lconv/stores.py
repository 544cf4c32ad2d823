"""Images larger than memory for the command line: Zarr stores and TIFF files as lazy Dask arrays, and Zarr output.

Nothing here reads a whole image: a Zarr store or a tiled TIFF opens as a Dask array over its own chunks
(``tifffile``'s Zarr view), an uncompressed TIFF as a memory map; the response is written to a new Zarr store
chunk by chunk, into a temporary directory that is renamed only when every chunk is written. Values are
kept as stored (no scaling to [0, 1], unlike the PNG and JPEG path of ``images``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from d2lconv import images
from d2lconv.images import ImageError

DASK_EXTRA = "pip install 'd2lconv[dask]'"
STORE_SUFFIXES = (".zarr", ".tif", ".tiff")
# Chunks smaller than this many pixels (TIFF strips, small Zarr chunks) are merged: every chunk is a task.
MIN_CHUNK_PIXELS = 1 << 20


def require(module: str, purpose: str) -> Any:
    """Import ``module`` (dask, zarr, tifffile), or say how to install the ``dask`` extra."""
    return images.require(module, purpose, DASK_EXTRA)


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a Zarr store or a TIFF file (by its suffix, or a directory with Zarr metadata)."""
    path = Path(path)
    if path.suffix.lower() in STORE_SUFFIXES:
        return True
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zarray"))


def open_image(path: str | os.PathLike[str], chunks: int | None = None) -> Any:
    """A 2-D Zarr array or TIFF image as a lazy Dask array (``chunks``: square chunks of that many pixels a side)."""
    da = require("dask.array", "reading a Zarr store or TIFF file")
    path = Path(path)
    if not path.exists():
        raise ImageError(f"cannot read {str(path)!r}: no such file or directory")
    if path.suffix.lower() in (".tif", ".tiff"):
        array = _open_tiff(path, da)
    else:
        zarr = require("zarr", "reading a Zarr store")
        try:
            store = zarr.open(str(path), mode="r")
        except Exception as error:
            raise ImageError(f"cannot read Zarr store {str(path)!r}: {error}") from None
        array = da.from_zarr(_first_array(store, path))
    array = _two_dimensional(array, path)
    if chunks is not None:
        return array.rechunk((chunks, chunks))
    if np.prod([c[0] for c in array.chunks]) < MIN_CHUNK_PIXELS:
        return array.rechunk("auto")  # Dask's chunk-size setting, in multiples of the stored chunks
    return array


def _open_tiff(path: Path, da: Any) -> Any:
    tifffile = require("tifffile", "reading a TIFF file")
    try:
        return da.from_array(tifffile.memmap(str(path), mode="r"), chunks="auto")  # uncompressed: no decoding
    except ValueError:  # compressed or not contiguous: tifffile's Zarr view decodes one tile or strip at a time
        pass
    except Exception as error:
        raise ImageError(f"cannot read TIFF {str(path)!r}: {error}") from None
    zarr = require("zarr", "reading a compressed TIFF file")
    try:
        store = zarr.open(tifffile.imread(str(path), aszarr=True), mode="r")
    except Exception as error:
        raise ImageError(f"cannot read TIFF {str(path)!r}: {error}") from None
    return da.from_zarr(_first_array(store, path))


def _first_array(store: Any, path: Path) -> Any:
    """The array itself, or the full-resolution level of a multiscale group (its first array)."""
    if hasattr(store, "shape"):
        return store
    arrays = sorted(store.arrays(), key=lambda item: -int(np.prod(item[1].shape)))
    if not arrays:
        raise ImageError(f"cannot read {str(path)!r}: the Zarr group holds no array")
    return arrays[0][1]


def _two_dimensional(array: Any, path: Path) -> Any:
    squeezed = tuple(n for n in array.shape if n != 1)
    if len(squeezed) != 2:
        raise ImageError(f"cannot filter {str(path)!r}: expected a 2-D grayscale image, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise ImageError(f"cannot filter {str(path)!r}: expected real numbers, got dtype {array.dtype}")
    return array.reshape(squeezed)


def check_new_store(path: str | os.PathLike[str], source: str | os.PathLike[str] | None = None) -> Path:
    """Fail early if the Zarr output ``path`` exists (never overwritten), is the input, or has no parent."""
    path = Path(path)
    if path.suffix.lower() != ".zarr":
        raise ImageError(f"cannot write {str(path)!r}: a Zarr or TIFF input is written as a new Zarr store, "
                         "named NAME.zarr")
    if source is not None and path.resolve() == Path(source).resolve():
        raise ImageError(f"cannot write {str(path)!r}: it is the input")
    if path.exists() or path.is_symlink():
        raise ImageError(f"cannot write {str(path)!r}: it already exists (remove it or choose another -o)")
    folder = path.parent
    if not folder.is_dir():
        raise ImageError(f"cannot write {str(path)!r}: directory {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ImageError(f"cannot write {str(path)!r}: directory {str(folder)!r} is not writable")
    return path


@contextlib.contextmanager
def _new_directory(path: Path) -> Iterator[Path]:
    """A temporary directory beside ``path``, renamed to ``path`` on success and removed on failure."""
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield temporary
        os.rename(temporary, path)  # fails, rather than replace, if path appeared meanwhile
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def write_zarr(array: Any, path: str | os.PathLike[str], *, chunks: tuple[int, int],
               progress: bool) -> tuple[float, float]:
    """Write a lazy 2-D array to a new Zarr store chunk by chunk; returns its minimum and maximum.

    The range is computed in the same pass as the chunks are written. ``progress`` shows Dask's progress
    bar on stderr (for the local schedulers).
    """
    dask = require("dask", "writing a Zarr store")
    require("zarr", "writing a Zarr store")
    from dask.diagnostics import ProgressBar

    path = Path(path)
    regular = array.rechunk(tuple(min(c, n) for c, n in zip(chunks, array.shape)))
    with _new_directory(path) as temporary:
        writing = regular.to_zarr(str(temporary), compute=False)
        bar = ProgressBar(out=sys.stderr) if progress else contextlib.nullcontext()
        with bar:
            _, low, high = dask.compute(writing, regular.min(), regular.max())
    return float(low), float(high)
