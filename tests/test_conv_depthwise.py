"""The ``depthwise`` convolution algorithm (one input channel per group) against the naive reference and PyTorch.

Geometries are drawn from a seeded generator: kernels 1 to 7, rectangular
kernels, strides (1, 2), (2, 1), (2, 2) and (3, 1), dilation, asymmetric
and large padding, channel multipliers 1 to 3, batch 1 and more;
C-ordered, batch-last and strided-view inputs. The blocks and pieces the
algorithm cuts its work into are shrunk in some tests so that every path
(several blocks, several pieces, a last band of fewer rows) runs on small
shapes.
"""

import numpy as np
import pytest

import strided
from strided import _parallel, conv, nn
from strided.bench import conv as bench
from strided.conv import depthwise
from strided.geometry import ConvGeometry
from strided.windows import is_batch_last, to_batch_last

NAIVE = conv.get("naive")
DEPTHWISE = conv.get("depthwise")


def random_geometry(rng):
    """A random depthwise geometry: groups == in_channels, out_channels = multiplier * groups."""
    groups, mult = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 8, size=2))
    stride = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)][int(rng.integers(0, 5))]
    dilation = [(1, 1), (1, 1), (2, 1), (1, 2), (2, 3)][int(rng.integers(0, 5))]
    # padding up to twice the kernel, often asymmetric: covers "larger than the kernel"
    padding = tuple(int(p) for p in rng.integers(0, 2 * max(kernel) + 1, size=4))
    if rng.random() < 0.4:
        padding = (padding[0], padding[0], padding[2], padding[2])
    span = [dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1)]
    size = [max(1, span[a] - padding[2 * a] - padding[2 * a + 1]) + int(rng.integers(0, 9)) for a in (0, 1)]
    batch = int(rng.choice([1, 2, 3, 9]))
    return ConvGeometry.create((batch, groups, *size), (groups * mult, 1, *kernel), stride, padding, dilation,
                               groups)


SPECIAL = [  # (x_shape, w_shape, stride, padding, dilation, groups)
    ((2, 4, 8, 8), (4, 1, 3, 3), 1, 1, 1, 4),                       # MobileNet's 3x3
    ((9, 3, 10, 9), (6, 1, 3, 3), 2, 1, 1, 3),                      # stride 2, multiplier 2, batch large enough to transpose
    ((1, 2, 7, 9), (6, 1, 2, 4), (2, 1), (0, 3, 2, 0), 1, 2),       # batch 1, rectangular, asymmetric padding
    ((3, 2, 5, 6), (2, 1, 3, 3), 1, 7, 1, 2),                       # padding more than twice the kernel
    ((2, 3, 11, 12), (3, 1, 3, 3), 1, (2, 4), (2, 3), 3),           # dilation
    ((8, 5, 6, 6), (5, 1, 1, 1), 1, 0, 1, 5),                       # 1x1: a per-channel scale
    ((10, 2, 14, 13), (4, 1, 7, 7), 1, 3, 1, 2),                    # 7x7
    ((12, 1, 9, 9), (3, 1, 5, 5), 1, 2, 1, 1),                      # one group (a single input channel)
    ((3, 2, 7, 8), (4, 1, 1, 2), (2, 3), 0, 1, 2),                  # stride > kernel: pixels no tap reaches
    ((9, 2, 11, 10), (2, 1, 3, 3), 2, 2, 2, 2),                     # stride and dilation 2: phases of all taps or none
    ((9, 3, 13, 12), (3, 1, 5, 4), (3, 2), (1, 3), (2, 3), 3),      # strides that skip taps of dilated kernels
]


def geometries(seed, count):
    rng = np.random.default_rng(seed)
    return [ConvGeometry.create(*case) for case in SPECIAL] + [random_geometry(rng) for _ in range(count)]


