"""Every convolution algorithm against the naive reference and PyTorch, plus the dispatcher.

Geometries are drawn from a seeded generator: rectangular kernels, tuple
strides, asymmetric and over-large padding, dilation, groups (depthwise
included), batch 1. Forward, input gradient and weight gradient are
compared in float64 (tight) and float32 (loose, dtype kept).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from strided import conv, nn
from strided import functional as F
from strided.bench import conv as bench
from strided.conv import base
from strided.geometry import ConvGeometry

FAST = [n for n in conv.ALGORITHMS if n != "naive"]
NAIVE = conv.get("naive")


def random_geometry(rng, square3=False):
    """A random valid geometry; ``square3`` restricts it to what Winograd F(2x2, 3x3) runs."""
    groups = int(rng.integers(1, 4))
    cg, og = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    if square3:
        kernel, stride, dilation = (3, 3), (1, 1), (1, 1)
    else:
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
    # padding up to twice the kernel: covers "larger than the kernel" (seed 000)
    padding = tuple(int(p) for p in rng.integers(0, 2 * max(kernel) + 1, size=4))
    if rng.random() < 0.5:
        padding = (padding[0], padding[0], padding[2], padding[2])
    span = [dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1)]
    size = [max(1, span[a] - padding[2 * a] - padding[2 * a + 1]) + int(rng.integers(0, 7)) for a in (0, 1)]
    batch = int(rng.choice([1, 2, 3]))
    return ConvGeometry.create((batch, groups * cg, *size), (groups * og, cg, *kernel), stride, padding, dilation,
                               groups)


SPECIAL = [  # (x_shape, w_shape, stride, padding, dilation, groups)
    ((1, 1, 7, 9), (2, 1, 2, 4), (2, 3), 0, 1, 1),                     # batch 1, rectangular kernel, tuple stride
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 6, 1, 1),                          # padding twice the kernel
    ((2, 4, 6, 6), (4, 1, 3, 3), 1, 1, 1, 4),                          # depthwise
    ((2, 4, 11, 10), (6, 2, 3, 2), (2, 1), (1, 4), (2, 3), 2),         # everything at once
    ((2, 3, 9, 8), (5, 3, 3, 3), 1, (0, 3, 2, 0), 1, 1),               # asymmetric padding, odd output for Winograd
    ((3, 2, 8, 8), (3, 2, 1, 1), 1, 0, 1, 1),                          # 1x1: the window matrix is the input itself
    ((2, 2, 14, 14), (3, 2, 11, 11), 1, 5, 1, 1),                      # large kernel
]


def special_geometries():
    return [ConvGeometry.create(*case) for case in SPECIAL]


def _rng_geometries(seed, count, square3=False):
    rng = np.random.default_rng(seed)
    return [random_geometry(rng, square3) for _ in range(count)]


def _pointwise_geometries(seed, count):
    """Random 1x1 geometries without padding (what ``pointwise`` runs): strides, groups, odd sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        groups, cg, og = (int(v) for v in rng.integers(1, 4, size=3))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
        size = tuple(int(v) for v in rng.integers(1, 9, size=2))
        out.append(ConvGeometry.create((int(rng.integers(1, 4)), groups * cg, *size), (groups * og, cg, 1, 1),
                                       stride, 0, 1, groups))
    return out


