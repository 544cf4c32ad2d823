"""Benchmark ``d2lconv.corr2d`` against the framework's own conv op, SciPy, OpenCV and a memory copy.

One process times one backend (``D2LCONV_BACKEND`` or ``--backend``) on the same float32 inputs:

- ``d2lconv.corr2d`` with ``method="auto"`` and each explicit method (``loop`` only for N <= 64,
  ``separable`` only for rank-one kernels);
- ``fw-op``: the framework's conv op called directly, inputs already in its layout (none on NumPy);
- the peers ``scipy.signal.correlate2d``, ``scipy.signal.correlate(method="auto")`` and ``cv2.filter2D``
  (cropped to the valid region), where installed;
- ``copy``: ``np.copyto`` of the input into a preallocated array, the physical floor;
- the speed-up from one CPU to all: at N = 2048 and k = 3 and 7, ``auto``, the framework's op and OpenCV are
  timed again in a child process confined to one CPU (``os.sched_setaffinity``, as ``taskset -c 0``), where
  every framework, OpenCV and d2lconv see one.

Everything runs at the frameworks' default thread settings unless ``--threads N`` limits them.

Every timed call blocks until its result is computed. Each case is warmed up (compiled) once, its
result checked against a float64 reference, then timed: the median of repeats, ``--budget`` seconds
per callable. A callable whose warm-up takes more than ``--cap`` seconds is reported as ``> cap`` and
skipped at larger sizes. Run ``python benchmarks/bench.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

import d2lconv
from d2lconv._backend import active_adapter

SIZES = (3, 64, 512, 2048, 4096)
KERNELS = (2, 3, 7, 15, 31)
QUICK_SIZES = (3, 64, 512)
QUICK_KERNELS = (3, 7)
LOOP_MAX_N = 64  # the book's Python loop is far too slow beyond this (seconds per call on eager frameworks)
QUICK_LOOP_MAX_N = 3
D2L_METHODS = ("auto", "loop", "direct", "separable", "fft", "native")
PEERS = ("scipy.correlate2d", "scipy.correlate", "cv2.filter2D")
COLUMNS = tuple(f"d2l.{m}" for m in D2L_METHODS) + ("fw-op",) + PEERS + ("copy",)
RATIOS = ("auto/native", "auto/peer", "auto/cv2", "auto/copy", "speed-up")
ONE_CPU_COLUMNS = ("d2l.auto", "fw-op", "cv2.filter2D")  # timed again on one CPU
ONE_CPU_MIN_N = 2048
ONE_CPU_KERNELS = (3, 7)  # what issue 11's speed-up target reads
# At and above BIG_N a full run times only the columns issue 11's targets read, on random kernels (the rank-one
# rows and every explicit method there take minutes); --all-columns times everything.
BIG_N = 2048
TARGET_COLUMNS = ("d2l.auto", "fw-op", "cv2.filter2D", "copy")
# |error| / (max|X| * sum|K|): float32 has eps 1.2e-7, sums of up to 961 terms and FFTs lose a few more bits.
TOLERANCE = 2e-5


@dataclass
class Timing:
    """The result of timing one callable on one case."""

    median: float | None = None  # seconds per call; None when not measured
    repeats: int = 0
    note: str = ""  # why there is no time ("n/a: ...", "> 20 s", ...)


@dataclass
class Case:
    """One input/kernel pair and everything measured on it."""

    N: int
    k: int
    kernel: str  # "book", "random" or "rank1"
    auto_choice: str = "?"
    times: dict[str, Timing] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)  # normalised max error against the reference
    mismatches: list[str] = field(default_factory=list)
    ratios: dict[str, float | None] = field(default_factory=dict)
    one_cpu: dict[str, float | None] = field(default_factory=dict)  # medians in the one-CPU child process


# ----------------------------------------------------------------------------------------------- inputs


def make_inputs(N: int, k: int, kernel: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A float32 image and kernel; rank-one kernels are outer products of small integers (exactly rank one)."""
    if kernel == "book":  # the chapter's figure: X = arange(9).reshape(3, 3), K = [[0, 1], [2, 3]]
        return np.arange(9, dtype=np.float32).reshape(3, 3), np.array([[0, 1], [2, 3]], dtype=np.float32)
    rng = np.random.default_rng([seed, N, k])
    X = rng.random((N, N), dtype=np.float32)
    if kernel == "rank1":
        column, row = rng.integers(1, 4, size=k), rng.integers(-3, 4, size=k) | 1
        return X, np.outer(column, row).astype(np.float32)
    return X, rng.standard_normal((k, k), dtype=np.float32)