def _data(geom, dtype, seed=0, layout="C"):
    """x, w, dy, bias; x and dy C-ordered, batch-last, or views that skip every other column ('strided')."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in (geom.x_shape, geom.weight_shape, geom.y_shape)]
    arrays.append(rng.standard_normal(geom.out_channels).astype(dtype))
    if layout == "batch_last":
        arrays[0], arrays[2] = to_batch_last(arrays[0]), to_batch_last(arrays[2])
    elif layout == "strided":
        for k in (0, 2):
            wide = np.zeros((*arrays[k].shape[:3], 2 * arrays[k].shape[3]), dtype)
            wide[..., ::2] = arrays[k]
            arrays[k] = wide[..., ::2]
    return arrays


def assert_close(actual, expected, rel, what):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * scale, err_msg=what)


def _ours(geom, x, w, dy, b):
    """Every way of asking the algorithm for the three products (and the bias)."""
    y, saved = DEPTHWISE.forward(x, w, geom)
    yb, saved_b = DEPTHWISE.forward(x, w, geom, bias=b)
    dx, dw, db = DEPTHWISE.backward(dy, x, w, geom, saved_b)
    dw2, db2 = DEPTHWISE.grad_weight_and_bias(dy, x, geom)
    return {"y": y, "y + bias": yb, "dx": dx, "dw": dw, "db": db,
            "dx (grad_input)": DEPTHWISE.grad_input(dy, w, geom, saved),
            "dw (grad_weight)": DEPTHWISE.grad_weight(dy, x, geom, saved),
            "dw (saved=None)": DEPTHWISE.grad_weight(dy, x, geom, None),
            "dw (grad_weight_and_bias)": dw2, "db (grad_weight_and_bias)": db2}


def _reference(geom, x, w, dy, b):
    y = NAIVE.forward(x, w, geom)[0]
    dx, dw = NAIVE.grad_input(dy, w, geom), NAIVE.grad_weight(dy, x, geom)
    db = dy.sum(axis=(0, 2, 3))
    return {"y": y, "y + bias": y + b.reshape(1, -1, 1, 1), "dx": dx, "dw": dw, "db": db,
            "dx (grad_input)": dx, "dw (grad_weight)": dw, "dw (saved=None)": dw,
            "dw (grad_weight_and_bias)": dw, "db (grad_weight_and_bias)": db}


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of one or two groups, pieces of one band: every loop of the algorithm runs several times."""
    monkeypatch.setattr(depthwise, "BLOCK_BYTES", 1)
    monkeypatch.setattr(depthwise, "PIECE_BYTES", 1)
    monkeypatch.setattr(depthwise, "MIN_BLOCK_BYTES", 1)
    depthwise._plan.cache_clear()
    yield
    depthwise._plan.cache_clear()


@pytest.mark.parametrize("layout", ["C", "batch_last", "strided"])
@pytest.mark.parametrize("blocks", ["default", "small"])
def test_matches_naive_in_float64(layout, blocks, request):
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    for geom in geometries(1, 16):
        x, w, dy, b = _data(geom, np.float64, layout=layout)
        ours, ref = _ours(geom, x, w, dy, b), _reference(geom, x, w, dy, b)
        for what, expected in ref.items():
            assert ours[what].dtype == np.float64 and ours[what].shape == expected.shape, what
            assert_close(ours[what], expected, 1e-10, f"{what} on {geom} ({layout} inputs)")


def test_plans_cut_the_work_into_blocks_pieces_and_partial_bands(small_blocks):
    geom = ConvGeometry.create((3, 4, 11, 9), (8, 1, 3, 3), 1, 1, 1, 4)
    plan = depthwise._plan(depthwise._forward_problem(geom), 8)
    assert len(plan.blocks) == 4 and len(plan.pieces) == 3       # 11 rows: bands of 4, 4 and 3
    assert [rs.stop - rs.start for rs in plan.pieces] == [4, 4, 3]
    x, w, dy, b = _data(geom, np.float64)
    ours, ref = _ours(geom, x, w, dy, b), _reference(geom, x, w, dy, b)
    for what, expected in ref.items():
        assert_close(ours[what], expected, 1e-10, what)


def test_input_gradient_phases_partition_dx_rows_and_skip_the_spread_zeros():
    """With a stride along H, each dx row is in one phase, which uses only the kernel rows that meet dy's rows."""
    for geom in geometries(4, 10):
        win = geom.window
        kh, sh, dh, top = win.kernel[0], win.stride[0], win.dilation[0], win.padding[0]
        # (dx row, kernel row) pairs where the kernel row meets a multiple of the stride (a dy row, or the border
        # beyond dy), counted directly
        pairs = sum((h + top - a * dh) % sh == 0 for h in range(win.height) for a in range(kh))
        embedding, phases = depthwise._input_phases(geom)
        rows = sorted(h for p in phases for h in range(win.height)[p.rows])
        assert rows == list(range(win.height)) and len(phases) == sh
        used = [p for p in phases if p.problem]
        assert sum(p.problem.out[0] * p.problem.kernel[0] for p in used) == pairs
        for p in used:
            assert p.problem.stride == (1, 1) and p.problem.out == (len(range(win.height)[p.rows]), win.width)
            assert 0 <= p.first and p.first + p.problem.size[0] <= embedding.size[0]