def _shifted_rows_geometries(seed, count):
    """Random geometries of one group, stride 1 along W and dilation 1 along H (what ``shifted_rows`` runs)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        g = random_geometry(rng)
        out.append(ConvGeometry.create((g.batch, g.in_channels // g.groups, *g.x_shape[2:]),
                                       (g.out_channels // g.groups, *g.weight_shape[1:]), (g.stride[0], 1),
                                       g.padding, (1, g.dilation[1]), 1))
    return out


GEOMETRIES = (special_geometries() + _rng_geometries(1, 14) + _rng_geometries(2, 8, square3=True)
              + _pointwise_geometries(3, 10) + _shifted_rows_geometries(4, 8))


def supported(alg, *geoms):
    """The first of ``geoms`` that ``alg`` can run (a depthwise one last, for the depthwise-only algorithm).

    A 1x1 version of the first (same input, stride and groups, no padding) comes after them, for the 1x1-only
    algorithm, then one group of the first (its channels, stride 1 along W), for the algorithms of one group.
    """
    g0 = geoms[0]
    pointwise = ConvGeometry.create(g0.x_shape, (*g0.weight_shape[:2], 1, 1), g0.stride, 0, 1, g0.groups)
    cg, og = g0.in_channels // g0.groups, g0.out_channels // g0.groups
    one_group = ConvGeometry.create((g0.batch, cg, *g0.x_shape[2:]), (og, *g0.weight_shape[1:]), (g0.stride[0], 1),
                                    g0.padding, (1, g0.dilation[1]), 1)
    return next(g for g in (*geoms, pointwise, one_group) if alg.supports(g, np.dtype(np.float64)) is None)


def _data(geom, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(geom.x_shape)
    w = rng.standard_normal(geom.weight_shape)
    dy = rng.standard_normal(geom.y_shape)
    return x.astype(dtype), w.astype(dtype), dy.astype(dtype)


_REFERENCE = {}


def reference(geom):
    """Naive float64 forward, dx and dw (cached: the geometries are shared by every algorithm)."""
    if geom not in _REFERENCE:
        x, w, dy = _data(geom, np.float64)
        y, _ = NAIVE.forward(x, w, geom)
        _REFERENCE[geom] = (y, NAIVE.grad_input(dy, w, geom), NAIVE.grad_weight(dy, x, geom))
    return _REFERENCE[geom]


def assert_close(actual, expected, rel, what):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * scale, err_msg=what)


def _run(alg, geom, dtype):
    x, w, dy = _data(geom, dtype)
    y, saved = alg.forward(x, w, geom)
    return (y, alg.grad_input(dy, w, geom, saved), alg.grad_weight(dy, x, geom, saved),
            alg.grad_weight(dy, x, geom, None), alg.grad_input(dy, w, geom, None))


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("dtype, rel", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_matches_naive(name, dtype, rel):
    alg = conv.get(name)
    ran = 0
    for geom in GEOMETRIES:
        if alg.supports(geom, np.dtype(dtype)) is not None:
            continue
        y_ref, dx_ref, dw_ref = reference(geom)
        y, dx, dw, dw_unsaved, dx_unsaved = _run(alg, geom, dtype)
        for got, ref, what in ((y, y_ref, "y"), (dx, dx_ref, "dx"), (dw, dw_ref, "dw"),
                               (dw_unsaved, dw_ref, "dw (saved=None)"), (dx_unsaved, dx_ref, "dx (saved=None)")):
            assert got.dtype == dtype, f"{name} {what} has dtype {got.dtype} for {dtype.__name__} inputs"
            assert got.shape == ref.shape
            assert_close(got, ref, rel, f"{name} {what} on {geom}")
        ran += 1
    assert ran >= 10, f"{name} ran only {ran} geometries"


def _torch_conv(torch, geom, x, w, dy):
    """torch's forward, dx, dw; asymmetric padding applied with F.pad first."""
    F = torch.nn.functional
    t, b, l, r = geom.padding
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    y = F.conv2d(F.pad(xt, (l, r, t, b)), wt, None, geom.stride, 0, geom.dilation, geom.groups)
    dx, dw = torch.autograd.grad(y, (xt, wt), torch.from_numpy(dy))
    return y.detach().numpy(), dx.numpy(), dw.numpy()


@pytest.mark.torch
@pytest.mark.parametrize("name", FAST)
def test_matches_torch(torch, name):
    alg = conv.get(name)
    geoms = (special_geometries() + _rng_geometries(3, 6) + _rng_geometries(4, 3, square3=True)
             + _pointwise_geometries(5, 3))
    ran = 0
    for dtype, rel in ((np.float64, 1e-10), (np.float32, 2e-4)):
        for geom in geoms:
            if alg.supports(geom, np.dtype(dtype)) is not None:
                continue
            x, w, dy = _data(geom, dtype, seed=5)
            y, saved = alg.forward(x, w, geom)
            ours = (y, alg.grad_input(dy, w, geom, saved), alg.grad_weight(dy, x, geom, saved))
            for got, ref, what in zip(ours, _torch_conv(torch, geom, x, w, dy), ("y", "dx", "dw")):
                assert got.dtype == ref.dtype
                assert_close(got, ref, rel, f"{name} {what} vs torch on {geom}")
            ran += 1
    assert ran >= 6