def reference(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The valid cross-correlation in float64 (SciPy if installed, else a plain sum of shifted slices)."""
    X64, K64 = X.astype(np.float64), K.astype(np.float64)
    try:
        from scipy import signal
    except ImportError:
        h, w = K.shape
        rows, cols = X.shape[0] - h + 1, X.shape[1] - w + 1
        return sum(X64[a:a + rows, b:b + cols] * K64[a, b] for a in range(h) for b in range(w))
    return signal.correlate(X64, K64, mode="valid")


def list_cases(sizes: list[int], kernels: list[int], rank_one: bool,
               big_rank_one: bool = True) -> list[tuple[int, int, str]]:
    """(N, k, kernel) for the grid: N = 3 is the book's example, k > N is skipped; rank-one rows at N >= BIG_N
    only with ``big_rank_one``."""
    cases = []
    for N in sizes:
        if N == 3:
            cases.append((3, 2, "book"))
            continue
        for k in kernels:
            if k <= N:
                with_rank_one = rank_one and (big_rank_one or N < BIG_N)
                cases += [(N, k, "random")] + ([(N, k, "rank1")] if with_rank_one else [])
    return cases


# ------------------------------------------------------------------------------------------- callables

Runner = tuple[Callable[[], Any], Callable[[Any], np.ndarray]]  # (blocking call, its result as a 2-D array)


def make_sync(backend: str) -> Callable[[Any], Any]:
    """A function that waits until a native result is computed and returns it."""
    if backend == "jax":
        return lambda y: y.block_until_ready()
    if backend == "tensorflow":
        return lambda y: (y.numpy(), y)[1]  # CPU: numpy() shares the buffer, it does not copy
    if backend == "mxnet":
        import mxnet as mx

        return lambda y: (mx.nd.waitall(), y)[1]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return lambda y: (torch.cuda.synchronize(), y)[1]
    return lambda y: y  # NumPy and torch on CPU are synchronous


def d2l_runners(adapter: ModuleType, sync: Callable[[Any], Any], X: np.ndarray, K: np.ndarray,
                kernel: str, loop_max_n: int) -> dict[str, Runner | str]:
    """``d2lconv.corr2d`` with each method on native tensors, or why a method is not run."""
    Xn, Kn = adapter.from_numpy(X), adapter.from_numpy(K)
    runners: dict[str, Runner | str] = {}
    for method in D2L_METHODS:
        name = f"d2l.{method}"
        if method == "loop" and (X.shape[0] > loop_max_n or kernel == "rank1"):
            runners[name] = f"skipped: slow (N > {loop_max_n} or rank-one row)"
        elif method == "separable" and kernel != "rank1":
            runners[name] = "skipped: kernel not rank one"
        else:
            runners[name] = (lambda m=method: sync(d2lconv.corr2d(Xn, Kn, method=m)), d2lconv.to_numpy)
    return runners


def framework_runner(backend: str, X: np.ndarray, K: np.ndarray) -> Runner | str:
    """The framework's own conv op, called directly on inputs already in its layout and dtype."""
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        x, w = torch.from_numpy(X)[None, None], torch.from_numpy(K)[None, None]  # NCHW, OIHW
        sync = make_sync(backend)
        return (lambda: sync(F.conv2d(x, w)), lambda y: y[0, 0].numpy())
    if backend == "tensorflow":
        import tensorflow as tf

        x, w = tf.constant(X[None, :, :, None]), tf.constant(K[:, :, None, None])  # NHWC, HWIO
        conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, strides=1, padding="VALID"))
        sync = make_sync(backend)
        return (lambda: sync(conv(x, w)), lambda y: y.numpy()[0, :, :, 0])
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        x, w = jnp.asarray(X[None, None]), jnp.asarray(K[None, None])  # NCHW, OIHW
        conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID"))
        return (lambda: conv(x, w).block_until_ready(), lambda y: np.asarray(y)[0, 0])
    if backend == "mxnet":
        from mxnet import np as mnp
        from mxnet import npx

        npx.set_np()
        x, w = mnp.array(X[None, None]), mnp.array(K[None, None])  # NCHW, OIHW
        op = npx.convolution

        def run() -> Any:
            y = op(data=x, weight=w, kernel=K.shape, num_filter=1, no_bias=True)
            npx.waitall()
            return y

        return (run, lambda y: y.asnumpy()[0, 0])
    return "n/a: NumPy has no conv op"


