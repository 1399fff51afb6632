"""Benchmarks, runnable as ``strided bench <what>`` or as scripts under ``benchmarks/``.

:mod:`strided.bench.conv` times every convolution algorithm (forward and
both gradients) on a suite of layer shapes, against PyTorch when installed;
:mod:`strided.bench.lenet5` times LeNet-5 training against PyTorch, built
from :mod:`~strided.bench.torch_twin` (the network in both libraries and
the agreement check), :mod:`~strided.bench.memory` (the fresh-process
memory probe) and :mod:`~strided.bench.step_profile` (the per-layer
profile); :mod:`strided.bench.models` times whole zoo networks against
PyTorch, training and inference, on 1 and 2 threads. :mod:`strided.bench.hostile_files`
crafts files meant to make the readers allocate or recurse and shows how fast each fails.
:mod:`strided.bench.harness` holds what they share: alternating timed
rounds, memory peaks, the matrix-product rate, the machine line, tables.
"""