@pytest.mark.parametrize("name", FAST)
def test_saved_work_never_mixes_output_gradients(name):
    """Gradients for a second dy through the same ``saved`` (either order) use that dy, not the first."""
    alg = conv.get(name)
    geom = supported(alg, ConvGeometry.create((2, 3, 8, 8), (4, 3, 3, 3), padding=1),
                     ConvGeometry.create((2, 3, 8, 8), (6, 1, 3, 3), padding=1, groups=3))
    x, w, dy1 = _data(geom, np.float64, seed=1)
    dy2 = _data(geom, np.float64, seed=2)[2]
    fresh = conv.get("naive")
    for first, second in (("input", "weight"), ("weight", "input")):
        _, saved = alg.forward(x, w, geom)
        grads = {"input": lambda d, saved=saved: alg.grad_input(d, w, geom, saved),
                 "weight": lambda d, saved=saved: alg.grad_weight(d, x, geom, saved)}
        grads[first](dy1)
        got = grads[second](dy2)
        want = fresh.grad_input(dy2, w, geom) if second == "input" else fresh.grad_weight(dy2, x, geom)
        assert_close(got, want, 1e-10, f"{name}: {second} gradient after {first} with another dy")


@pytest.mark.parametrize("name", FAST)
def test_results_do_not_depend_on_the_number_of_threads(name):
    from strided import _parallel
    alg = conv.get(name)
    geom = supported(alg, ConvGeometry.create((4, 16, 10, 9), (16, 16, 3, 3), padding=1),
                     ConvGeometry.create((4, 16, 10, 9), (16, 1, 3, 3), padding=1, groups=16))
    x, w, dy = _data(geom, np.float32)
    before = _parallel.num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            _parallel.set_num_threads(threads)
            y, saved = alg.forward(x, w, geom)
            results.append((y, alg.grad_input(dy, w, geom, saved), alg.grad_weight(dy, x, geom, saved)))
    finally:
        _parallel.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# ---- workspace budget --------------------------------------------------------------------------


@pytest.fixture
def tiny_workspace():
    old = conv.get_workspace_limit()
    conv.set_workspace_limit(1)          # every algorithm that chunks goes one image at a time
    yield
    conv.set_workspace_limit(old)


@pytest.mark.parametrize("name", FAST)
def test_chunked_batch_matches(name, tiny_workspace):
    alg = conv.get(name)
    geom = supported(alg, ConvGeometry.create((3, 4, 9, 8), (4, 2, 3, 3), 1, (2, 1), 1, 2),
                     ConvGeometry.create((3, 4, 9, 8), (8, 1, 3, 3), 1, (2, 1), 1, 4))
    y_ref, dx_ref, dw_ref = reference(geom)
    x, w, dy = _data(geom, np.float64)
    y, saved = alg.forward(x, w, geom)
    if alg.workspace_per_image(geom, np.dtype(np.float64)):
        assert saved is None, "a chunked forward cannot keep the whole batch's workspace"
    assert_close(y, y_ref, 1e-10, "y")
    assert_close(alg.grad_input(dy, w, geom, saved), dx_ref, 1e-10, "dx")
    assert_close(alg.grad_weight(dy, x, geom, saved), dw_ref, 1e-10, "dw")


def test_fast_path_chunks_only_above_the_budget():
    geom = ConvGeometry.create((8, 3, 10, 10), (4, 3, 3, 3), padding=1)
    per_image = conv.get("strided").workspace_per_image(geom, np.dtype(np.float32))
    assert per_image == 3 * 9 * 100 * 4                        # the window matrix of one image
    old = conv.get_workspace_limit()
    try:
        conv.set_workspace_limit(per_image * 3)
        assert [(s.start, s.stop) for s in base.batch_chunks(8, per_image)] == [(0, 3), (3, 6), (6, 8)]
        conv.set_workspace_limit(per_image * 8)
        assert len(base.batch_chunks(8, per_image)) == 1
    finally:
        conv.set_workspace_limit(old)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-5, ValueError), (1.5, TypeError), (True, TypeError)])
def test_workspace_limit_validation(bad, exc):
    with pytest.raises(exc, match="workspace limit"):
        conv.set_workspace_limit(bad)


# ---- operand checks -------------------------------------------------------------------------------


