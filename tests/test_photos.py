"""Real photographs, not only drawn samples: scikit-image's bundled camera, astronaut and coins (they load
offline, from the package itself) through corr2d, convolve2d, the matrix form and kernel learning, on
whichever backend the suite runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import BACKEND, assert_close, each_method, reference_corr2d
from scipy import signal
from skimage import color, data

import d2lconv as dc
from d2lconv.plots import robust_limit

PHOTOS = ("camera", "astronaut", "coins")
LEARNED = ("sobel-x", "laplacian", "gaussian")


def photo(name: str) -> np.ndarray:
    """A scikit-image sample as grayscale float64 in [0, 1] (camera and coins are gray; astronaut is RGB)."""
    image = getattr(data, name)()
    if image.ndim == 3:
        image = color.rgb2gray(image)
    return np.asarray(image, dtype=np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)


@pytest.fixture(scope="module", params=PHOTOS)
def any_photo(request):
    return request.param, photo(request.param)


def named(kernel: str) -> np.ndarray:
    return dc.to_numpy(dc.kernels.named(kernel)).astype(np.float64)


def test_the_photos_are_real_photographs():
    shapes = {name: photo(name).shape for name in PHOTOS}
    assert shapes == {"camera": (512, 512), "astronaut": (512, 512), "coins": (303, 384)}
    for name in PHOTOS:
        image = photo(name)
        assert 0.0 <= image.min() < 0.2 and 0.8 < image.max() <= 1.0, name  # a full tonal range
        assert len(np.unique(np.round(image * 255))) > 150, name  # many grey levels, not a drawing


@pytest.mark.parametrize("method", each_method([m for m in dc.METHODS if m != "loop"]))
def test_corr2d_on_each_photo_matches_the_float64_oracle(any_photo, method):
    name, image = any_photo
    rng = np.random.default_rng(7)
    if method == "separable":  # two 1-D passes: a rank-one kernel
        kernel = np.outer(rng.normal(size=5), rng.normal(size=5))
    else:
        kernel = rng.normal(size=(5, 5))
    expected = reference_corr2d(image, kernel)
    actual = dc.corr2d(dc.tensor(image.astype(np.float32)), dc.tensor(kernel.astype(np.float32)), method=method)
    assert_close(actual, expected, scale=float(np.abs(kernel).sum()))


@pytest.mark.parametrize("kernel", ["sobel-x", "laplacian", "gaussian", "box"])
def test_named_kernels_on_a_photo_match_scipy(any_photo, kernel):
    _, image = any_photo
    K = named(kernel)
    expected = signal.correlate2d(image, K, mode="valid")
    assert_close(dc.corr2d(dc.tensor(image.astype(np.float32)), dc.tensor(K)), expected,
                 scale=float(np.abs(K).sum()))


def test_the_books_loop_on_a_photo_crop_matches_the_oracle():
    crop = photo("camera")[200:224, 240:260]  # the loop is the book's per-element code: kept small
    K = named("sobel-y")
    assert_close(dc.corr2d(dc.tensor(crop.astype(np.float32)), dc.tensor(K), method="loop"),
                 reference_corr2d(crop, K), scale=8.0)


def test_convolve2d_padding_and_stride_on_a_photo_match_scipy():
    image = photo("coins")
    K = np.random.default_rng(3).normal(size=(4, 3))
    X = dc.tensor(image.astype(np.float32))
    scale = float(np.abs(K).sum())
    assert_close(dc.convolve2d(X, dc.tensor(K.astype(np.float32))), signal.convolve2d(image, K, mode="valid"),
                 scale=scale)
    padded = reference_corr2d(image, K, padding=((2, 2), (1, 1)), stride=(2, 3))
    assert_close(dc.corr2d(X, dc.tensor(K.astype(np.float32)), padding=(2, 1), stride=(2, 3)), padded, scale=scale)


def test_the_matrix_form_on_a_photo_crop():
    crop = photo("astronaut")[100:130, 180:205]
    K = named("sobel-x")
    M = dc.to_numpy(dc.corr2d_matrix(dc.tensor(K), crop.shape)).astype(np.float64)
    expected = reference_corr2d(crop, K)
    np.testing.assert_allclose((M @ crop.ravel()).reshape(expected.shape), expected, atol=1e-5)


@pytest.mark.parametrize("kernel", LEARNED)
@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_least_squares_recovers_a_kernel_from_a_photo(name, kernel):
    image = photo(name)
    image = image - image.mean()
    K = named(kernel)
    X = dc.tensor(image.astype(np.float32))
    Y = dc.corr2d(X, dc.tensor(K))
    learned = dc.least_squares_kernel(X, Y, K.shape)
    assert isinstance(learned, np.ndarray) and learned.dtype == np.float64 and learned.shape == K.shape
    # The targets carry float32 rounding from the backend's corr2d; the solve itself is float64.
    assert np.abs(learned - K).max() < 1e-4, np.abs(learned - K).max()


def test_least_squares_is_the_minimum_gradient_descent_approaches():
    crop = photo("coins")[60:124, 100:164]
    crop = crop - crop.mean()
    rng = np.random.default_rng(5)
    X = dc.tensor(crop.astype(np.float32))
    Y = dc.tensor((reference_corr2d(crop, named("laplacian")) + rng.normal(0, 0.01, (62, 62))).astype(np.float32))
    solved = dc.least_squares_kernel(X, Y, (3, 3))
    early = dc.train_kernel(X, Y, (3, 3), lr="auto", epochs=100, init="zeros")
    later = dc.train_kernel(X, Y, (3, 3), lr="auto", epochs=400, init="zeros")

    def loss(kernel):
        return float(((reference_corr2d(crop, kernel) - dc.to_numpy(Y)) ** 2).sum())

    assert loss(solved) <= loss(later.kernel) * (1 + 1e-6)  # nothing does better than the minimum
    assert np.all(np.diff(later.losses) <= 1e-6 * later.losses[0])  # lr='auto' only ever goes down
    # ... towards the solved kernel, slowly on a photo (which is why `d2lconv learn` solves by default).
    assert np.linalg.norm(later.kernel - solved) < np.linalg.norm(early.kernel - solved) < np.linalg.norm(solved)


def test_least_squares_gives_the_smallest_kernel_when_the_data_do_not_decide():
    flat = np.full((20, 20), 0.5)  # a constant image: only the kernel's sum is determined
    Y = dc.corr2d(dc.tensor(flat), dc.tensor(named("box")))
    learned = dc.least_squares_kernel(dc.tensor(flat), Y, (3, 3))
    np.testing.assert_allclose(learned, np.ones((3, 3)) / 9, atol=1e-6)  # the sum is 1, spread evenly


def test_least_squares_rejects_data_that_do_not_fit():
    X = photo("camera")[:20, :20]
    with pytest.raises(ValueError, match=r"Y has shape \(18, 18\) but a \(2, 2\) kernel on X of shape \(20, 20\)"):
        dc.least_squares_kernel(X, np.zeros((18, 18)), (2, 2))
    with pytest.raises(ValueError, match=r"Y holds 324 non-finite values \(324 NaN\)"):
        dc.least_squares_kernel(X, np.full((18, 18), np.nan), (3, 3))


def test_robust_limit_ignores_a_few_extreme_pixels():
    response = reference_corr2d(photo("camera"), named("sobel-x"))
    spiked = response.copy()
    spiked[5, 5] = 1e6  # one hot pixel
    assert robust_limit(spiked) == pytest.approx(robust_limit(response), rel=1e-3)
    assert robust_limit(response) < 0.5 * np.abs(response).max()
    assert robust_limit(np.zeros((4, 4))) == 1.0
    sparse = np.zeros((100, 100))
    sparse[50, 50] = -3.0  # mostly 0: the largest value sets the scale
    assert robust_limit(sparse) == 3.0


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    for name in ("camera", "astronaut"):
        Image.fromarray(np.round(photo(name) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


@pytest.mark.parametrize("kernel", LEARNED)
@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_learn_converges_on_a_photo_with_its_defaults(photo_files, name, kernel):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "d2lconv.cli", "learn", f"{name}.png", "--kernel", kernel],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=600, cwd=photo_files)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert "method solve" in done.stdout
    difference = float(done.stdout.split("largest difference |learned - true|: ")[1].split()[0])
    assert difference < 1e-2, done.stdout
    if BACKEND == "numpy":  # the target, for the whole command as a user runs it (frameworks import slower)
        assert seconds < 10, seconds


def test_learn_with_gradient_descent_says_so_and_how_far_it_got(photo_files):
    done = subprocess.run([sys.executable, "-m", "d2lconv.cli", "learn", "camera.png", "--kernel", "sobel-x",
                           "--method", "gd", "--epochs", "30", "--quiet"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=600, cwd=photo_files)
    assert done.returncode == 0, done.stderr
    assert "method gd: the book's gradient descent, lr auto" in done.stdout
    assert "after 30 epochs" in done.stdout


def test_learn_says_solve_does_not_take_gradient_descent_options(photo_files):
    done = subprocess.run([sys.executable, "-m", "d2lconv.cli", "learn", "camera.png", "--method", "solve",
                           "--epochs", "30", "--lr", "1e-4"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=600, cwd=photo_files)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == ("d2lconv: error: --epochs, --lr only apply to --method gd (gradient descent); "
                           "--method solve solves for the kernel in one step\n")
    assert done.stdout == ""


def test_learn_takes_a_gradient_descent_option_as_choosing_gd(photo_files):
    done = subprocess.run([sys.executable, "-m", "d2lconv.cli", "learn", "camera.png", "--kernel", "laplacian",
                           "--init", "zeros", "--max-size", "32", "--quiet"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=600, cwd=photo_files)
    assert done.returncode == 0, done.stderr
    assert "method gd: the book's gradient descent" in done.stdout and "init zeros" in done.stdout
    assert "after 400 epochs" in done.stdout
