"""Bad input gets a clear ValueError or TypeError that names the problem and the shapes."""

from __future__ import annotations

import numpy as np
import pytest

import d2lconv as dc

X = np.ones((4, 5), dtype=np.float32)


@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    [
        ((np.ones(5), [[1.0]]), ValueError,
         r"X must have at least 2 dimensions \(\.\.\., height, width\), got shape \(5,\)"),
        ((np.ones((2, 2, 2)), np.ones((1, 1, 1))), ValueError, r"K must be 2-D .* \(1, 1, 1\)"),
        ((np.ones((2, 0, 2)), [[1.0]]), ValueError, r"X must not be empty, got shape \(2, 0, 2\)"),
        ((X, np.ones(2)), ValueError, r"K must be 2-D .* \(2,\)"),
        ((X, np.ones((5, 1))), ValueError, r"kernel of shape \(5, 1\) is larger than the input of shape \(4, 5\)"),
        ((X, np.ones((1, 6))), ValueError, r"\(1, 6\) is larger than the input of shape \(4, 5\)"),
        ((np.ones((0, 3)), [[1.0]]), ValueError, r"X must not be empty, got shape \(0, 3\)"),
        ((X, np.ones((1, 0))), ValueError, r"K must not be empty"),
        ((X, [[1j]]), TypeError, r"K: expected real numbers, got dtype complex128"),
        ((np.array([["a", "b"]]), [[1.0]]), TypeError, r"X: expected real numbers, got dtype <U1"),
        ((X, [[1.0, None]]), TypeError, r"K must hold real numbers"),
        (([[1.0, 2.0], [3.0]], [[1.0]]), ValueError, r"X is not a rectangular array"),
        ((X, "abc"), TypeError, r"K: expected real numbers"),
        ((X, 2.0), ValueError, r"K must be 2-D .*got the scalar 2\.0 \(as a 1x1 kernel: \[\[2\.0\]\]\)"),
        ((X, np.float32(3)), ValueError, r"K must be 2-D .*got the scalar 3\.0"),
        ((X, np.array(2.0)), ValueError, r"K must be 2-D .*got (the|a) scalar"),  # a NumPy tensor on NumPy
        ((7, [[1.0]]), ValueError, r"X must be 2-D .*got the scalar 7"),
        ((None, [[1.0]]), TypeError, r"X is None; expected a 2-D array of real numbers"),
        ((X, None), TypeError, r"K is None"),
    ],
)
def test_bad_corr2d_input(args, error, pattern):
    with pytest.raises(error, match=pattern):
        dc.corr2d(*args)


def test_a_dilated_kernel_larger_than_the_input_names_its_span():
    with pytest.raises(ValueError, match=r"kernel of shape \(2, 3\) with dilation \(4, 2\) spans \(5, 5\), which is "
                                         r"larger than the input of shape \(4, 5\)"):
        dc.corr2d(X, np.ones((2, 3)), dilation=(4, 2))
    with pytest.raises(ValueError, match=r"spans \(5, 5\), which is larger than the input of shape \(2, 2\) "
                                         r"padded to \(4, 4\)"):
        dc.corr2d(np.ones((2, 2)), np.ones((2, 2)), dilation=4, padding=1)
    assert dc.to_numpy(dc.corr2d(X, np.ones((2, 3)), dilation=(4, 2), padding=1)).shape == (2, 3)


def test_unknown_method_lists_the_methods():
    with pytest.raises(ValueError, match=r"unknown method 'fast'.*'auto', 'loop', 'direct'"):
        dc.corr2d(X, [[1.0]], method="fast")


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"padding": -1}, ValueError, r"padding must be at least 0"),
        ({"padding": "full"}, ValueError, r"padding must be an int, a pair of ints, 'valid' or 'same'"),
        ({"padding": 1.5}, TypeError, r"padding must be an int or a pair of ints"),
        ({"stride": 0}, ValueError, r"stride must be at least 1"),
        ({"stride": (1, 2, 3)}, TypeError, r"stride must be an int or a pair of ints"),
        ({"dilation": 0}, ValueError, r"dilation must be at least 1 in each dimension, got 0"),
        ({"dilation": (1, 2.0)}, TypeError, r"dilation must be an int or a pair of ints"),
    ],
)
def test_bad_padding_or_stride(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        dc.corr2d(X, [[1.0]], **kwargs)


def test_a_tensor_of_another_framework_names_both_frameworks():
    """Detection goes by the type's module, so a stand-in type is enough to prove the rule everywhere."""
    for module, title in [("torch", "PyTorch"), ("tensorflow.python.framework.ops", "TensorFlow"),
                          ("jaxlib.xla_extension", "JAX/Flax"), ("mxnet.numpy", "MXNet"), ("dask.array.core", "Dask")]:
        foreign = type("Tensor", (), {"__module__": module, "shape": (2, 2)})()
        if module.startswith(dc.get_backend()[:3]) or (dc.get_backend() == "jax" and module.startswith("jax")):
            continue  # the active framework's own tensors are accepted
        with pytest.raises(TypeError, match=rf"X is a {title} tensor .* active backend is '{dc.get_backend()}'"):
            dc.corr2d(foreign, [[1.0]])


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"kernel_size": (1, 0)}, ValueError, r"kernel_size must be at least 1"),
        ({"kernel_size": (1, 2, 3)}, TypeError, r"kernel_size must be an int or a pair of ints"),
        ({"kernel_size": (1.0, 2.0)}, TypeError, r"kernel_size must be an int or a pair of ints"),
        ({"kernel_size": "12"}, TypeError, r"kernel_size must be an int or a pair of ints"),
        ({"epochs": 0}, ValueError, r"epochs must be an int >= 1, got 0"),
        ({"epochs": 2.5}, ValueError, r"epochs must be an int >= 1"),
        ({"lr": 0}, ValueError, r"lr must be a positive number or 'auto', got 0"),
        ({"lr": -0.1}, ValueError, r"lr must be a positive number"),
        ({"lr": float("nan")}, ValueError, r"lr must be a positive number"),
        ({"layer": "keras"}, ValueError, r"unknown layer 'keras'; choose one of 'builtin', 'custom'"),
        ({"init": "ones"}, ValueError, r"unknown init 'ones'; choose one of 'random', 'zeros'"),
        ({"kernel_size": (2, 2)}, ValueError,
         r"Y has shape \(6, 7\) but a \(2, 2\) kernel on X of shape \(6, 8\) gives \(5, 7\)"),
        ({"kernel_size": (7, 2)}, ValueError, r"kernel_size \(7, 2\) is larger than X of shape \(6, 8\)"),
    ],
)
def test_bad_training_arguments(kwargs, error, pattern):
    X, K = dc.book.edge_image(), dc.book.edge_kernel()
    with pytest.raises(error, match=pattern):
        dc.train_kernel(X, dc.corr2d(X, K), **kwargs)


