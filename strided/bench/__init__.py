"""Benchmarks, runnable as ``strided bench <what>`` or as scripts under ``benchmarks/``.

:mod:`strided.bench.conv` times every convolution algorithm (forward and
both gradients) on a suite of layer shapes, against PyTorch when installed.
"""
