"""What keeping ``auto`` exact costs: auto against the plain FFT it used to return, in one process.

For each case the script times, back to back on the same float32 input,
- ``plain``: the adapter's own FFT method (what ``auto`` returned before issue 9, and what ``method="fft"``
  costs apart from its non-finite check),
- ``auto``: ``corr2d(X, K)`` (the method it took is shown: ``fft+check`` is the certified FFT),
- ``direct``: the direct method, the exact alternative (only up to ``--direct-max`` taps),
and prints the median seconds and the ratio auto / plain, with the load average before and after.

    D2LCONV_BACKEND=torch python benchmarks/exact_cost.py [--size 2048] [--threads 1]

Cases: random normal X and K (both signs: the certificate needs a second FFT), uniform X with a disc-shaped
blur (one sign: the FFT output certifies itself; a disc, unlike a Gaussian, is not rank one, so auto does not
take the separable method), the same with a dark left half (1e-4 times dimmer: its tiles are recomputed),
and a random X with one NaN (its windows are recomputed by the direct method).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def limit_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--kernels", type=int, nargs="+", default=[15, 31])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--direct-max", type=int, default=225, help="time the direct method up to this many taps")
    args = parser.parse_args()
    if args.threads:
        limit_threads(args.threads)

    import numpy as np

    import d2lconv as dc
    from d2lconv import _corr, _exact
    from d2lconv._backend import active_adapter

    adapter = active_adapter()
    if adapter.corr2d_fft is None:
        print(f"{adapter.NAME}: no FFT method, so auto never takes it and nothing changes")
        return
    taken: list[str] = []
    run, fft = _corr._run, _exact.fft
    _corr._run = lambda adapter, method, *rest: taken.append(method) or run(adapter, method, *rest)
    _exact.fft = lambda *a, **k: taken.append("fft+check" if k.get("certify") else "fft") or fft(*a, **k)

    def seconds(call, repeats):
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dc.to_numpy(call())
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def disc(k):  # a blur that is not rank one (a Gaussian would take the separable method)
        t = np.arange(k) - (k - 1) / 2
        inside = (t[:, None] ** 2 + t[None, :] ** 2 <= (k / 2) ** 2).astype(np.float64)
        return inside / inside.sum()

    rng = np.random.default_rng(0)
    n = args.size
    print(f"backend {adapter.NAME}, {n}x{n} float32, threads {args.threads or 'default'}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'case':22s} {'k':>3s} {'plain fft':>10s} {'auto':>10s} {'auto/plain':>10s} {'direct':>10s}  auto took")
    for k in args.kernels:
        cases = {
            "random, both signs": (rng.standard_normal((n, n)), rng.standard_normal((k, k))),
            "uniform * disc": (rng.random((n, n)), disc(k)),
            "dark half * disc": (rng.random((n, n)) * np.where(np.arange(n) < n // 2, 1e-4, 1.0), disc(k)),
            "random, one NaN": (rng.standard_normal((n, n)), rng.standard_normal((k, k))),
        }
        cases["random, one NaN"][0][n // 3, n // 2] = np.nan
        for name, (X, K) in cases.items():
            X, K = dc.tensor(X.astype(np.float32)), dc.tensor(K.astype(np.float32))
            plain = seconds(lambda X=X, K=K: adapter.corr2d_fft(X, K, (1, 1)), args.repeats)
            taken.clear()
            auto = seconds(lambda X=X, K=K: dc.corr2d(X, K), args.repeats)
            method = taken[0] if taken else "?"
            direct = seconds(lambda X=X, K=K: dc.corr2d(X, K, method="direct"), max(1, args.repeats // 2)) \
                if k * k <= args.direct_max else float("nan")
            print(f"{name:22s} {k:3d} {plain:10.4f} {auto:10.4f} {auto / plain:10.2f} {direct:10.4f}  {method}",
                  flush=True)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