def _torch_conv(torch, geom, x, w, dy, b):
    """torch's y (with bias), dx, dw, db; asymmetric padding applied with F.pad first."""
    F = torch.nn.functional
    t, bottom, left, r = geom.padding
    xt, wt, bt = (torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(True) for a in (x, w, b))
    y = F.conv2d(F.pad(xt, (left, r, t, bottom)), wt, bt, geom.stride, 0, geom.dilation, geom.groups)
    grads = torch.autograd.grad(y, (xt, wt, bt), torch.from_numpy(np.ascontiguousarray(dy)))
    return [y.detach().numpy()] + [g.numpy() for g in grads]


@pytest.mark.torch
@pytest.mark.parametrize("dtype, rel", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_matches_torch(torch, dtype, rel):
    for k, geom in enumerate(geometries(2, 12)):
        x, w, dy, b = _data(geom, dtype, seed=5, layout=("C", "batch_last")[k % 2])
        y, saved = DEPTHWISE.forward(x, w, geom, bias=b)
        dx, dw, db = DEPTHWISE.backward(dy, x, w, geom, saved)
        for got, ref, what in zip((y, dx, dw, db), _torch_conv(torch, geom, x, w, dy, b), ("y", "dx", "dw", "db")):
            assert got.dtype == ref.dtype == dtype
            assert_close(got, ref, rel, f"{what} vs torch on {geom}")


def test_float32_weight_gradient_stays_accurate_over_long_sums():
    # every weight gradient entry sums 16 * 64 * 64 = 65536 products
    geom = ConvGeometry.create((16, 2, 64, 64), (2, 1, 3, 3), 1, 1, 1, 2)
    x, _, dy, _ = _data(geom, np.float64, seed=3)
    x, dy = x + 1.0, dy + 1.0           # same-sign terms: what a sequential float32 sum handles worst
    dw_ref, db_ref = NAIVE.grad_weight(dy, x, geom), dy.sum(axis=(0, 2, 3))
    dw, db = DEPTHWISE.grad_weight_and_bias(dy.astype(np.float32), x.astype(np.float32), geom)
    assert dw.dtype == db.dtype == np.float32
    np.testing.assert_allclose(dw, dw_ref, rtol=2e-6)
    np.testing.assert_allclose(db, db_ref, rtol=2e-6)


def test_outputs_are_batch_last_and_keep_the_dtype():
    geom = ConvGeometry.create((4, 3, 8, 8), (6, 1, 3, 3), 1, 1, 1, 3)
    for dtype in (np.float32, np.float64):
        x, w, dy, _ = _data(geom, dtype)
        y, saved = DEPTHWISE.forward(x, w, geom)
        dx, dw, db = DEPTHWISE.backward(dy, x, w, geom, saved)
        assert is_batch_last(y) and is_batch_last(dx)
        assert y.dtype == dx.dtype == dw.dtype == db.dtype == dtype


def test_only_the_gradients_asked_for():
    geom = ConvGeometry.create((2, 3, 6, 6), (3, 1, 3, 3), 1, 1, 1, 3)
    x, w, dy, _ = _data(geom, np.float64)
    _, saved = DEPTHWISE.forward(x, w, geom)
    assert DEPTHWISE.backward(dy, x, w, geom, saved, True, False, False)[1:] == (None, None)
    dx, dw, db = DEPTHWISE.backward(dy, x, w, geom, saved, False, True, True)
    assert dx is None
    assert_close(dw, NAIVE.grad_weight(dy, x, geom), 1e-10, "dw")
    assert_close(db, dy.sum(axis=(0, 2, 3)), 1e-10, "db")


def test_results_are_bit_identical_on_one_or_two_threads(monkeypatch, small_blocks):
    # every call goes to the pool, however small, so the two-thread runs really run in parallel
    monkeypatch.setattr(depthwise, "MIN_PARALLEL_VALUES", 0)
    monkeypatch.setattr(_parallel, "_inline_until", 0.0)
    monkeypatch.setattr(_parallel, "BACKOFF_SHARE", 2.0)
    before = _parallel.num_threads()
    results = []
    try:
        for threads in (1, 2, 2):
            _parallel.set_num_threads(threads)
            out = []
            for geom in geometries(3, 4):
                x, w, dy, b = _data(geom, np.float32)
                y, saved = DEPTHWISE.forward(x, w, geom, bias=b)
                out += [y, *DEPTHWISE.backward(dy, x, w, geom, saved)]
            results.append(out)
    finally:
        _parallel.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_supports_names_the_reason():
    grouped = ConvGeometry.create((2, 4, 8, 8), (4, 2, 3, 3), groups=2)
    dense = ConvGeometry.create((2, 3, 8, 8), (4, 3, 3, 3))
    for geom, per_group in ((grouped, 2), (dense, 3)):
        why = DEPTHWISE.supports(geom, np.dtype(np.float32))
        assert "one input channel per group" in why and f"({per_group} per group)" in why
        with pytest.raises(ValueError, match="algorithm 'depthwise' cannot run .*one input channel per group"):
            conv.choose(geom, np.float32, "depthwise")
    assert DEPTHWISE.supports(ConvGeometry.create((2, 3, 8, 8), (6, 1, 3, 3), groups=3), np.dtype(np.float64)) is None
    x, w, dy, _ = _data(grouped, np.float32)
    with pytest.raises(ValueError, match="'depthwise' algorithm cannot run this geometry"):
        DEPTHWISE.forward(x, w, grouped)
    with pytest.raises(ValueError, match="'depthwise' algorithm cannot run this geometry"):
        DEPTHWISE.backward(dy, x, w, grouped)


def test_bad_operands_are_named():
    geom = ConvGeometry.create((2, 3, 8, 8), (3, 1, 3, 3), padding=1, groups=3)
    x, w, dy, b = _data(geom, np.float32)
    with pytest.raises(ValueError, match=r"x must have shape \(2, 3, 8, 8\)"):
        DEPTHWISE.forward(x[:, :2], w, geom)
    with pytest.raises(TypeError, match="w has dtype float64 but x has float32"):
        DEPTHWISE.forward(x, w.astype(np.float64), geom)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        DEPTHWISE.forward(x, w, geom, bias=b[:2])
    with pytest.raises(ValueError, match="saved must be what Depthwise.forward returned"):
        DEPTHWISE.backward(dy, x, w, geom, saved=np.zeros(3, np.float32))


@pytest.mark.parametrize("stride, padding, dilation, mult", [(1, 1, 1, 1), (2, (1, 2), 1, 2), ((1, 2), 0, (2, 1), 3)])
def test_conv2d_layer_gradcheck(stride, padding, dilation, mult):
    strided.manual_seed(0)
    layer = nn.Conv2d(3, 3 * mult, 3, stride=stride, padding=padding, dilation=dilation, groups=3,
                      algorithm="depthwise")
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 6))
    assert conv.choose(layer_geometry(layer, x), np.float64, "depthwise")[0].name == "depthwise"
    assert strided.gradcheck(layer, x).ok


def layer_geometry(layer, x):
    return ConvGeometry.create(x.shape, layer.weight.data.shape, layer.stride, layer.padding, layer.dilation,
                               layer.groups)


def test_default_table_picks_depthwise_for_depthwise_layers_only():
    case = next(c for c in bench.SUITE if c.name == "depthwise-3x3")
    assert conv.default_for(case.geometry(), np.float32)[0] == "depthwise"
    lenet1 = next(c for c in bench.SUITE if c.name == "lenet-conv1")       # one input channel, but groups=1
    assert conv.default_for(lenet1.geometry(), np.float32)[0] == "window_rows"
    narrow = ConvGeometry.create((1, 512, 14, 14), (512, 1, 3, 3), padding=1, groups=512)    # 14 columns
    assert conv.default_for(narrow, np.float32)[0] == "window_rows"
    wide = ConvGeometry.create((4, 512, 14, 14), (512, 1, 3, 3), padding=1, groups=512)      # 56 columns
    assert conv.default_for(wide, np.float32)[0] == "depthwise"
    assert "depthwise" in conv.names() and "depthwise" in conv.AUTOTUNE_CANDIDATES