def peer_runners(X: np.ndarray, K: np.ndarray) -> dict[str, Runner | str]:
    """SciPy and OpenCV on the NumPy arrays, where installed."""
    runners: dict[str, Runner | str] = {}
    try:
        from scipy import signal

        runners["scipy.correlate2d"] = (lambda: signal.correlate2d(X, K, mode="valid"), np.asarray)
        runners["scipy.correlate"] = (lambda: signal.correlate(X, K, mode="valid", method="auto"), np.asarray)
    except ImportError:
        runners["scipy.correlate2d"] = runners["scipy.correlate"] = "n/a: scipy not installed"
    try:
        import cv2

        # anchor (0, 0): out[i, j] = sum K[a, b] X[i + a, j + b], so the valid part is the top-left corner.
        rows, cols = X.shape[0] - K.shape[0] + 1, X.shape[1] - K.shape[1] + 1
        runners["cv2.filter2D"] = (lambda: cv2.filter2D(X, -1, K, anchor=(0, 0))[:rows, :cols], np.asarray)
    except ImportError:
        runners["cv2.filter2D"] = "n/a: opencv not installed"
    return runners


def copy_runner(X: np.ndarray) -> Runner:
    """``np.copyto`` into a preallocated array: reading and writing the input once."""
    out = np.empty_like(X)
    return (lambda: np.copyto(out, X), lambda _: None)


# ---------------------------------------------------------------------------------------------- timing


def time_call(fn: Callable[[], Any], budget: float, min_repeats: int) -> Timing:
    """Median seconds per call of an already warmed-up ``fn``: fast calls are batched to ~2 ms samples."""
    start = time.perf_counter()
    fn()
    estimate = time.perf_counter() - start
    number = min(10_000, max(1, int(2e-3 / max(estimate, 1e-9))))
    samples = [estimate] if number == 1 else []
    begin = time.perf_counter()
    while True:
        spent = time.perf_counter() - begin
        if len(samples) >= min_repeats and (spent >= budget or len(samples) >= 1000):
            break
        if len(samples) >= 1 and spent > 30:  # very slow: stop early rather than blow the run's time
            break
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return Timing(statistics.median(samples), len(samples) * number)


def max_error(result: np.ndarray, ref: np.ndarray, X: np.ndarray, K: np.ndarray) -> float:
    """Max |result - ref|, relative to max|X| * sum|K| (the largest value a partial sum can reach)."""
    result = np.asarray(result, dtype=np.float64)
    if result.shape != ref.shape:
        return float("inf")
    scale = float(np.abs(X).max() * np.abs(K).sum()) or 1.0
    return float(np.abs(result - ref).max() / scale)


