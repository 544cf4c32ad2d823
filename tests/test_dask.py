"""The Dask backend's own tests: chunk boundaries never change a result, laziness, one computation per block,
the chunk backend, learning and curvature in chunks, a LocalCluster, and the command line's Zarr and TIFF path.

The shared suite runs on the Dask backend too (``tox -e dask``, with 16x16 chunks); these tests choose their
chunkings explicitly, down to one pixel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types

import numpy as np
import pytest
from conftest import assert_close, reference_corr2d

import d2lconv as dc
from d2lconv import _backend

if dc.get_backend() != "dask":
    pytest.skip("the Dask backend's own tests run in its environment (tox -e dask)", allow_module_level=True)

import dask  # noqa: E402
import dask.array as da  # noqa: E402

from d2lconv.backends import dask as dask_backend  # noqa: E402
from d2lconv.backends.dask import tiling  # noqa: E402
from d2lconv.backends.dask.tiling import merge_small, plan_axis  # noqa: E402


def split(length, rng, largest=9):
    """A random irregular chunking of ``length``: sizes from 1 to ``largest``."""
    sizes = []
    while sum(sizes) < length:
        sizes.append(int(min(rng.integers(1, largest + 1), length - sum(sizes))))
    return tuple(sizes)


def in_memory(X, K, **kwargs):
    with dc.use_backend("numpy"):
        return dc.corr2d(X, K, **kwargs)


CASES = [  # input shape, kernel shape, padding, stride
    ((23, 19), (3, 3), 0, 1), ((23, 19), (5, 2), 1, 2), ((30, 17), (7, 7), "same", 1), ((17, 30), (4, 6), (2, 0), 3),
    ((31, 29), (1, 1), 0, (2, 5)), ((12, 40), (12, 3), 0, 1), ((25, 25), (9, 9), 4, (3, 2)), ((9, 9), (2, 2), 0, 4),
]


@pytest.mark.parametrize(("x_shape", "k_shape", "padding", "stride"), CASES)
def test_any_chunking_gives_the_in_memory_result_exactly(x_shape, k_shape, padding, stride, rng):
    """The direct method sums every output element in the same order whatever the blocks: equal bit for bit."""
    X = rng.standard_normal(x_shape).astype(np.float32)
    K = rng.standard_normal(k_shape).astype(np.float32)
    expected = in_memory(X, K, method="direct", padding=padding, stride=stride)
    chunkings = [1, 2, 3, (5, 4), x_shape, (split(x_shape[0], rng), split(x_shape[1], rng)),
                 (split(x_shape[0], rng, 3), split(x_shape[1], rng, 2))]
    for chunks in chunkings:
        Y = dc.corr2d(da.from_array(X, chunks=chunks), K, method="direct", padding=padding, stride=stride)
        assert isinstance(Y, da.Array) and Y.shape == expected.shape
        np.testing.assert_array_equal(dc.to_numpy(Y), expected, err_msg=f"chunks {chunks}")


@pytest.mark.parametrize("method", ["auto", "fft", "separable", "loop"])
@pytest.mark.parametrize(("x_shape", "k_shape", "padding", "stride"), CASES[:5])
def test_every_method_across_chunks_matches_the_reference(method, x_shape, k_shape, padding, stride, rng):
    from d2lconv._inputs import pad_amounts, pair

    X = rng.standard_normal(x_shape).astype(np.float32)
    K = np.outer(rng.standard_normal(k_shape[0]), rng.standard_normal(k_shape[1])).astype(np.float32)
    strides = pair(stride, "stride", minimum=1)
    expected = reference_corr2d(X, K, pad_amounts(padding, x_shape, k_shape, strides), strides)
    for chunks in (2, (split(x_shape[0], rng), split(x_shape[1], rng))):
        Y = dc.corr2d(da.from_array(X, chunks=chunks), K, method=method, padding=padding, stride=stride)
        assert_close(Y, expected, scale=float(np.abs(K).sum()) * 4)


def test_convolve2d_and_float64_across_chunks(rng):
    X = rng.standard_normal((21, 26))
    K = rng.standard_normal((4, 3))
    Y = dc.convolve2d(da.from_array(X, chunks=(5, 6)), K, padding=1)
    assert Y.dtype == np.float64
    np.testing.assert_allclose(dc.to_numpy(Y), reference_corr2d(X, K[::-1, ::-1], ((1, 1), (1, 1))), atol=1e-12)


def test_output_chunks_follow_the_input_chunks():
    """A valid correlation keeps the input's chunks (the last one shrinks by the halo): ready for Zarr."""
    Y = dc.corr2d(da.zeros((300, 250), chunks=(100, 50), dtype=np.float32), np.ones((3, 5), np.float32))
    assert Y.chunks == ((100, 100, 98), (50, 50, 50, 50, 46))
    strided = dc.corr2d(da.zeros((300, 250), chunks=(100, 50), dtype=np.float32), np.ones((3, 3)), stride=2)
    assert strided.chunks == ((50, 50, 49), (25, 25, 25, 25, 24))