def test_operand_checks_name_the_argument():
    geom = ConvGeometry.create((2, 3, 8, 8), (4, 3, 3, 3))
    x, w, dy = _data(geom, np.float32)
    alg = conv.get("strided")
    with pytest.raises(ValueError, match=r"x must have shape \(2, 3, 8, 8\).*got \(2, 3, 8, 9\)"):
        alg.forward(np.zeros((2, 3, 8, 9), np.float32), w, geom)
    with pytest.raises(ValueError, match="dy must have shape"):
        alg.grad_input(dy[:, :2], w, geom)
    with pytest.raises(TypeError, match="w has dtype float64 but x has float32"):
        alg.forward(x, w.astype(np.float64), geom)
    with pytest.raises(TypeError, match="x must be float32 or float64, got dtype int64"):
        alg.forward(x.astype(np.int64), w, geom)
    with pytest.raises(TypeError, match="geom must be a ConvGeometry"):
        alg.forward(x, w, (2, 3, 8, 8))


# ---- choice, fallback, autotuning ------------------------------------------------------------------


def test_unsupported_request_is_an_error_naming_what_is_missing():
    geom = ConvGeometry.create((2, 3, 9, 9), (4, 3, 5, 5), padding=2)
    with pytest.raises(ValueError, match=r"algorithm 'winograd' cannot run .*3x3 kernel, got 5x5"):
        conv.choose(geom, np.float32, "winograd")
    with pytest.raises(ValueError, match="3x3 kernel, got 5x5"):
        conv.explain(geom, np.float32, "winograd")
    strided_geom = ConvGeometry.create((2, 3, 9, 9), (4, 3, 3, 3), stride=2)
    with pytest.raises(ValueError, match="needs stride 1"):
        conv.choose(strided_geom, np.float64, "winograd")
    layer = nn.Conv2d(3, 4, 5, padding=2, algorithm="winograd")
    with pytest.raises(ValueError, match="3x3 kernel, got 5x5"):
        layer(np.zeros((2, 3, 9, 9), np.float32))
    # 'auto' on the same geometry chooses an algorithm that can run it
    alg, why = conv.choose(geom, np.float32, "auto")
    assert alg.supports(geom, np.dtype(np.float32)) is None and why


def test_supported_request_is_honoured():
    for name in FAST + ["naive"]:
        geom = supported(conv.get(name), ConvGeometry.create((2, 3, 9, 9), (4, 3, 3, 3), padding=1),
                         ConvGeometry.create((2, 3, 9, 9), (3, 1, 3, 3), padding=1, groups=3))
        alg, why = conv.choose(geom, np.float64, name)
        assert alg.name == name and why == "requested"


def test_missing_scipy_is_an_error_by_name_and_a_reason_under_auto(monkeypatch):
    # SciPy missing, as the optional-import helper sees it: importing scipy.signal fails
    monkeypatch.setitem(sys.modules, "scipy.signal", None)
    geom = ConvGeometry.create((1, 2, 6, 6), (2, 2, 3, 3))
    assert "pip install scipy" in conv.get("scipy").supports(geom, np.dtype(np.float32))
    with pytest.raises(ValueError, match=r"algorithm 'scipy' cannot run .*pip install scipy"):
        conv.choose(geom, np.float32, "scipy")
    x, w, _ = _data(geom, np.float32)
    with pytest.raises(ImportError, match="pip install scipy"):
        conv.get("scipy").forward(x, w, geom)
    was = conv.autotune_enabled()
    conv.clear_autotune_cache()
    conv.set_autotune(True)
    try:
        alg, why = conv.choose(geom, np.float32, "auto")
    finally:
        conv.set_autotune(was)
        conv.clear_autotune_cache()
    assert alg.name != "scipy" and "scipy skipped" in why and "pip install scipy" in why


def test_choose_rejects_bad_arguments():
    geom = ConvGeometry.create((1, 2, 6, 6), (2, 2, 3, 3))
    with pytest.raises(ValueError, match="unknown algorithm 'fastest'.*'auto'.*'strided'"):
        conv.choose(geom, np.float32, "fastest")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        conv.choose(geom, np.int32, "auto")
    with pytest.raises(TypeError, match="geom must be a ConvGeometry"):
        conv.choose((1, 2, 6, 6), np.float32)


