"""Which backend computes each chunk of a Dask array: NumPy unless told otherwise.

The Dask backend splits the work; another backend does the arithmetic of every chunk with its own fast
paths. The choice follows the rules of the backend choice itself: ``set_chunk_backend(name)`` for the whole
process, ``with use_chunk_backend(name):`` for a block of code (this thread or asyncio task only). It is read
when a Dask array is *built*, and its name travels with the graph, so the workers of a cluster compute with
the backend that was in force when the user called ``corr2d`` (they need that framework installed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from types import ModuleType

from d2lconv._backend import canonical_name, load_adapter

DEFAULT_CHUNK_BACKEND = "numpy"

_process_choice = DEFAULT_CHUNK_BACKEND
_block_choice: ContextVar[str | None] = ContextVar("d2lconv_dask_chunk_backend", default=None)


def _checked(name: str) -> str:
    canonical = canonical_name(name)
    if canonical == "dask":
        raise ValueError("the Dask backend cannot compute its own chunks: choose a chunk backend such as 'numpy' "
                         "or 'torch'")
    load_adapter(canonical)  # fails now, with the install command, if its framework is missing
    return canonical


def get_chunk_backend() -> str:
    """The canonical name of the backend that computes each chunk here."""
    return _block_choice.get() or _process_choice


def set_chunk_backend(name: str) -> None:
    """Compute every chunk with backend ``name`` (``"numpy"``, ``"torch"``, ...) for the whole process."""
    global _process_choice
    _process_choice = _checked(name)


@contextlib.contextmanager
def use_chunk_backend(name: str) -> Iterator[str]:
    """Compute chunks with backend ``name`` inside a ``with`` block (this thread or asyncio task only)."""
    token = _block_choice.set(_checked(name))
    try:
        yield get_chunk_backend()
    finally:
        _block_choice.reset(token)


def chunk_adapter() -> ModuleType:
    """The adapter module of the chunk backend in force."""
    return load_adapter(get_chunk_backend())
