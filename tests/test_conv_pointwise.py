"""The ``pointwise`` algorithm (1x1 kernels): every chunking, both memory orders, strides and groups, any thread count."""
import numpy as np
import pytest

from strided import _parallel, conv
from strided.conv import pointwise
from strided.conv import window_rows as fast
from strided.geometry import ConvGeometry
from strided.windows import is_batch_last, to_batch_last

NAIVE = conv.get("naive")
POINTWISE = conv.get("pointwise")


def _run(geom, x, w, dy, b, batch_last):
    if batch_last:
        x, dy = to_batch_last(x), to_batch_last(dy)
    y, saved = POINTWISE.forward(x, w, geom, bias=b)
    dx, dw, db = POINTWISE.backward(dy, x, w, geom, saved)
    return y, dx, dw, db, POINTWISE.backward(dy, x, w, geom, None)


@pytest.mark.parametrize("batch_last", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("chunk_bytes, blocks", [(1, 99), (64, 2), (10**9, 1)])
@pytest.mark.parametrize("groups, stride, size", [(1, 1, (9, 7)), (2, (2, 1), (9, 7)), (3, 2, (8, 8)), (1, 3, (1, 5))])
def test_every_chunking_matches_the_naive_reference(monkeypatch, threads, pool_for_every_call, rng, batch_last,
                                                    parallel, chunk_bytes, blocks, groups, stride, size):
    monkeypatch.setattr(fast, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(fast, "MIN_COLUMNS", 1)
    monkeypatch.setattr(pointwise, "BLOCKS", blocks)
    threads(2)
    if parallel:
        pool_for_every_call()
    geom = ConvGeometry.create((5, 2 * groups, *size), (3 * groups, 2, 1, 1), stride, 0, 1, groups)
    x = rng.standard_normal(geom.x_shape)
    w = rng.standard_normal(geom.weight_shape)
    dy = rng.standard_normal(geom.y_shape)
    b = rng.standard_normal(geom.out_channels)
    y, dx, dw, db, unsaved = _run(geom, x, w, dy, b, batch_last)
    y_ref, _ = NAIVE.forward(x, w, geom)
    np.testing.assert_allclose(y, y_ref + b.reshape(1, -1, 1, 1), rtol=1e-10, atol=1e-10)
    dx_ref, dw_ref = NAIVE.grad_input(dy, w, geom), NAIVE.grad_weight(dy, x, geom)
    for got in (dx, unsaved[0]):
        np.testing.assert_allclose(got, dx_ref, rtol=1e-10, atol=1e-10)
    for got in (dw, unsaved[1]):
        np.testing.assert_allclose(got, dw_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-10, atol=1e-10)
    # the output and the input gradient keep x's memory order
    assert is_batch_last(y) == batch_last and is_batch_last(dx) == batch_last


def test_results_are_bit_identical_on_one_or_two_threads(monkeypatch, threads, rng):
    for name in ("MIN_PARALLEL_MACS", "MIN_CHUNK_MACS"):
        monkeypatch.setattr(_parallel, name, 1)
    monkeypatch.setattr(_parallel, "_inline_until", 0.0)
    monkeypatch.setattr(_parallel, "BACKOFF_SHARE", 2.0)
    geom = ConvGeometry.create((16, 32, 16, 16), (64, 32, 1, 1), 2)
    x = to_batch_last(rng.standard_normal(geom.x_shape).astype(np.float32))
    w = rng.standard_normal(geom.weight_shape).astype(np.float32)
    dy = to_batch_last(rng.standard_normal(geom.y_shape).astype(np.float32))
    runs = []
    for n in (1, 2, 2):
        threads(n)
        y, saved = POINTWISE.forward(x, w, geom)
        runs.append((y.copy(), *(a.copy() for a in POINTWISE.backward(dy, x, w, geom, saved))))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_default_table_sends_unpadded_1x1_layers_to_pointwise():
    f32 = np.dtype(np.float32)
    assert conv.default_for(ConvGeometry.create((2, 8, 6, 6), (4, 8, 1, 1)), f32)[0] == "pointwise"
    assert conv.default_for(ConvGeometry.create((2, 8, 6, 6), (4, 4, 1, 1), 2, groups=2), f32)[0] == "pointwise"
    padded = ConvGeometry.create((2, 8, 6, 6), (4, 8, 1, 1), padding=1)
    assert conv.default_for(padded, f32)[0] == "window_rows"
    assert "1x1 kernel" in POINTWISE.supports(ConvGeometry.create((2, 8, 6, 6), (4, 8, 3, 3)), f32)
    assert "padding" in POINTWISE.supports(padded, f32)
    assert conv.choose(ConvGeometry.create((2, 8, 6, 6), (4, 8, 1, 1)), f32)[0] is POINTWISE