def test_axis_plans_merge_short_chunks_and_chunks_without_a_window():
    assert merge_small((1, 1, 5, 2, 1), 3) == (7, 3)
    assert merge_small((2,), 5) == (2,)
    plan = plan_axis((1, 1, 1, 1, 1, 1, 1, 1, 1, 1), 10, 4, 1)  # chunks shorter than the halo (3)
    assert plan.chunks == (3, 3, 4) and plan.counts == (3, 3, 1) and plan.offsets == (0, 0, 0)
    plan = plan_axis((4, 4, 4, 4), 16, 3, 3)  # windows start at 0, 3, 6, 9, 12
    assert plan.chunks == (4, 4, 4, 4) and plan.counts == (2, 1, 1, 1) and plan.offsets == (0, 2, 1, 0)
    plan = plan_axis((10, 10, 10), 30, 25, 1)  # the last two chunks start no window
    assert plan.chunks == (30,) and plan.counts == (6,)


def test_blocks_carry_leading_axes_whatever_their_chunks(rng):
    """Axes before the last two (a batch, channels) ride along in each block, chunked or not."""
    X = rng.standard_normal((3, 2, 23, 17)).astype(np.float32)
    K = rng.standard_normal((3, 4)).astype(np.float32)

    def each_image(window, out=None):
        with dc.use_backend("numpy"):
            result = np.stack([dc.corr2d(image, K, method="direct", stride=(2, 3))
                               for image in window.reshape(-1, *window.shape[-2:])])
        result = result.reshape(*window.shape[:-2], *result.shape[-2:])
        if out is None:
            return result
        out[...] = result
        return out

    expected = each_image(X)
    for chunks in [(1, 2, 3, 4), (3, 1, 5, 100), 2]:
        tiles = tiling.tile(da.from_array(X, chunks=chunks), K.shape, (2, 3))
        np.testing.assert_array_equal(tiling.map_windows(each_image, tiles, dtype=np.float32).compute(), expected)
        total = tiling.block_sums(lambda window: [each_image(window).sum(dtype=np.float64)], tiles, size=1)
        assert float(total.compute()[0]) == pytest.approx(expected.sum(dtype=np.float64), rel=1e-9)


def test_the_result_is_lazy_and_every_block_is_computed_once(monkeypatch, rng):
    lock, calls, reads = threading.Lock(), [], []
    real = tiling._call_on_window

    def counting(*arrays, block_id=None, **kwargs):
        with lock:
            calls.append(block_id)
        return real(*arrays, block_id=block_id, **kwargs)

    def read(block):
        with lock:
            reads.append(block.shape)
        return block

    monkeypatch.setattr(tiling, "_call_on_window", counting)
    X = da.from_array(rng.standard_normal((60, 44)).astype(np.float32), chunks=(16, 12)).map_blocks(
        read, meta=np.empty((0, 0), np.float32))
    Y = dc.corr2d(X, np.ones((5, 3), np.float32), padding=1)
    assert isinstance(Y, da.Array) and calls == [] and reads == []
    result = dc.to_numpy(Y)
    assert sorted(calls) == sorted(np.ndindex(Y.numblocks))  # one computation per block of the output
    assert len(reads) == X.npartitions  # every input chunk read once, its halo copied to its neighbours
    np.testing.assert_allclose(result, in_memory(dc.to_numpy(X), np.ones((5, 3), np.float32), padding=1), atol=1e-5)
    # over channels too: the channel axis is joined into one chunk, every input chunk still read once
    calls.clear(), reads.clear()
    X = da.from_array(rng.standard_normal((2, 3, 40, 30)).astype(np.float32), chunks=(1, 2, 16, 12)).map_blocks(
        read, meta=np.empty((0,) * 4, np.float32))
    K = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    Y = dc.corr2d_multi_in_out(X, K, padding=1, dilation=2)
    assert isinstance(Y, da.Array) and calls == [] and reads == []
    result = dc.to_numpy(Y)
    assert sorted(calls) == sorted(np.ndindex(Y.numblocks)) and Y.numblocks[:2] == (2, 1)
    assert len(reads) == X.npartitions
    np.testing.assert_allclose(result, in_memory_channels(dc.to_numpy(X), K, padding=1, dilation=2), atol=1e-4)


