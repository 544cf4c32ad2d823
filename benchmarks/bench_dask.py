"""Benchmark the Dask backend: correctness and memory at scale, speed against dask-image, learning a kernel.

Four measurements, each in a subprocess of its own (so each peak resident memory is that run's alone):

- ``scale``: a 20,000 x 20,000 float32 image (1.6 GB), generated chunk by chunk, correlated with a 3x3 and
  a 31x31 kernel and written to Zarr, then read back and checked against the same computation done strip
  by strip in memory (the in-memory NumPy backend on one band of rows at a time): float64 checksums and the
  largest difference. The peak RSS of the Dask run is recorded before the check starts.
- ``speed``: throughput (input pixels per second) on an image that fits in memory, wrapped in the same Dask
  array for d2lconv and for dask-image's ``ndfilters.correlate`` (same chunks, same threaded scheduler,
  every chunk computed and dropped), beside d2lconv's in-memory ``corr2d`` on the NumPy array; at the
  default threads and with one thread. The contenders take turns, one call each per round, and each keeps
  its best time, so that a busy machine slows them alike.
- ``learning``: a 3x3 kernel learned back from a 10,000 x 10,000 generated image (``train_kernel`` on Dask
  arrays, ``lr="auto"``, from zeros), its largest error, the time per epoch and the peak RSS; and from a
  20,000 x 20,000 one, to show the memory does not grow with the image.

Run ``python benchmarks/bench_dask.py --help``; ``--quick`` runs everything on small images in a minute. The
machine's load average is recorded before and after each run: on a shared machine, read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SEED = 2024


# ------------------------------------------------------------------------------------------- the images


def generated_block(seed: int, pattern: float, block_info: dict | None = None) -> np.ndarray:
    """One chunk of the test image: a smooth pattern plus noise, seeded by the chunk's position."""
    (top, bottom), (left, right) = block_info[None]["array-location"]
    noise = np.random.default_rng([seed, top, left]).standard_normal((bottom - top, right - left), dtype=np.float32)
    if not pattern:
        return noise
    rows = np.arange(top, bottom, dtype=np.float32)[:, None]
    cols = np.arange(left, right, dtype=np.float32)[None, :]
    smooth = np.sin(rows / 97.0) * np.cos(cols / 61.0) + 0.4 * np.sin((rows + cols) / 13.0)
    return (pattern * smooth + 0.2 * noise).astype(np.float32)


def generated_image(shape: tuple[int, int], chunks: tuple[int, int], seed: int = SEED, pattern: float = 0.25) -> Any:
    """The lazy test image: nothing exists until a chunk is computed. ``pattern=0`` is white noise."""
    import dask.array as da

    normalized = da.core.normalize_chunks(chunks, shape)
    return da.map_blocks(generated_block, seed=seed, pattern=pattern, chunks=normalized, dtype=np.float32,
                         meta=np.empty((0, 0), np.float32))


def generated_rows(shape: tuple[int, int], chunks: tuple[int, int], start: int, stop: int,
                   seed: int = SEED) -> np.ndarray:
    """Rows ``start:stop`` of the same image, made in memory with the same chunk grid (for the check)."""
    return np.asarray(generated_image(shape, chunks, seed)[start:stop].compute(scheduler="synchronous"))


def kernel(size: int, seed: int = SEED) -> np.ndarray:
    """A random (not separable) kernel with unit norm."""
    K = np.random.default_rng(seed + size).standard_normal((size, size))
    return (K / np.linalg.norm(K)).astype(np.float32)


