"""One adapter package per backend, each reading like its framework's tab of the book.

Each package keeps the book's code apart from the fast paths, as Keras 3 keeps ``nn.py`` beside ``core.py``:

- ``tensors.py``: conversions to and from NumPy, dtypes and the few tensor ops the common API needs;
- ``tab.py``: the framework's tab of the book: ``corr2d_loop``, ``Conv2D``, the learning loop, gradients;
- ``kernels.py``: the fast methods ``method="auto"`` chooses between, with its cost-model numbers;
- ``channels.py``: the same over channels (``corr2d_multi_in_out``): d2lconv's methods, the framework's own
  conv op, and ``auto``'s numbers for choosing between them;
- ``__init__.py``: the adapter's namespace, re-exporting the names below.

An adapter is what the common API (``d2lconv._corr``, ``_channels``, ``_tensors``, ``training``, ``_gradients``)
calls through these names; ``numpy`` is the reference for all of them:

- ``NAME``: the canonical backend name; ``NATIVE_TYPE``: the tensor type it takes, for error messages.
- ``is_native(x)``, ``from_numpy(array)`` (float32/float64 array in, native tensor of the same dtype
  out), ``to_numpy(x)``, ``dtype_of(x)`` (a NumPy dtype), ``cast(x, dtype)`` (differentiable),
  ``is_constant(K)`` (True when no gradient can flow to ``K``, so it may be factorised),
  ``transpose(x)``, ``flip(x)`` (the last two axes), ``pad(x, (top, bottom), (left, right))`` (zeros around
  the last two axes), ``reshape(x, shape)``, ``stack(xs, axis)``, ``einsum(spec, *xs)``,
  ``moveaxis(x, source, destination)`` (all differentiable).
- ``corr2d_loop(X, K)``: the tab's nested loop, as the book writes it (2-D).
- ``corr2d_direct(X, K, stride, dilation)``, ``corr2d_separable(X, column, row, stride, dilation)``,
  ``corr2d_fft(X, K, stride, dilation)`` (or None, with ``NO_FFT`` saying why),
  ``corr2d_native(X, K, stride, dilation)`` (the framework's own conv op, or None with ``NO_NATIVE``): valid
  cross-correlation of an already padded ``X`` of shape ``(..., H, W)`` (leading axes handled in one
  batched operation, never a Python loop) with a 2-D kernel; the shared versions live in ``d2lconv.methods``.
- ``FFT_PASSES``, ``NATIVE_BELOW`` and ``NATIVE_TAPS``: the numbers of ``method="auto"``'s cost model
  (``d2lconv._auto``).
- ``corr2d_channels(X, K, stride, dilation, groups, method, factors=None)``: d2lconv's methods (``"direct"``,
  ``"separable"``, ``"fft"``, ``"per_kernel"``) over channels, ``X`` padded ``(..., C, H, W)``, ``K``
  ``(O, C // groups, h, w)``; shared versions in ``d2lconv.channel_methods``.
  ``corr2d_channels_native(X, K, stride, dilation, groups, padding, channels_last)``: the framework's own
  conv op (or None); ``CHANNEL_AUTO``: ``auto``'s numbers for the channel functions (``_auto.ChannelAuto``).
- ``Conv2D(kernel_size, *, bias, seed, padding, stride, dilation, channels, data_format)``: the book's layer as
  a native layer (``channels=(in, out, groups)`` or None for the book's 2-D layer).
- ``make_trainer(X, Y, kernel_size, *, layer, bias, init, seed, lr, channels)``: an object with ``step() ->
  float`` (one epoch of the book's loop, returning the loss before the update) and ``parameters() ->
  (kernel, bias or None)``; ``channels=(in, out)`` learns an ``(out, in, h, w)`` kernel.
- ``layer_parameters(layer) -> {name: NumPy array}``; ``sparse_matrix(rows, cols, values, shape)``: the
  framework's own sparse matrix, for ``corr2d_matrix(..., sparse=True)``.
- ``correlate_blocks(method, X, K, stride, dilation)`` and ``correlate_channel_blocks(method, X, K, stride,
  dilation, groups, padding, channels_last)`` (optional, Dask only): an adapter that has them receives every
  ``corr2d`` once its input is checked and padded, and every ``corr2d_multi_in_out`` once its input is checked,
  and computes them in blocks with another backend.
- ``corr2d_vjp(X, K, G, *, method, padding, stride, dilation) -> (dX, dK)``, ``vjp(function, X, K, G, options)``
  and ``layer_vjp(layer, x, G) -> {name: grad}``: gradients of ``sum(G * output)`` by the framework's
  autodiff (NumPy: the analytic adjoints of d2lconv's own functions).
"""