def test_training_data_shapes_are_checked():
    with pytest.raises(ValueError, match=r"Y has shape \(1, 6, 7\) but a \(1, 2\) kernel on X of shape \(6, 8\) "
                                         r"gives \(6, 7\)"):
        dc.train_kernel(np.ones((6, 8)), np.ones((1, 6, 7)))
    with pytest.raises(ValueError, match=r"X must be \(height, width\) or a batch \(N, height, width\), got shape "
                                         r"\(1, 1, 6, 8\) \(for channels, give in_channels and out_channels\)"):
        dc.train_kernel(np.ones((1, 1, 6, 8)), np.ones((1, 1, 6, 7)))
    with pytest.raises(ValueError, match=r"X has 2 channels but in_channels=3"):
        dc.train_kernel(np.ones((4, 2, 6, 8)), np.ones((4, 1, 6, 7)), in_channels=3)
    with pytest.raises(ValueError, match=r"Y has shape \(4, 1, 6, 7\) but a \(1, 2\) kernel with out_channels=2 on X "
                                         r"of shape \(4, 2, 6, 8\) gives \(4, 2, 6, 7\)"):
        dc.train_kernel(np.ones((4, 2, 6, 8)), np.ones((4, 1, 6, 7)), in_channels=2, out_channels=2)
    with pytest.raises(ValueError, match=r"out_channels must be an int >= 1, got 0"):
        dc.train_kernel(np.ones((4, 2, 6, 8)), np.ones((4, 1, 6, 7)), in_channels=2, out_channels=0)


@pytest.mark.parametrize("kernel_size", [0, (2, -1), "3", None])
def test_bad_layer_kernel_size(kernel_size):
    with pytest.raises((TypeError, ValueError), match="kernel_size"):
        dc.Conv2D(kernel_size)


def test_a_native_scalar_is_named_too():
    with pytest.raises(ValueError, match=r"K must be 2-D \(height, width\), got (a|the) scalar"):
        dc.corr2d(X, dc.tensor([[2.0]])[0, 0])


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    ("kernel", "input_shape", "options", "pattern"),
    [
        ((5, 5), (3, 3), {}, r"kernel of shape \(5, 5\) is larger than the input of shape \(3, 3\)"),
        ((4, 4), (3, 3), {}, r"kernel of shape \(4, 4\) is larger than the input of shape \(3, 3\)"),
        ((2, 9), (3, 3), {}, r"kernel of shape \(2, 9\) is larger than the input of shape \(3, 3\)"),
        ((6, 2), (3, 3), {"padding": 1}, r"\(6, 2\) is larger than the input of shape \(3, 3\) padded to \(5, 5\)"),
    ],
)
def test_corr2d_matrix_refuses_a_kernel_larger_than_the_input_as_corr2d_does(kernel, input_shape, options, pattern,
                                                                              sparse):
    """It returned a (1, 9) matrix of zeros, a (0, 9) matrix, or NumPy's "negative dimensions are not allowed"."""
    with pytest.raises(ValueError, match=pattern):
        dc.corr2d(np.ones(input_shape), np.ones(kernel), **options)
    with pytest.raises(ValueError, match=pattern):
        dc.corr2d_matrix(np.ones(kernel), input_shape, sparse=sparse, **options)


@pytest.mark.parametrize(
    ("name", "values", "pattern"),
    [
        ("Y", [np.nan], r"Y holds 1 non-finite value \(1 NaN\) among its 42; learning a kernel needs finite data"),
        ("X", [np.inf, -np.inf, np.nan], r"X holds 3 non-finite values \(1 NaN, 2 inf\) among its 48"),
    ],
)
def test_training_data_must_be_finite(name, values, pattern):
    """A NaN in Y was reported as "lr=0.03 is too large": the data are the problem, and that is said first."""
    X = dc.to_numpy(dc.book.edge_image()).copy()
    Y = dc.to_numpy(dc.corr2d(X, dc.book.edge_kernel())).copy()
    target = X if name == "X" else Y
    target.flat[[5, 17, 30][:len(values)]] = values
    with pytest.raises(ValueError, match=pattern):
        dc.train_kernel(X, Y, lr="auto")