def test_a_dask_kernel_and_a_dask_array_on_another_backend():
    K = da.from_array(np.array([[0.0, 1], [2, 3]], dtype=np.float32))
    assert_close(dc.corr2d(dc.book.figure_input(), K), [[19.0, 25.0], [37.0, 43.0]])
    with dc.use_backend("numpy"), pytest.raises(TypeError, match=r"X is a Dask tensor .* active backend is 'numpy'.*"
                                                                 r"use_backend\('dask'\)"):
        dc.corr2d(da.ones((4, 4)), np.ones((2, 2)))
    with dc.use_backend("numpy"):  # to_numpy computes a Dask array whatever the backend
        assert dc.to_numpy(da.ones((2, 3), chunks=1)).tolist() == [[1.0] * 3] * 2


# --- the chunk backend ---------------------------------------------------------------------------------------


def test_chunk_backend_choice_and_its_errors():
    assert dask_backend.get_chunk_backend() == "numpy"
    with dask_backend.use_chunk_backend(" NumPy ") as name:
        assert name == "numpy"
    with pytest.raises(ValueError, match="cannot compute its own chunks"):
        dask_backend.set_chunk_backend("dask")
    with pytest.raises(ValueError, match="unknown backend 'caffe'"):
        dask_backend.set_chunk_backend("caffe")
    missing = [name for name in dc.BACKENDS if name not in dc.available_backends()]
    with pytest.raises(dc.BackendNotInstalledError, match=rf"pip install 'd2lconv\[{missing[0]}\]'"):
        dask_backend.set_chunk_backend(missing[0])
    assert dask_backend.get_chunk_backend() == "numpy"


@pytest.fixture
def spy_backend(monkeypatch):
    """A stand-in 'torch' chunk backend: NumPy's arithmetic, recording the outputs it computes, and no FFT."""
    from d2lconv.backends import numpy as numpy_adapter

    seen = []
    spy = types.ModuleType("spy")
    for name in dir(numpy_adapter):
        if not name.startswith("__"):
            setattr(spy, name, getattr(numpy_adapter, name))

    def direct(X, K, stride=(1, 1), dilation=(1, 1)):
        Y = numpy_adapter.corr2d_direct(X, K, stride, dilation)
        seen.append(Y.size)
        return Y

    spy.NAME, spy.corr2d_direct, spy.corr2d_fft, spy.NO_FFT = "torch", direct, None, "the spy has no FFT"
    monkeypatch.setitem(_backend._adapters, "torch", spy)
    return seen


def test_another_chunk_backend_computes_every_block(spy_backend, rng):
    X = rng.standard_normal((40, 33)).astype(np.float32)
    K = rng.standard_normal((3, 3)).astype(np.float32)
    with dask_backend.use_chunk_backend("torch"):
        Y = dc.corr2d(da.from_array(X, chunks=10), K, method="direct")
        assert dask_backend.corr2d_fft is None and "spy has no FFT" in dask_backend.NO_FFT
        with pytest.raises(ValueError, match=r"method='fft' is not available on the 'dask' backend: its chunks are "
                                             r"computed by the 'torch' backend"):
            dc.corr2d(da.from_array(X, chunks=10), K, method="fft")
    assert spy_backend == []  # nothing computed yet ...
    result = dc.to_numpy(Y)  # ... and the graph remembers its chunk backend after the block
    assert sum(spy_backend) == Y.size and len(spy_backend) >= Y.npartitions == 16  # every output once, by the spy
    np.testing.assert_array_equal(result, in_memory(X, K, method="direct"))
    assert dask_backend.corr2d_fft is not None  # NumPy's again


# --- layer, gradients, learning ---------------------------------------------------------------------------------