def run_case(case: Case, runners: dict[str, Runner | str], args: argparse.Namespace, ref: np.ndarray,
             X: np.ndarray, K: np.ndarray, too_slow: set[tuple[str, int]]) -> None:
    """Warm up, check and time every runner of one case, filling ``case`` in."""
    for name in COLUMNS:
        runner = runners.get(name, "n/a")
        if args.only and name not in args.only:
            runner = "skipped: not in --only"
        elif case.N >= BIG_N and not args.all_columns and name not in TARGET_COLUMNS:
            runner = f"skipped: N >= {BIG_N} (--all-columns times it)"
        if isinstance(runner, str):
            case.times[name] = Timing(note=runner)
            continue
        if (name, case.k) in too_slow:
            case.times[name] = Timing(note=f"> {args.cap:g} s (at a smaller N)")
            continue
        fn, as_array = runner
        try:
            start = time.perf_counter()
            out = fn()
            warm = time.perf_counter() - start
            if name != "copy":
                case.errors[name] = max_error(as_array(out), ref, X, K)
                if not case.errors[name] <= TOLERANCE:
                    case.mismatches.append(name)
            if warm > args.cap:
                too_slow.add((name, case.k))
                case.times[name] = Timing(note=f"> {args.cap:g} s")
                continue
            case.times[name] = time_call(fn, args.budget, args.min_repeats)
        except Exception as error:  # an adapter being written, an unavailable method, ...
            case.times[name] = Timing(note=f"n/a: {type(error).__name__}: {error}")


def compute_ratios(case: Case) -> None:
    """auto / framework op, auto / best peer, auto / memory copy (None where a time is missing)."""
    t = {name: timing.median for name, timing in case.times.items()}
    peers = [t[p] for p in PEERS if t.get(p) is not None]

    def ratio(denominator: float | None) -> float | None:
        auto = t.get("d2l.auto")
        return auto / denominator if auto is not None and denominator else None

    one_cpu = case.one_cpu.get("d2l.auto")
    case.ratios = {
        "auto/native": ratio(t.get("fw-op")),
        "auto/peer": ratio(min(peers) if peers else None),
        "auto/cv2": ratio(t.get("cv2.filter2D")),
        "auto/copy": ratio(t.get("copy")),
        "speed-up": one_cpu / t["d2l.auto"] if one_cpu and t.get("d2l.auto") else None,
    }