def test_default_table_covers_the_benchmark_suite():
    for case in bench.SUITE:
        geom = case.geometry()
        for dtype in (np.float32, np.float64):
            name, reason = conv.default_for(geom, np.dtype(dtype))
            assert conv.get(name).supports(geom, np.dtype(dtype)) is None, (case.name, name)
            assert reason
    lenet = [c.geometry() for c in bench.SUITE if c.name.startswith("lenet")]
    assert all(conv.default_for(g, np.dtype(np.float32))[0] == "window_rows" for g in lenet)


def test_default_table_sends_wide_thin_layers_to_shifted_rows():
    f32 = np.dtype(np.float32)
    by_name = {c.name: c.geometry() for c in bench.SUITE}
    for name in ("resnet20-3x3", "vgg-3x3", "fresnet-32"):
        assert conv.default_for(by_name[name], f32)[0] == "shifted_rows", name
    # maps of 8x8 and less (padding a large part of each row), few input channels, groups: window_rows
    for name in ("fresnet-64", "fresnet-128", "lenet-conv1", "lenet-conv2", "depthwise-3x3"):
        assert conv.default_for(by_name[name], f32)[0] != "shifted_rows", name
    widening = ConvGeometry.create((64, 32, 16, 16), (64, 32, 3, 3), padding=1)       # more output than input channels
    assert conv.default_for(widening, f32)[0] == "window_rows"
    assert conv.default_for(ConvGeometry.create((64, 64, 16, 16), (64, 64, 3, 3), padding=1), f32)[0] == "shifted_rows"
    assert conv.default_for(ConvGeometry.create((64, 128, 8, 8), (128, 128, 3, 3), padding=1), f32)[0] == "window_rows"
    shifted = conv.get("shifted_rows")
    assert "groups=1" in shifted.supports(ConvGeometry.create((2, 8, 9, 9), (4, 4, 3, 3), groups=2), f32)
    assert "stride 1 along W" in shifted.supports(ConvGeometry.create((2, 8, 9, 9), (4, 8, 3, 3), (1, 2)), f32)
    assert "dilation 1 along H" in shifted.supports(ConvGeometry.create((2, 8, 9, 9), (4, 8, 3, 3), dilation=(2, 1)),
                                                    f32)
    assert shifted.supports(ConvGeometry.create((2, 8, 9, 9), (4, 8, 3, 3), (2, 1), dilation=(1, 2)), f32) is None


@pytest.fixture
def autotune():
    was = conv.autotune_enabled()
    conv.clear_autotune_cache()
    conv.set_autotune(True)
    yield
    conv.set_autotune(was)
    conv.clear_autotune_cache()


def test_autotune_picks_a_correct_algorithm_and_caches_per_geometry(autotune, monkeypatch):
    calls = []
    real_tune = conv._tune
    monkeypatch.setattr(conv, "_tune", lambda g, d: calls.append((g, d)) or real_tune(g, d))
    a = ConvGeometry.create((2, 4, 10, 10), (6, 4, 3, 3), padding=1)
    b = ConvGeometry.create((2, 4, 10, 10), (6, 4, 3, 3), padding=1, stride=2)   # differs only in stride
    c = ConvGeometry.create((2, 4, 10, 10), (6, 2, 3, 3), padding=1, groups=2)   # differs in groups
    for geom in (a, b, c):
        alg, why = conv.choose(geom, np.float64, "auto")
        assert why.startswith("autotuned (") and alg.name in why
        assert alg.supports(geom, np.dtype(np.float64)) is None
        x, w, dy = _data(geom, np.float64)
        y, saved = alg.forward(x, w, geom)
        y_ref, dx_ref, dw_ref = reference(geom)
        assert_close(y, y_ref, 1e-10, "autotuned y")
        assert_close(alg.grad_input(dy, w, geom, saved), dx_ref, 1e-10, "autotuned dx")
        assert_close(alg.grad_weight(dy, x, geom, saved), dw_ref, 1e-10, "autotuned dw")
    cache = conv.autotune_cache()
    assert set(cache) == {(a, "float64"), (b, "float64"), (c, "float64")}
    for (geom, _), (winner, times) in cache.items():
        assert winner == min(times, key=times.get)
        assert "naive" not in times and "im2col" not in times
        if geom is b:
            assert "winograd" not in times          # unsupported candidates are not timed
    # a repeated geometry is served from the cache; another dtype is a new key
    conv.choose(ConvGeometry.create((2, 4, 10, 10), (6, 4, 3, 3), padding=1), np.float64)
    assert len(calls) == 3
    conv.choose(a, np.float32)
    assert len(calls) == 4 and (a, "float32") in conv.autotune_cache()
    conv.clear_autotune_cache()
    assert conv.autotune_cache() == {}