def test_layer_and_gradients_across_chunks_equal_the_numpy_backend(rng):
    x = rng.standard_normal((29, 23)).astype(np.float32)
    G = rng.standard_normal((10, 7)).astype(np.float32)
    layer = dc.Conv2D((4, 3), seed=5, padding=(1, 2), stride=(3, 4))
    y = layer(da.from_array(x, chunks=(4, 5)))
    grads = dc.layer_gradients(layer, da.from_array(x, chunks=(4, 5)), G)
    with dc.use_backend("numpy"):
        reference = dc.Conv2D((4, 3), seed=5, padding=(1, 2), stride=(3, 4))
        np.testing.assert_allclose(dc.to_numpy(y), reference(x), rtol=1e-6, atol=1e-6)
        expected = dc.layer_gradients(reference, x, G)
        dX, dK = dc.corr2d_gradients(x, reference.weight, G, padding=(1, 2), stride=(3, 4))
    for name in ("weight", "bias"):
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-5)
    dX_chunked, dK_chunked = dc.corr2d_gradients(da.from_array(x, chunks=3), reference.weight, G,
                                                 padding=(1, 2), stride=(3, 4))
    np.testing.assert_allclose(dX_chunked, dX, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dK_chunked, dK, rtol=1e-5, atol=1e-5)


def test_a_kernel_is_learned_from_chunks_as_on_numpy(rng):
    X = rng.standard_normal((45, 38)).astype(np.float32)
    K = rng.standard_normal((3, 3)).astype(np.float32)
    Y = in_memory(X, K)
    epochs = []
    result = dc.train_kernel(da.from_array(X, chunks=(7, 11)), da.from_array(Y, chunks=(13, 5)), (3, 3), lr="auto",
                             epochs=40, init="zeros", callback=lambda epoch, loss: epochs.append(epoch))
    assert epochs == list(range(1, 41))
    # lr="auto" in chunks takes the exact curvature (the Gram matrix's largest eigenvalue): the in-memory power
    # iteration agrees to its tolerance, and exactly when run to convergence.
    assert result.lr == pytest.approx(1 / dc.largest_curvature(X, (3, 3)), rel=1e-4)
    assert result.lr == pytest.approx(1 / dc.largest_curvature(X, (3, 3), iterations=5000, tolerance=1e-13),
                                      rel=1e-8)
    with dc.use_backend("numpy"):
        reference = dc.train_kernel(X, Y, (3, 3), lr=result.lr, epochs=40, init="zeros")
    np.testing.assert_allclose(result.losses[:10], reference.losses[:10], rtol=1e-4)
    np.testing.assert_allclose(result.kernel, K, atol=1e-3)