class Discard:
    """A ``dask.array.store`` target that drops every chunk: the chunks are computed, nothing is kept."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


# ------------------------------------------------------------------------------------------- the phases


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def phase_scale(size: int, chunks: tuple[int, int], k: int, workdir: str) -> dict[str, Any]:
    import dask
    import zarr  # noqa: F401 (imported before the baseline is taken)

    import d2lconv as dc
    import d2lconv.backends.dask  # noqa: F401
    from d2lconv import stores

    baseline = peak_rss_mb()
    X = generated_image((size, size), chunks)
    K = kernel(k)
    path = Path(workdir) / f"response-{k}.zarr"
    threads = os.cpu_count() or 1
    start = time.perf_counter()
    with dc.use_backend("dask"), dask.config.set(scheduler="threads", num_workers=threads):
        Y = dc.corr2d(X, K)
        low, high = stores.write_zarr(Y, path, chunks=chunks, progress=False)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    chunk_mb = chunks[0] * chunks[1] * 4 / 2**20
    # The check: the same rows in memory, one band of output rows (a row of chunks) at a time.
    written = zarr.open_array(str(path), mode="r")
    out_rows = size - k + 1
    total_dask = total_memory = 0.0
    largest_difference = largest_value = 0.0
    with dc.use_backend("numpy"):
        for start_row in range(0, out_rows, chunks[0]):
            stop_row = min(start_row + chunks[0], out_rows)
            rows = generated_rows((size, size), chunks, start_row, stop_row + k - 1)
            expected = dc.corr2d(rows, K)
            got = written[start_row:stop_row]
            total_dask += float(got.sum(dtype=np.float64))
            total_memory += float(expected.sum(dtype=np.float64))
            largest_difference = max(largest_difference, float(np.abs(got - expected).max()))
            largest_value = max(largest_value, float(np.abs(expected).max()))
    stored_bytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    shutil.rmtree(path)
    return {
        "image": [size, size], "chunks": list(chunks), "kernel": [k, k], "threads": threads,
        "seconds": seconds, "pixels_per_second": size * size / seconds,
        "output": [out_rows, out_rows], "range": [low, high], "zarr_bytes": stored_bytes,
        "checksum_dask": total_dask, "checksum_in_memory": total_memory,
        "largest_difference": largest_difference, "largest_value": largest_value,
        "rss_baseline_mb": baseline, "rss_peak_mb": peak, "chunk_mb": chunk_mb,
        "peak_over_chunk_times_threads": (peak - baseline) / (chunk_mb * threads),
        "image_mb": size * size * 4 / 2**20,
    }


def _interleaved(runs: dict[str, Any], repeats: dict[str, int]) -> dict[str, float]:
    """The best time of each callable, taking turns (one of each per round), so that each sees the same load."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(max(repeats.values())):
        for name, run in runs.items():
            if round_ < repeats[name]:
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def phase_speed(size: int, chunks: tuple[int, int], k: int, repeats: int) -> dict[str, Any]:
    import dask
    import dask.array as da
    from dask_image import ndfilters

    import d2lconv as dc

    X = np.asarray(generated_image((size, size), chunks).compute())
    K = kernel(k)
    lazy = da.from_array(X, chunks=chunks)
    result: dict[str, Any] = {"image": [size, size], "chunks": list(chunks), "kernel": [k, k], "repeats": repeats}
    with dc.use_backend("numpy"):
        from d2lconv._auto import choose_method
        from d2lconv._backend import active_adapter

        result["method"] = choose_method(active_adapter(), X.shape, K, (1, 1))
    # One check that the two agree where their outputs overlap (dask-image pads to the input's size).
    with dc.use_backend("dask"):
        ours = dc.to_numpy(dc.corr2d(lazy[:512, :512], K))
    theirs = np.asarray(ndfilters.correlate(lazy[:512, :512], K, mode="constant").compute())
    inside = theirs[k // 2:k // 2 + ours.shape[0], k // 2:k // 2 + ours.shape[1]]  # its windows centred
    result["agreement_with_dask_image"] = float(np.abs(ours - inside).max())

    def in_memory() -> None:
        with dc.use_backend("numpy"):
            dc.corr2d(X, K)

    def d2lconv_dask(threads: int) -> Any:
        def run() -> None:
            with dc.use_backend("dask"), dask.config.set(scheduler="threads", num_workers=threads):
                da.store(dc.corr2d(lazy, K), Discard(), lock=False)
        return run

    def dask_image(threads: int) -> Any:
        def run() -> None:
            with dask.config.set(scheduler="threads", num_workers=threads):
                da.store(ndfilters.correlate(lazy, K, mode="constant"), Discard(), lock=False)
        return run

    def scipy_ndimage() -> None:  # what dask-image runs on each chunk, on the whole image at once
        from scipy import ndimage

        ndimage.correlate(X, K, mode="constant")

    threads = os.cpu_count() or 1
    runs = {"in_memory": in_memory}
    if k <= 7:  # SciPy's direct loop on 31x31 takes tens of seconds
        runs["scipy_ndimage_in_memory"] = scipy_ndimage
    for count in sorted({threads, 1}, reverse=True):
        runs[f"d2lconv_dask_{count}"] = d2lconv_dask(count)
        runs[f"dask_image_{count}"] = dask_image(count)
    slow = max(1, repeats // 2) if k > 7 else repeats  # dask-image's direct 31x31 takes tens of seconds
    result.update(_interleaved(runs, {name: slow if name.startswith("dask_image") else repeats for name in runs}))
    result["threads"] = threads
    return result


def phase_learning(size: int, chunks: tuple[int, int], epochs: int) -> dict[str, Any]:
    import dask

    import d2lconv as dc
    import d2lconv.backends.dask  # noqa: F401 (imported before the baseline is taken)

    baseline = peak_rss_mb()
    # White noise, as the chapter's random X: every direction of the kernel is seen equally, so gradient descent
    # needs few epochs (a smooth image makes the loss ill-conditioned, and plain gradient descent slow).
    X = generated_image((size, size), chunks, seed=SEED + 1, pattern=0.0)
    K = kernel(3, seed=SEED + 1)
    stamps = [time.perf_counter()]
    losses = []

    def progress(epoch: int, loss: float) -> None:
        stamps.append(time.perf_counter())
        losses.append(loss)
        print(f"  learning: epoch {epoch}, loss {loss:.6g}, {stamps[-1] - stamps[-2]:.1f} s", file=sys.stderr,
              flush=True)

    with dc.use_backend("dask"), dask.config.set(scheduler="threads"):
        Y = dc.corr2d(X, K)  # lazy too: each epoch computes the target's blocks beside the prediction's
        start = time.perf_counter()
        result = dc.train_kernel(X, Y, (3, 3), lr="auto", epochs=epochs, init="zeros", callback=progress)
        seconds = time.perf_counter() - start
    error = float(np.abs(result.kernel - K).max())
    return {
        "image": [size, size], "chunks": list(chunks), "epochs": epochs, "lr": result.lr,
        "losses": [float(v) for v in result.losses], "largest_error": error,
        "seconds": seconds, "seconds_first_epoch_with_curvature": stamps[1] - start,
        "seconds_per_epoch": float(np.median(np.diff(stamps[1:]))) if len(stamps) > 2 else seconds,
        "rss_baseline_mb": baseline, "rss_peak_mb": peak_rss_mb(), "image_mb": size * size * 4 / 2**20,
    }


PHASES = {"scale": phase_scale, "speed": phase_speed, "learning": phase_learning}


# ------------------------------------------------------------------------------------------- the driver


def plan(quick: bool) -> list[tuple[str, dict[str, Any]]]:
    if quick:
        return [("scale", {"size": 2000, "chunks": [500, 500], "k": 3}),
                ("scale", {"size": 2000, "chunks": [500, 500], "k": 31}),
                ("speed", {"size": 1024, "chunks": [256, 256], "k": 3, "repeats": 2}),
                ("speed", {"size": 512, "chunks": [256, 256], "k": 31, "repeats": 1}),
                ("learning", {"size": 1000, "chunks": [250, 250], "epochs": 6})]
    return [("scale", {"size": 20000, "chunks": [2000, 2000], "k": 3}),
            ("scale", {"size": 20000, "chunks": [2000, 2000], "k": 31}),
            ("scale", {"size": 20000, "chunks": [250, 20000], "k": 3}),
            ("speed", {"size": 8192, "chunks": [2048, 2048], "k": 3, "repeats": 9}),
            ("speed", {"size": 4096, "chunks": [1024, 1024], "k": 31, "repeats": 2}),
            ("learning", {"size": 10000, "chunks": [2000, 2000], "epochs": 8}),
            ("learning", {"size": 10000, "chunks": [400, 10000], "epochs": 8}),
            ("learning", {"size": 20000, "chunks": [250, 20000], "epochs": 5})]


def run_phase(name: str, params: dict[str, Any], workdir: str) -> dict[str, Any]:
    """One phase in a fresh interpreter, for its own peak memory; its result comes back as JSON."""
    command = [sys.executable, __file__, "--phase", name, "--params", json.dumps(params), "--workdir", workdir]
    load_before = os.getloadavg()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the {name} run {params} failed (exit status {done.returncode}); its error is above")
    result = json.loads(lines[-1])
    result.update(phase=name, load_before=list(load_before), load_after=list(os.getloadavg()))
    return result


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("numpy", "scipy", "dask", "distributed", "zarr", "dask-image"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def markdown(record: dict[str, Any]) -> str:
    lines = [f"Run on {record['date']}, {record['machine']}, Python {record['python']}; "
             + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + "."]
    scale = [r for r in record["results"] if r["phase"] == "scale"]
    if scale:
        lines += ["", "### Correctness and memory at scale (generated chunk by chunk, written to Zarr)", "",
                  "| image | chunks | kernel | time (s) | Mpixel/s | peak RSS (MB) | baseline RSS | chunk MB x threads "
                  "| (peak - baseline) / (chunk x threads) | image MB | checksum Dask | checksum strips in memory "
                  "| largest difference | load before / after |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in scale:
            lines.append(
                f"| {_size(r['image'])} | {_size(r['chunks'])} | {_size(r['kernel'])} | {r['seconds']:.1f} "
                f"| {r['pixels_per_second'] / 1e6:.1f} | {r['rss_peak_mb']:.0f} | {r['rss_baseline_mb']:.0f} "
                f"| {r['chunk_mb'] * r['threads']:.0f} "
                f"| {r['peak_over_chunk_times_threads']:.1f} | {r['image_mb']:.0f} | {r['checksum_dask']:.6e} "
                f"| {r['checksum_in_memory']:.6e} | {r['largest_difference']:.2e} (values up to "
                f"{r['largest_value']:.2g}) | {_load(r)} |")
    speed = [r for r in record["results"] if r["phase"] == "speed"]
    if speed:
        threads = speed[0]["threads"]
        lines += ["", "### Speed: input pixels per second (higher is better); the ratios are of throughputs", "",
                  "| image | chunks | kernel | in-memory corr2d (NumPy) | scipy.ndimage in memory "
                  f"| d2lconv on Dask, {threads} threads | dask-image, {threads} threads | d2lconv / dask-image "
                  "| d2lconv on Dask, 1 thread | dask-image, 1 thread | d2lconv / dask-image "
                  "| d2lconv on Dask (faster of the two) / in-memory | load before / after |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in speed:
            pixels = r["image"][0] * r["image"][1] / 1e6
            ours, theirs = r[f"d2lconv_dask_{threads}"], r[f"dask_image_{threads}"]
            ours_1, theirs_1 = r["d2lconv_dask_1"], r["dask_image_1"]
            scipy_time = r.get("scipy_ndimage_in_memory")
            lines.append(
                f"| {_size(r['image'])} | {_size(r['chunks'])} | {_size(r['kernel'])} "
                f"| {pixels / r['in_memory']:.0f} M/s ({r['method']}) "
                f"| {f'{pixels / scipy_time:.0f} M/s' if scipy_time else '-'} "
                f"| {pixels / ours:.0f} M/s | {pixels / theirs:.1f} M/s | **{theirs / ours:.1f}x** "
                f"| {pixels / ours_1:.0f} M/s | {pixels / theirs_1:.1f} M/s | **{theirs_1 / ours_1:.1f}x** "
                f"| **{r['in_memory'] / min(ours, ours_1):.2f}x** | {_load(r)} |")
    learning = [r for r in record["results"] if r["phase"] == "learning"]
    for r in learning:
        lines += ["", "### Learning a 3x3 kernel on Dask", "",
                  f"{_size(r['image'])} generated image in {_size(r['chunks'])} chunks, "
                  f"target corr2d(X, K) computed lazily too, `train_kernel(X, Y, (3, 3), lr='auto', init='zeros')`: "
                  f"lr {r['lr']:.3g}, largest |learned - K| after {r['epochs']} epochs: **{r['largest_error']:.1e}**; "
                  f"{r['seconds_per_epoch']:.1f} s per epoch (the first, with the curvature: "
                  f"{r['seconds_first_epoch_with_curvature']:.1f} s); peak RSS {r['rss_peak_mb']:.0f} MB for a "
                  f"{r['image_mb']:.0f} MB image; losses {', '.join(f'{v:.3g}' for v in r['losses'])}; "
                  f"load {_load(r)}."]
    return "\n".join(lines) + "\n"


def _size(pair: list[int]) -> str:
    return f"{pair[0]}x{pair[1]}"


def _load(r: dict[str, Any]) -> str:
    return f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images: the whole run in about a minute")
    parser.add_argument("--only", choices=sorted(PHASES), action="append", help="run only these phases")
    parser.add_argument("--json", metavar="OUT.json", help="write every number here")
    parser.add_argument("--markdown", metavar="OUT.md", help="write the tables here (else print them)")
    parser.add_argument("--workdir", help="where the Zarr stores go (default: a temporary directory)")
    parser.add_argument("--tables-from", metavar="RESULTS.json", help="only print the tables of an earlier run")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tables_from:
        print(markdown(json.loads(Path(args.tables_from).read_text())))
        return 0
    if args.phase:  # a child: one phase, its result as the last line of stdout
        params = json.loads(args.params)
        if "chunks" in params:
            params["chunks"] = tuple(params["chunks"])
        if args.phase == "scale":
            params["workdir"] = args.workdir
        print(json.dumps(PHASES[args.phase](**params)))
        return 0
    if "speed" in (args.only or PHASES):
        import importlib.util

        if importlib.util.find_spec("dask_image") is None:
            parser.error("the speed comparison needs dask-image: pip install dask-image (or tox -e bench-dask)")
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-dask-")
    record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {platform.platform()}",
              "python": platform.python_version(), "versions": versions(), "quick": args.quick, "results": []}
    if args.only and args.json and Path(args.json).exists():  # re-running some kinds: keep the others' results
        previous = json.loads(Path(args.json).read_text())
        record["results"] = [r for r in previous.get("results", []) if r.get("phase") not in args.only]
    try:
        for name, params in plan(args.quick):
            if args.only and name not in args.only:
                continue
            print(f"{name} {params} ...", file=sys.stderr, flush=True)
            record["results"].append(run_phase(name, params, workdir))
            print(f"  {json.dumps(record['results'][-1])[:300]}", file=sys.stderr, flush=True)
            if args.json:  # after every run: a failure later keeps what was measured
                Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    text = markdown(record)
    if args.markdown:
        Path(args.markdown).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