def test_autotune_off_uses_the_default_table():
    was = conv.autotune_enabled()
    conv.set_autotune(False)
    try:
        geom = ConvGeometry.create((2, 4, 10, 10), (6, 4, 3, 3), padding=1)
        alg, why = conv.choose(geom, np.float32)
        assert (alg.name, why) == conv.default_for(geom, np.dtype(np.float32))
        assert conv.autotune_cache() == {}
    finally:
        conv.set_autotune(was)
    with pytest.raises(TypeError, match="enabled must be True or False"):
        conv.set_autotune("yes")


def test_autotune_environment_variable():
    code = "import strided.conv as c; print(c.autotune_enabled())"
    env = dict(os.environ, STRIDED_CONV_AUTOTUNE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# ---- seed 000's input gradient as a convolution ----------------------------------------------------


@pytest.mark.parametrize("padding", [0, 1, 2, 4, 7])
def test_input_gradient_problem_any_padding(padding):
    geom = ConvGeometry.create((2, 2, 6, 7), (3, 2, 3, 2), stride=(2, 1), padding=padding, dilation=(1, 2))
    _, w, dy = _data(geom, np.float64)
    z, wt, geom_t = base.input_grad_problem(dy, w, geom)
    assert geom_t.y_shape == geom.x_shape and geom_t.stride == (1, 1)
    dx, _ = NAIVE.forward(np.ascontiguousarray(z), np.ascontiguousarray(wt), geom_t)
    assert_close(dx, reference(geom)[1], 1e-10, "dx as a convolution")


# ---- benchmark ---------------------------------------------------------------------------------------


def test_benchmark_rows_and_table(capsys):
    cases = [c.with_batch(2) for c in bench.SUITE if c.name in ("lenet-conv2", "vgg-3x3")]
    rows = bench.run(cases, ["strided", "winograd"], repeat=1, with_torch=False)
    assert [(r.case.name, r.algorithm) for r in rows] == [
        ("lenet-conv2", "strided"), ("lenet-conv2", "winograd"), ("vgg-3x3", "strided"), ("vgg-3x3", "winograd")]
    for r in rows:
        geom = r.case.geometry()
        assert geom.batch == 2
        if conv.get(r.algorithm).supports(geom, np.dtype(np.float32)) is None:
            assert r.ms > 0 and r.peak_mib > 0 and not r.note
        else:
            assert r.ms is None and r.note.startswith("unsupported: F(2x2, 3x3) needs a 3x3 kernel")
    table = bench.format_table(rows, markdown=True).splitlines()
    assert table[0].startswith("| case | algorithm | ms/step")
    assert len(table) == 2 + len(rows)
    assert bench.main(["--cases", "lenet-conv2", "--batch", "1", "--repeat", "1", "--algorithms", "fft",
                       "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "lenet-conv2: 1x6x14x14 * 16x6x5x5" in out and "fft *" in out


def test_benchmark_rejects_unknown_names(capsys):
    assert bench.main(["--cases", "nope"]) == 2
    assert "unknown case 'nope'" in capsys.readouterr().err
    assert bench.main(["--algorithms", "strided,best"]) == 2


def test_the_earlier_name_strided_is_an_alias_of_window_rows():
    geom = ConvGeometry.create((2, 3, 8, 8), (4, 3, 3, 3), padding=1)
    assert "strided" in conv.names() and "strided" not in conv.ALGORITHMS
    assert conv.get("strided") is conv.get("window_rows")
    assert conv.choose(geom, np.float32, "strided") == (conv.get("window_rows"), "requested")
    layer = nn.Conv2d(3, 4, 3, algorithm="strided")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y, cache = F.conv2d_forward(x, layer.weight.data, layer.bias.data, algorithm="strided")
    assert cache.algorithm is conv.get("window_rows")
    np.testing.assert_array_equal(layer(x), y)