def test_training_never_loads_the_image_whole(monkeypatch, rng):
    """Checks, curvature, epochs and least squares all go block by block: computing a whole input is refused."""
    real = dask_backend.to_numpy

    def only_small(x):
        assert getattr(x, "size", 0) < 500, f"an array of {x.size} elements was loaded whole"
        return real(x)

    monkeypatch.setattr(dask_backend, "to_numpy", only_small)
    X = rng.standard_normal((40, 50)).astype(np.float32)
    Y = in_memory(X, np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32))
    result = dc.train_kernel(da.from_array(X, chunks=12), da.from_array(Y, chunks=15), (2, 2), lr="auto", epochs=5)
    np.testing.assert_allclose(result.kernel, [[1.0, 2.0], [-1.0, 0.5]], atol=1e-3)
    K = rng.standard_normal((3, 2)).astype(np.float32)  # solved for exactly: the normal equations block by block
    target = in_memory(X, K)
    solved = dc.least_squares_kernel(da.from_array(X, chunks=(7, 16)), da.from_array(target, chunks=9), (3, 2))
    with dc.use_backend("numpy"):
        np.testing.assert_allclose(solved, dc.least_squares_kernel(X, target, (3, 2)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(solved, K, atol=1e-5)
    X[3, 4], X[20, 7] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"X holds 2 non-finite values \(1 NaN, 1 inf\) among its 2000; "):
        dc.train_kernel(da.from_array(X, chunks=12), da.from_array(Y, chunks=15), (2, 2))


@pytest.mark.parametrize("kernel_shape", [(3, 3), (1, 2), (9, 8)], ids=["gram", "gram-1x2", "power-iteration"])
@pytest.mark.parametrize("bias", [False, True])
def test_curvature_in_chunks_equals_the_in_memory_one(kernel_shape, bias, rng):
    assert (kernel_shape[0] * kernel_shape[1] > dask_backend.curvature.GRAM_TAPS) == (kernel_shape == (9, 8))
    X = rng.random((50, 41)) - 0.3
    expected = dc.largest_curvature(X, kernel_shape, bias=bias)
    chunked = dc.largest_curvature(da.from_array(X, chunks=(6, 13)), kernel_shape, bias=bias)
    assert chunked == pytest.approx(expected, rel=1e-5)


def test_bias_and_divergence_in_chunks(rng):
    X = rng.standard_normal((30, 30)).astype(np.float32)
    Y = in_memory(X, np.array([[1.0, -1.0]], np.float32)) + 0.5
    learned = dc.train_kernel(da.from_array(X, chunks=9), Y, bias=True, lr="auto", epochs=60, layer="custom")
    assert np.abs(learned.kernel - [[1.0, -1.0]]).max() < 1e-3 and learned.bias == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(dc.TrainingDivergedError, match="is too large for this data"):
        dc.train_kernel(da.from_array(X, chunks=9), Y, bias=True, lr=1.0, epochs=20)


def test_writing_a_large_response_holds_only_a_few_chunks(tmp_path):
    """Generated and written chunk by chunk: peak traced memory is a few chunks, far below the image's 32 MB.

    Chunks span the width, so a chunk waiting to give its halo to the block above is one chunk, not a row.
    """
    import tracemalloc

    from d2lconv import stores

    X = da.random.default_rng(0).random((8000, 1000), chunks=(100, 1000), dtype=np.float32)
    Y = dc.corr2d(X, np.ones((5, 5), np.float32) / 25)
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="threads", num_workers=2):
            low, high = stores.write_zarr(Y, tmp_path / "out.zarr", chunks=(100, 1000), progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * 100 * 1000 * 4, peak  # 30 chunks of 0.4 MB: 12 MB
    import zarr

    written = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert written.shape == (7996, 996) and written.chunks == (100, 996)
    block = written[3950:4250, 240:260]
    expected = in_memory(X[3950:4254, 240:264].compute(), np.ones((5, 5), np.float32) / 25)
    np.testing.assert_allclose(block, expected, atol=1e-6)
    assert 0 < low < 0.5 < high < 1


# --- channels (the book's next section) ---------------------------------------------------------------------------

CHANNEL_CASES = [  # (leading axes, C, O, groups, kernel, stride, dilation, padding)
    ((2,), 3, 4, 1, (3, 3), (1, 1), (1, 1), 0),
    ((3,), 4, 6, 2, (3, 2), (2, 1), (1, 2), 1),  # groups, stride, dilation
    ((2, 1), 4, 4, 4, (5, 5), (1, 1), (2, 2), "same"),  # depthwise, two leading axes, a halo of 8
    ((), 1, 3, 1, (4, 3), (3, 2), (1, 1), (2, 0)),  # a filter bank on one image
    ((2,), 5, 2, 1, (1, 1), (2, 2), (1, 1), 1),  # 1x1
]


def in_memory_channels(X, K, **kwargs):
    with dc.use_backend("numpy"):
        return dc.to_numpy(dc.corr2d_multi_in_out(X, K, **kwargs))


def channel_chunkings(shape, rng):
    """Chunkings of an ``(..., C, H, W)`` array: one element, odd sizes, irregular ones smaller than the halos."""
    lead = len(shape) - 2
    return [1, (*(1,) * lead, 3, 5), (*(2,) * lead, 7, 4), tuple(split(n, rng, 3) for n in shape), shape]


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("case", CHANNEL_CASES, ids=lambda case: f"{case[1]}to{case[2]}-g{case[3]}-k{case[4]}")
@pytest.mark.parametrize("method", ["auto", "fft"])
def test_channel_functions_across_any_chunking_equal_in_memory(method, case, last, rng):
    """Any chunks of the batch, channel and image axes, down to one element (far smaller than the halo)."""
    lead, C, O, groups, kernel, stride, dilation, padding = case
    X = rng.standard_normal((*lead, C, 19, 17)).astype(np.float32)
    K = rng.standard_normal((O, C // groups, *kernel)).astype(np.float32)
    options = dict(groups=groups, padding=padding, stride=stride, dilation=dilation,
                   data_format="channels_last" if last else "channels_first")
    laid = np.moveaxis(X, -3, -1) if last else X
    expected = in_memory_channels(laid, K, method="direct", **options)
    for chunks in channel_chunkings(laid.shape, rng):
        Y = dc.corr2d_multi_in_out(da.from_array(laid, chunks=chunks), K, method=method, **options)
        assert isinstance(Y, da.Array) and Y.shape == expected.shape
        assert Y.chunks[-1 if last else -3] == (O,)  # every output channel of a pixel in one block
        assert Y.chunks[:len(lead)] == da.from_array(laid, chunks=chunks).chunks[:len(lead)]  # the batch's own
        np.testing.assert_allclose(dc.to_numpy(Y), expected, rtol=1e-5, atol=1e-5 * float(np.abs(K).sum()),
                                   err_msg=f"chunks {chunks}")


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
def test_multi_in_1x1_and_the_layer_across_chunks(last, rng):
    X = rng.standard_normal((3, 4, 14, 11)).astype(np.float32)
    laid = np.moveaxis(X, -3, -1) if last else X
    layout = "channels_last" if last else "channels_first"
    K = rng.standard_normal((4, 3, 2)).astype(np.float32)
    K1 = rng.standard_normal((5, 4)).astype(np.float32)
    with dc.use_backend("numpy"):
        multi_in = dc.corr2d_multi_in(laid, K, padding=1, stride=(2, 1), dilation=(1, 3), data_format=layout)
        one_by_one = dc.corr2d_multi_in_out_1x1(laid, K1, padding=(1, 0), stride=2, data_format=layout)
        layer = dc.Conv2D((3, 2), in_channels=4, out_channels=6, groups=2, seed=3, padding="same", dilation=(2, 1),
                          data_format=layout)
        layer.bias[...] = rng.standard_normal(6)
        response = layer(laid)
    chunked = dc.Conv2D((3, 2), in_channels=4, out_channels=6, groups=2, seed=3, padding="same", dilation=(2, 1),
                        data_format=layout)
    chunked.bias[...] = layer.bias
    for chunks in [(1, 1, 2, 3), (2, 3, 5, 1), (3, 4, 14, 11)]:
        x = da.from_array(laid, chunks=chunks)
        for actual, expected in [
            (dc.corr2d_multi_in(x, K, padding=1, stride=(2, 1), dilation=(1, 3), data_format=layout), multi_in),
            (dc.corr2d_multi_in_out_1x1(x, K1, padding=(1, 0), stride=2, data_format=layout), one_by_one),
            (chunked(x), response),
        ]:
            assert isinstance(actual, da.Array)
            np.testing.assert_allclose(dc.to_numpy(actual), expected, rtol=1e-5, atol=1e-4, err_msg=f"chunks {chunks}")


@pytest.mark.parametrize("last", [False, True], ids=["channels_first", "channels_last"])
def test_channel_gradients_and_layer_gradients_across_chunks_equal_numpy(last, rng):
    layout = "channels_last" if last else "channels_first"
    X = rng.standard_normal((2, 4, 13, 12)).astype(np.float32)
    K = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    options = dict(groups=2, padding=1, stride=(2, 1), dilation=(1, 2), data_format=layout)
    laid = np.moveaxis(X, -3, -1) if last else X
    with dc.use_backend("numpy"):
        G = rng.standard_normal(dc.to_numpy(dc.corr2d_multi_in_out(laid, K, **options)).shape).astype(np.float32)
        dX, dK = dc.gradients(dc.corr2d_multi_in_out, laid, K, G, **options)
        layer = dc.Conv2D((3, 2), in_channels=4, out_channels=6, groups=2, seed=1, padding=1, stride=(2, 1),
                          dilation=(1, 2), data_format=layout)
        expected = dc.layer_gradients(layer, laid, G)
    chunked_layer = dc.Conv2D((3, 2), in_channels=4, out_channels=6, groups=2, seed=1, padding=1, stride=(2, 1),
                              dilation=(1, 2), data_format=layout)
    for chunks in [1, (1, 3, 4, 5), (2, 2, 7, 3)]:
        x = da.from_array(laid, chunks=chunks)
        dX_chunked, dK_chunked = dc.gradients(dc.corr2d_multi_in_out, x, K, da.from_array(G, chunks=3), **options)
        np.testing.assert_allclose(dX_chunked, dX, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dK_chunked, dK, rtol=1e-5, atol=1e-4)
        grads = dc.layer_gradients(chunked_layer, x, G)
        for name in ("weight", "bias"):
            np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-4)


def test_kernels_and_biases_are_learned_with_channels_from_chunks_as_on_numpy(rng):
    X = rng.standard_normal((6, 3, 20, 18)).astype(np.float32)
    K = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
    b = np.array([0.5, -1.0], dtype=np.float32)
    Y = in_memory_channels(X, K) + b[:, None, None]
    chunked = dict(X=da.from_array(X, chunks=(4, 1, 7, 5)), Y=da.from_array(Y, chunks=(3, 1, 9, 4)))
    result = dc.train_kernel(chunked["X"], chunked["Y"], (3, 2), lr="auto", epochs=40, init="zeros", bias=True,
                             in_channels=3, out_channels=2)
    with dc.use_backend("numpy"):
        assert result.lr == pytest.approx(1 / dc.largest_curvature(X, (2, 3, 3, 2), bias=True,
                                                                   iterations=5000, tolerance=1e-13), rel=1e-6)
        reference = dc.train_kernel(X, Y, (3, 2), lr=result.lr, epochs=5, init="zeros", bias=True, in_channels=3,
                                    out_channels=2)
    np.testing.assert_allclose(result.losses[:5], reference.losses, rtol=1e-4)  # later ones are float32 rounding
    np.testing.assert_allclose(result.kernel, K, atol=1e-3)
    np.testing.assert_allclose(result.bias, b, atol=1e-3)


@pytest.mark.parametrize("kernel_shape", [(2, 3, 2, 2), (1, 3, 5, 5)], ids=["gram", "power-iteration"])
def test_curvature_with_channels_and_batches_in_chunks_equals_the_in_memory_one(kernel_shape, rng):
    X = rng.random((3, 3, 21, 19)) - 0.3
    chunked = da.from_array(X, chunks=(2, 1, 6, 7))
    for bias in (False, True):
        expected = dc.largest_curvature(X, kernel_shape, bias=bias)
        assert dc.largest_curvature(chunked, kernel_shape, bias=bias) == pytest.approx(expected, rel=1e-5)
    batch = X[:, 0]  # a batch of single-channel images with a 2-D kernel
    assert dc.largest_curvature(da.from_array(batch, chunks=(1, 5, 4)), (3, 3)) == pytest.approx(
        dc.largest_curvature(batch, (3, 3)), rel=1e-5)


def test_channel_errors_come_when_the_array_is_built(rng):
    X = da.from_array(rng.standard_normal((2, 12, 12)).astype(np.float32), chunks=5)
    with pytest.raises(ValueError, match=r"one input channel per group .* this K has shape \(3, 2, 3, 3\)"):
        dc.corr2d_multi_in_out(X, np.ones((3, 2, 3, 3)), method="separable")
    with pytest.raises(ValueError, match=r"method='native' is not available on the 'dask' backend: its chunks are "
                                         r"computed by the 'numpy' backend"):
        dc.corr2d_multi_in_out(X, np.ones((3, 2, 3, 3)), method="native")
    with pytest.raises(ValueError, match=r"^X has 2 channels but K expects 4"):
        dc.corr2d_multi_in_out(X, np.ones((3, 4, 3, 3)))


# --- dask.distributed -------------------------------------------------------------------------------------------


def test_a_local_cluster_of_processes_gives_the_threaded_result(rng):
    distributed = pytest.importorskip("distributed")
    X = rng.standard_normal((120, 90)).astype(np.float32)
    K = rng.standard_normal((5, 5)).astype(np.float32)
    Y = in_memory(X, K)

    def run():
        lazy = dc.corr2d(da.from_array(X, chunks=32), K, method="direct", padding=2, stride=(1, 2))
        learned = dc.train_kernel(da.from_array(X, chunks=32), Y, (5, 5), lr="auto", epochs=3, init="zeros")
        return dc.to_numpy(lazy), learned

    with dask.config.set(scheduler="threads"):
        threaded, threaded_learning = run()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        clustered, clustered_learning = run()
    assert len(pids) == 2 and os.getpid() not in pids  # the work ran in two other processes
    np.testing.assert_array_equal(clustered, threaded)
    assert clustered_learning.losses == threaded_learning.losses
    np.testing.assert_array_equal(clustered_learning.kernel, threaded_learning.kernel)


# --- the command line's Zarr and TIFF path ---------------------------------------------------------------------


def run_cli(folder, *args):
    return subprocess.run([sys.executable, "-m", "d2lconv.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=folder, env={**os.environ})


@pytest.fixture
def scan(tmp_path, rng):
    image = rng.random((300, 260)).astype(np.float32)
    da.from_array(image, chunks=(64, 48)).to_zarr(str(tmp_path / "scan.zarr"))
    return image


def test_edges_filters_a_zarr_store_into_a_new_one(tmp_path, scan):
    done = run_cli(tmp_path, "edges", "scan.zarr", "--kernel", "sobel-x", "--chunks", "100")
    assert done.returncode == 0, done.stderr
    assert "'scan.zarr' (300x260, float32, chunks 100x100)" in done.stdout
    assert "each chunk computed by 'numpy'" in done.stdout
    assert "wrote scan-sobel-x.zarr (Zarr, float32, chunks 100x100)" in done.stdout
    assert done.stderr == ""  # no progress bar: stderr is not a terminal
    import zarr

    written = zarr.open_array(str(tmp_path / "scan-sobel-x.zarr"), mode="r")
    expected = in_memory(scan, dc.to_numpy(dc.kernels.sobel(axis=1)))
    np.testing.assert_allclose(written[:], expected, atol=1e-5)
    assert f"range [{expected.min():.4g}, {expected.max():.4g}]" in done.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scan-sobel-x.zarr", "scan.zarr"]


def test_edges_writes_any_image_as_zarr(tmp_path):
    from d2lconv.images import sample_image

    done = run_cli(tmp_path, "edges", "-o", "sample.zarr", "--kernel", "laplacian", "--chunks", "50")
    assert done.returncode == 0, done.stderr
    assert "the sample image (128x128, float32, chunks 50x50)" in done.stdout
    expected = in_memory(sample_image().astype(np.float32), dc.to_numpy(dc.kernels.laplacian()))
    np.testing.assert_allclose(dc.to_numpy(da.from_zarr(str(tmp_path / "sample.zarr"))), expected, atol=1e-5)


def test_edges_reads_a_compressed_tiled_tiff_and_a_plain_one(tmp_path, rng):
    tifffile = pytest.importorskip("tifffile")
    image = rng.integers(0, 65535, (200, 170), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "tiled.tif", image, tile=(64, 64), compression="zlib")
    tifffile.imwrite(tmp_path / "plain.tiff", image.astype(np.float32))
    import zarr

    expected = in_memory(image.astype(np.float32), np.ones((3, 3), np.float32) / 9)
    for name in ("tiled.tif", "plain.tiff"):
        done = run_cli(tmp_path, "edges", name, "--kernel", "box", "-o", f"{name}.zarr", "--quiet")
        assert done.returncode == 0, done.stderr
        np.testing.assert_allclose(zarr.open_array(str(tmp_path / f"{name}.zarr"), mode="r")[:], expected, rtol=1e-5)


@pytest.mark.parametrize(("args", "fragment"), [
    (["scan.zarr", "-o", "scan.zarr"], "it is the input"),
    (["scan.zarr", "-o", "taken.zarr"], "it already exists"),
    (["scan.zarr", "-o", "out.png"], "written as a new Zarr store, named NAME.zarr"),
    (["scan.zarr", "--plot", "figure.png"], "--plot draws the whole image in memory"),
    (["scan.zarr", "-o", "nowhere/out.zarr"], "'nowhere' does not exist"),
    (["missing.zarr"], "cannot read 'missing.zarr': no such file or directory"),
    (["notes.tif"], "cannot read TIFF 'notes.tif'"),
    (["scan.zarr", "--kernel-values", ";".join(["1"] * 301)], "kernel is larger than the image"),
])
def test_edges_refuses_to_overwrite_and_explains(tmp_path, scan, args, fragment):
    (tmp_path / "taken.zarr").mkdir()
    (tmp_path / "notes.tif").write_text("not a TIFF")
    before = sorted(path.name for path in tmp_path.iterdir())
    done = run_cli(tmp_path, "edges", *args)
    assert done.returncode in (1, 2) and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert fragment in done.stderr, done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # nothing written, nothing left behind
    assert dc.to_numpy(da.from_zarr(str(tmp_path / "scan.zarr"))).tolist() == scan.tolist()


def test_learn_refuses_a_zarr_store_and_says_what_does_it(tmp_path, scan):
    done = run_cli(tmp_path, "learn", "scan.zarr")
    assert done.returncode == 2 and "it is a Zarr store" in done.stderr and "train_kernel" in done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_edges_shows_daskss_progress_bar_on_a_terminal(tmp_path, scan):
    import pty

    main, secondary = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run([sys.executable, "-m", "d2lconv.cli", "edges", "scan.zarr", "--chunks", "64"],
                              stdout=subprocess.PIPE, stderr=secondary, text=True, timeout=600, cwd=tmp_path)
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(main)
    assert done.returncode == 0
    assert "100% Completed" in b"".join(chunks).decode(errors="replace")
