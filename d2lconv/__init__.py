"""d2lconv: the "Convolutions for Images" chapter of Dive into Deep Learning as one API on five backends.

>>> import d2lconv as dc                   # backend from D2LCONV_BACKEND, numpy when unset
>>> dc.to_numpy(dc.corr2d(dc.tensor([[0., 1, 2], [3, 4, 5], [6, 7, 8]]), [[0., 1], [2, 3]])).tolist()
[[19.0, 25.0], [37.0, 43.0]]

Importing d2lconv imports no framework; a framework is imported when its backend is first used.
"""

from d2lconv import book, kernels
from d2lconv._backend import (
    ALIASES,
    BACKENDS,
    BackendNotInstalledError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from d2lconv._channels import corr2d_multi_in, corr2d_multi_in_out, corr2d_multi_in_out_1x1
from d2lconv._corr import METHODS, convolve2d, corr2d
from d2lconv._gradients import corr2d_gradients, gradients, layer_gradients
from d2lconv._numba import get_accelerator, set_accelerator
from d2lconv._parallel import get_num_threads, set_num_threads
from d2lconv._tensors import Conv2D, ones, tensor, to_numpy, transpose, zeros
from d2lconv.exercises import GradientReport, check_gradients
from d2lconv.matrix import corr2d_matrix
from d2lconv.receptive import ReceptiveField, receptive_field
from d2lconv.training import (
    TrainingDivergedError,
    TrainResult,
    largest_curvature,
    least_squares_kernel,
    train_kernel,
)

__version__ = "0.1.0"

__all__ = [
    "ALIASES",
    "BACKENDS",
    "METHODS",
    "BackendNotInstalledError",
    "GradientReport",
    "ReceptiveField",
    "Conv2D",
    "TrainResult",
    "TrainingDivergedError",
    "available_backends",
    "book",
    "check_gradients",
    "convolve2d",
    "corr2d",
    "corr2d_gradients",
    "corr2d_matrix",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "layer_gradients",
    "get_accelerator",
    "get_backend",
    "get_num_threads",
    "gradients",
    "kernels",
    "largest_curvature",
    "least_squares_kernel",
    "ones",
    "receptive_field",
    "set_accelerator",
    "set_backend",
    "set_num_threads",
    "tensor",
    "to_numpy",
    "train_kernel",
    "transpose",
    "use_backend",
    "zeros",
]
