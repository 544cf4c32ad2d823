"""One adapter package per backend, each reading like its framework's tab of the book.

Each package keeps the book's code apart from the fast paths, as Keras 3 keeps ``nn.py`` beside ``core.py``:

- ``tensors.py``: conversions to and from NumPy, dtypes and the few tensor ops the common API needs;
- ``tab.py``: the framework's tab of the book: ``corr2d_loop``, ``Conv2D``, the learning loop, gradients;
- ``kernels.py``: the fast methods ``method="auto"`` chooses between, with its cost-model numbers;
- ``__init__.py``: the adapter's namespace, re-exporting the names below.

An adapter is what the common API (``d2lconv._corr``, ``_tensors``, ``training``, ``_gradients``) calls
through these names; ``numpy`` is the reference for all of them:

- ``NAME``: the canonical backend name; ``NATIVE_TYPE``: the tensor type it takes, for error messages.
- ``is_native(x)``, ``from_numpy(array)`` (float32/float64 array in, native tensor of the same dtype
  out), ``to_numpy(x)``, ``dtype_of(x)`` (a NumPy dtype), ``cast(x, dtype)`` (differentiable),
  ``is_constant(K)`` (True when no gradient can flow to ``K``, so it may be factorised),
  ``transpose(x)``, ``flip(x)`` (both axes), ``pad(x, (top, bottom), (left, right))`` (zeros).
- ``corr2d_loop(X, K)``: the tab's nested loop, as the book writes it.
- ``corr2d_direct(X, K, stride)``, ``corr2d_separable(X, column, row, stride)``,
  ``corr2d_fft(X, K, stride)`` (or None, with ``NO_FFT`` saying why), ``corr2d_native(X, K, stride)``
  (the framework's own conv op, or None with ``NO_NATIVE``): valid cross-correlation of an already
  padded input; the shared versions live in ``d2lconv.methods``.
- ``FFT_PASSES``, ``NATIVE_BELOW`` and ``NATIVE_TAPS``: the numbers of ``method="auto"``'s cost model
  (``d2lconv._auto``).
- ``Conv2D(kernel_size, *, bias, seed, padding, stride)``: the book's layer as a native layer.
- ``make_trainer(X, Y, kernel_size, *, layer, bias, init, seed, lr)``: an object with ``step() -> float``
  (one epoch of the book's loop, returning the loss before the update) and ``parameters() ->
  (kernel, bias or None)``.
- ``layer_parameters(layer) -> {name: NumPy array}``; ``sparse_matrix(rows, cols, values, shape)``: the
  framework's own sparse matrix, for ``corr2d_matrix(..., sparse=True)``.
- ``correlate_blocks(method, X, K, stride)`` (optional, Dask only): an adapter that has it receives every
  ``corr2d`` once its input is checked and padded, and computes it in blocks with another backend.
- ``corr2d_vjp(X, K, G, *, method, padding, stride) -> (dX, dK)`` and ``layer_vjp(layer, x, G) ->
  {name: grad}``: gradients of ``sum(G * output)`` by the framework's autodiff.
"""
