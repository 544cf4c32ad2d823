"""How many threads d2lconv's own loops may use, and a small pool that runs bands of work on them.

d2lconv's banded paths (NumPy, PyTorch, the optional Numba accelerator) loop in Python over bands of output
rows; NumPy, PyTorch and Numba's ``nogil`` functions release the GIL inside each band, so a few threads
over the bands use the cores the way the frameworks' own ops do.

The count follows what the framework is allowed (never changed behind the user's back):
- PyTorch: ``torch.get_num_threads()`` (so ``torch.set_num_threads(1)`` makes d2lconv serial too);
- everything else: the CPUs this process may run on, ``os.sched_getaffinity(0)`` (so ``taskset -c 0``
  gives one thread), not ``os.cpu_count()``;
- unless the user says otherwise: :func:`set_num_threads` or the ``D2LCONV_NUM_THREADS`` environment
  variable (read at first use) cap d2lconv's own threads; the frameworks' own settings are left alone.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

ENV_VAR = "D2LCONV_NUM_THREADS"

_user_threads: int | None = None  # set_num_threads(); None = the framework's setting
_environment: tuple[str, int | None] | None = None  # (raw value, parsed) of D2LCONV_NUM_THREADS, cached
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def set_num_threads(threads: int | None) -> None:
    """Use at most ``threads`` threads in d2lconv's own loops (``None``: follow the framework again).

    This changes no framework's setting: PyTorch's ``torch.set_num_threads``, XLA, OpenMP and BLAS keep theirs.
    """
    global _user_threads
    if threads is not None and (type(threads) is not int or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    _user_threads = threads


def _from_environment() -> int | None:
    global _environment
    raw = os.environ.get(ENV_VAR, "")
    if _environment is not None and _environment[0] == raw:
        return _environment[1]
    value = None
    if raw.strip():
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{ENV_VAR} must be a positive integer, got {raw!r}")
    _environment = (raw, value)
    return value


def allowed_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which ``taskset`` and cgroups limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def num_threads(framework: str = "numpy") -> int:
    """The threads d2lconv's loops on ``framework`` use now: the user's cap, else the framework's setting."""
    cap = _user_threads if _user_threads is not None else _from_environment()
    if framework == "torch" and "torch" in sys.modules:
        own = sys.modules["torch"].get_num_threads()
    else:
        own = allowed_cpus()
    return max(1, min(own, cap) if cap is not None else own)


def get_num_threads(backend: str | None = None) -> int:
    """The threads d2lconv's own loops use on ``backend`` (default: the active one)."""
    from d2lconv._backend import canonical_name, get_backend

    return num_threads(canonical_name(backend) if backend is not None else get_backend())


def _executor(workers: int) -> ThreadPoolExecutor:
    """One persistent pool for the process, grown on demand (threads start once, not per call)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old, _pool = _pool, ThreadPoolExecutor(workers, thread_name_prefix="d2lconv")
            _pool_size = workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def run_bands(work: Callable[[int, int], None], total: int, band: int, threads: int) -> None:
    """Call ``work(start, stop)`` for consecutive ranges of ``band`` items covering ``range(total)``.

    With ``threads > 1`` the calling thread and ``threads - 1`` pool threads take the next band as they
    become free (so a thread that the OS descheduled delays only its own band, not a fixed share), and
    the first error is raised here once all have stopped. ``work`` must write disjoint outputs per band.
    """
    band = max(1, band)
    count = -(-total // band)
    threads = min(threads, count)
    if threads <= 1:
        for start in range(0, total, band):
            work(start, min(start + band, total))
        return
    counter = itertools.count()  # next() on it is atomic under the GIL
    failed: list[BaseException] = []

    def worker() -> None:
        for index in counter:
            if index >= count or failed:
                return
            start = index * band
            try:
                work(start, min(start + band, total))
            except BaseException as error:  # noqa: B036 - re-raised in the calling thread
                failed.append(error)
                return

    futures = [_executor(threads - 1).submit(worker) for _ in range(threads - 1)]
    worker()
    for future in futures:
        future.result()
    if failed:
        raise failed[0]