def one_cpu_times(args: argparse.Namespace, backend: str, cases: list[Case]) -> str:
    """Time ``ONE_CPU_COLUMNS`` again in a child process confined to one CPU; fills ``case.one_cpu``.

    Confining the process (``os.sched_setaffinity`` before the child starts, as ``taskset -c`` does) is what
    a user with one core gets: every framework, OpenCV and d2lconv size their thread pools from the CPUs they
    may use. Only the random kernels at N >= ``ONE_CPU_MIN_N`` and k in ``ONE_CPU_KERNELS`` (unless
    ``--all-columns``), which keeps the child's time bounded. Returns a note on what was done.
    """
    sizes = sorted({c.N for c in cases if c.N >= ONE_CPU_MIN_N})
    kernels = sorted({c.k for c in cases if c.N >= ONE_CPU_MIN_N and (args.all_columns or c.k in ONE_CPU_KERNELS)})
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.no_one_cpu or not sizes or not kernels:
        return "not run"
    if len(cpus) < 2:
        return "not run: needs os.sched_setaffinity and more than one CPU"
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "one-cpu.json")
        command = [sys.executable, os.path.abspath(__file__), "--backend", backend,
                   "--sizes", *map(str, sizes), "--kernels", *map(str, kernels), "--only", *ONE_CPU_COLUMNS,
                   "--no-one-cpu", "--json", out, "--budget", str(args.budget), "--min-repeats",
                   str(args.min_repeats), "--cap", str(args.cap), "--seed", str(args.seed)]
        command += (["--no-rank-one"] if args.no_rank_one or not args.all_columns else [])
        command += (["--threads", str(args.threads)] if args.threads else [])
        print(f"one-CPU run (CPU {cpus[0]}): sizes {sizes}, kernels {kernels}", file=sys.stderr)
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL,
                       preexec_fn=lambda: os.sched_setaffinity(0, {cpus[0]}))
        try:
            with open(out) as f:
                child = json.load(f)
        except (OSError, ValueError) as error:
            return f"failed: {error}"
    found = {(c["N"], c["k"], c["kernel"]): c for c in child["cases"]}
    for case in cases:
        other = found.get((case.N, case.k, case.kernel))
        if other is not None:
            case.one_cpu = {name: other["times"][name]["median"] for name in ONE_CPU_COLUMNS}
    return f"CPU {cpus[0]} only (sched_setaffinity), load average {child.get('load_average')}"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (what ``uptime`` shows), where the OS has them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def thread_settings(backend: str) -> dict[str, Any]:
    """The thread counts in force: d2lconv's own loops, the framework's, OpenCV's."""
    settings: dict[str, Any] = {"cpus_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else os.cpu_count()}
    for name, getter in (("d2lconv", "get_num_threads"), ("accelerator", "get_accelerator")):
        if hasattr(d2lconv, getter):  # d2lconv's own threads and the optional Numba accelerator, where it has them
            settings[name] = getattr(d2lconv, getter)()
    if backend == "torch":
        import torch

        settings["torch"] = torch.get_num_threads()
    if "cv2" in sys.modules:
        settings["cv2"] = sys.modules["cv2"].getNumThreads()
    return settings


def auto_choice(adapter: ModuleType, X: np.ndarray, K: np.ndarray) -> str:
    """The method ``corr2d(method="auto")`` picks for these inputs, from ``d2lconv._auto.choose_method``."""
    try:
        from d2lconv._auto import choose_method

        try:  # with the input: an adapter with compiled paths (the Numba accelerator) decides from it
            return choose_method(adapter, X.shape, adapter.from_numpy(K), (1, 1), X=adapter.from_numpy(X))
        except TypeError:  # a d2lconv whose auto reads shapes only
            return choose_method(adapter, X.shape, adapter.from_numpy(K), (1, 1))
    except Exception as error:
        return f"? ({type(error).__name__})"


# ---------------------------------------------------------------------------------------------- memory


def _proc_status_kib(key: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in KiB (Linux only)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _release_freed_memory() -> None:
    """Make glibc return freed memory to the OS, so that RSS tracks what is really in use (Linux only).

    Blocks of 64 KiB or more are mmap-ed from now on (and so unmapped when freed), and the free memory
    already held by the heap is trimmed. Done only for the memory measurement, after all timings.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD; setting it also stops glibc from raising it
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS; Linux >= 4.0."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measure_memory(fn: Callable[[], Any], input_bytes: int) -> dict[str, Any]:
    """Peak extra memory of one (warmed-up) call of ``fn``, two ways.

    ``rss_peak_extra``: peak resident set size during the call minus the RSS before it (Linux, whole
    process, any allocator; memory a framework keeps in its own pool from the warm-up, as MXNet does,
    is reused and not counted).
    ``tracemalloc_peak``: peak of the allocations Python's tracemalloc sees; NumPy reports its buffers
    to it, the frameworks do not, so it is meaningful on the NumPy backend only. Both include the output.
    """
    fn()
    _release_freed_memory()
    result: dict[str, Any] = {"input_bytes": input_bytes}
    before = _proc_status_kib("VmRSS")
    if before is not None and _reset_peak_rss():
        out = fn()
        peak = _proc_status_kib("VmHWM")
        del out
        result["rss_peak_extra_bytes"] = None if peak is None else max(0, peak - before) * 1024
    tracemalloc.start()
    out = fn()
    result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return result


# ---------------------------------------------------------------------------------------------- output


def fmt_time(timing: Timing) -> str:
    if timing.median is not None:
        return f"{timing.median:.3g}"
    return timing.note.split(":")[0] if timing.note.startswith(("n/a", "skipped")) else timing.note


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def table(cases: list[Case], markdown: bool) -> str:
    """The medians (seconds) and ratios of every case as a plain or GitHub-markdown table."""
    header = ["N", "k", "kernel", "auto ->"] + list(COLUMNS) + ["auto 1 CPU"] + list(RATIOS)
    rows = [
        [str(c.N), str(c.k), c.kernel, c.auto_choice]
        + [fmt_time(c.times[name]) + ("!" if name in c.mismatches else "") for name in COLUMNS]
        + [fmt_ratio(c.one_cpu.get("d2l.auto"))]
        + [fmt_ratio(c.ratios[r]) for r in RATIOS]
        for c in cases
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in [header] + rows)


def memory_line(memory: dict[str, Any]) -> str:
    """One line on the peak extra memory of ``auto`` at the largest case."""
    if "error" in memory:
        return f"Peak extra memory of auto: n/a ({memory['error']})"

    def mib(key: str) -> str:
        value = memory.get(key)
        return "n/a" if value is None else f"{value / 2**20:.1f} MiB"

    return (
        f"Peak extra memory of corr2d(method='auto') at N={memory['N']} k={memory['k']}"
        f" (input {mib('input_bytes')}, output included): peak RSS - RSS before = {mib('rss_peak_extra_bytes')};"
        f" tracemalloc peak (NumPy buffers only) = {mib('tracemalloc_peak_bytes')}"
    )


def notes(cases: list[Case]) -> list[str]:
    """The distinct reasons for missing times, and every mismatch, one line each."""
    lines, seen = [], set()
    for c in cases:
        for name, timing in c.times.items():
            if timing.median is None and timing.note.startswith("n/a") and (name, timing.note) not in seen:
                seen.add((name, timing.note))
                lines.append(f"  {name}: {timing.note}")
        for name in c.mismatches:
            lines.append(f"  MISMATCH N={c.N} k={c.k} {c.kernel} {name}: error {c.errors[name]:.3g} > {TOLERANCE:g}")
    return lines


def versions() -> dict[str, str]:
    """Versions of Python and of every library this run imported."""
    found = {"python": platform.python_version(), "numpy": np.__version__, "d2lconv": d2lconv.__version__}
    for module in ("scipy", "cv2", "torch", "tensorflow", "jax", "mxnet"):
        if module in sys.modules:
            found[module] = str(getattr(sys.modules[module], "__version__", "?"))
    return found


# ------------------------------------------------------------------------------------------------ main


def limit_threads(threads: int) -> None:
    """Ask OpenMP, BLAS, TensorFlow, PyTorch and OpenCV for ``threads`` threads (before a framework is imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(threads)
    for module, call in (("torch", "set_num_threads"), ("cv2", "setNumThreads")):
        try:
            getattr(__import__(module), call)(threads)
        except ImportError:
            pass
    if hasattr(d2lconv, "set_num_threads"):  # d2lconv's own loops
        d2lconv.set_num_threads(threads)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"N in {QUICK_SIZES}, k in {QUICK_KERNELS}, short budget (under a minute)")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"image sizes N (default {SIZES})")
    parser.add_argument("--kernels", type=int, nargs="+", help=f"kernel sizes k (default {KERNELS})")
    parser.add_argument("--no-rank-one", action="store_true", help="skip the rank-one kernel rows")
    parser.add_argument("--backend", help="d2lconv backend (default: D2LCONV_BACKEND, else numpy)")
    parser.add_argument("--budget", type=float, help="seconds of timing per callable (default 0.3, quick 0.05)")
    parser.add_argument("--min-repeats", type=int, default=3, help="at least this many timed samples")
    parser.add_argument("--cap", type=float, default=20.0, help="skip callables whose warm-up takes longer")
    parser.add_argument("--loop-max-n", type=int, help=f"largest N for method='loop' (default {LOOP_MAX_N}, quick "
                        f"{QUICK_LOOP_MAX_N})")
    parser.add_argument("--threads", type=int, help="limit the threads of the frameworks, BLAS and OpenCV (not JAX)")
    parser.add_argument("--no-one-cpu", action="store_true",
                        help=f"skip the one-CPU child process (auto, the op and OpenCV; N >= {ONE_CPU_MIN_N}, "
                        f"k in {ONE_CPU_KERNELS})")
    parser.add_argument("--only", nargs="+", choices=COLUMNS, metavar="COLUMN", help="time only these columns")
    parser.add_argument("--all-columns", action="store_true",
                        help=f"at N >= {BIG_N} too, time every method and the rank-one rows (many minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the table as GitHub markdown")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or list(QUICK_SIZES if args.quick else SIZES)
    args.kernels = args.kernels or list(QUICK_KERNELS if args.quick else KERNELS)
    if args.loop_max_n is None:
        args.loop_max_n = QUICK_LOOP_MAX_N if args.quick else LOOP_MAX_N
    args.budget = args.budget if args.budget is not None else (0.05 if args.quick else 0.3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        limit_threads(args.threads)
    if args.backend:
        d2lconv.set_backend(args.backend)
    backend = d2lconv.get_backend()
    try:
        adapter: ModuleType | None = active_adapter()
        adapter_error = ""
    except Exception as error:  # the adapter is not written yet: still time the framework and peers
        adapter, adapter_error = None, f"n/a: {type(error).__name__}: {error}"
    sync = make_sync(backend)
    load_before = load_average()
    print(f"d2lconv benchmark: backend {backend}, {os.cpu_count()} CPUs, budget {args.budget:g} s per callable, "
          f"load average {load_before}", file=sys.stderr)

    cases, too_slow = [], set()
    for N, k, kernel in list_cases(args.sizes, args.kernels, not args.no_rank_one, args.all_columns):
        X, K = make_inputs(N, k, kernel, args.seed)
        case = Case(N, k, kernel)
        runners: dict[str, Runner | str] = {}
        if adapter is None:
            runners.update({f"d2l.{m}": adapter_error for m in D2L_METHODS})
        else:
            case.auto_choice = auto_choice(adapter, X, K)
            try:
                runners.update(d2l_runners(adapter, sync, X, K, kernel, args.loop_max_n))
            except Exception as error:  # e.g. an adapter whose from_numpy is not written yet
                runners.update({f"d2l.{m}": f"n/a: {type(error).__name__}: {error}" for m in D2L_METHODS})
        try:
            runners["fw-op"] = framework_runner(backend, X, K)
        except Exception as error:
            runners["fw-op"] = f"n/a: {type(error).__name__}: {error}"
        runners.update(peer_runners(X, K))
        runners["copy"] = copy_runner(X)
        run_case(case, runners, args, reference(X, K), X, K, too_slow)
        compute_ratios(case)
        cases.append(case)
        print(f"  N={N} k={k} {kernel}: auto={fmt_time(case.times['d2l.auto'])} s ({case.auto_choice})"
              + (f"  MISMATCH: {', '.join(case.mismatches)}" if case.mismatches else ""), file=sys.stderr)

    load_after = load_average()
    settings = thread_settings(backend)
    one_cpu = one_cpu_times(args, backend, cases)
    for case in cases:
        compute_ratios(case)
    memory = None
    if adapter is not None and cases and not args.only:
        largest = max((c for c in cases if c.kernel != "rank1"), key=lambda c: (c.N, c.k))
        X, K = make_inputs(largest.N, largest.k, largest.kernel, args.seed)
        Xn, Kn = adapter.from_numpy(X), adapter.from_numpy(K)
        try:
            memory = {"N": largest.N, "k": largest.k, "kernel": largest.kernel,
                      **measure_memory(lambda: sync(d2lconv.corr2d(Xn, Kn)), X.nbytes)}
        except Exception as error:
            memory = {"error": f"{type(error).__name__}: {error}"}

    print(f"\nMedian seconds per call, backend {backend} ('!' = result disagrees with the float64 reference;"
          " 'auto ->' = the method auto chose; 'auto 1 CPU' and 'speed-up' from a child process on one CPU):\n")
    print(f"Threads: {settings}; load average {load_before} before, {load_after} after; one-CPU run: {one_cpu}\n")
    print(table(cases, args.markdown))
    lines = notes(cases)
    if lines:
        print("\nNotes:\n" + "\n".join(lines))
    if memory:
        print("\n" + memory_line(memory))
    mismatched = [(c.N, c.k, c.kernel, name) for c in cases for name in c.mismatches]
    if mismatched:
        print(f"\n*** {len(mismatched)} RESULT(S) DISAGREE WITH THE FLOAT64 REFERENCE: {mismatched} ***")

    if args.json:
        payload = {
            "backend": backend, "versions": versions(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "args": {k: v for k, v in vars(args).items() if k != "json"},
            "tolerance": TOLERANCE, "cases": [asdict(c) for c in cases], "memory": memory,
            "threads": settings, "load_average": load_before, "load_average_after": load_after,
            "one_cpu_run": one_cpu,
        }
        with open(args.json, "w") as out:
            json.dump(payload, out, indent=1)
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
