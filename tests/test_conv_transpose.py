"""ConvTranspose2d against torch.nn.ConvTranspose2d on every convolution algorithm, plus its checks.

Configurations are drawn from a seeded generator (rectangular kernels, tuple
strides, padding, output padding smaller than the stride or the dilation,
dilation, groups); output, input gradient and weight and bias gradients are
compared in float64 at rtol 1e-10 for every algorithm that runs the underlying
convolution's geometry.
"""
import numpy as np
import pytest
from _parity import assert_same_run, load_torch_weights, run_ours, run_torch

import strided
from strided import conv, nn
from strided import functional as F
from strided.geometry import ConvGeometry

ALGORITHMS = list(conv.ALGORITHMS)   # every algorithm once (names() adds aliases and "auto")


def random_config(rng):
    """(x_shape, out_channels, kernel, keyword arguments) of a valid transposed convolution."""
    groups = int(rng.integers(1, 4))
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, size=2))
    output_padding = tuple(int(rng.integers(0, max(stride[a], dilation[a]))) for a in (0, 1))
    hw = tuple(int(h) for h in rng.integers(2, 6, size=2))
    padding = tuple(int(rng.integers(0, 1 + ((hw[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1)) // 2))
                    for a in (0, 1))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    return (int(rng.integers(1, 3)), cin, *hw), cout, kernel, kw


FIXED = [
    ((2, 4, 5, 4), 6, (3, 2), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2)),
    ((1, 2, 4, 5), 3, 3, dict(padding=1, output_padding=1, dilation=2)),      # output_padding >= stride, < dilation
    ((2, 3, 3, 3), 6, (2, 3), dict(stride=2, padding=(0, 2), output_padding=(0, 1), dilation=(2, 3), groups=3)),
    ((2, 4, 5, 5), 4, 3, dict(groups=4, padding=1)),                          # depthwise
    ((2, 2, 4, 4), 3, 3, {}),
]
CONFIGS = FIXED + [random_config(np.random.default_rng(seed)) for seed in range(12)]


def _conv_geometry(x_shape, cout, kernel, kw):
    m = nn.ConvTranspose2d(x_shape[1], cout, kernel, **kw)
    oh, ow = F.conv_transpose2d_output_size(x_shape[2:], m.kernel_size, m.stride, m.padding, m.output_padding,
                                            m.dilation)
    return ConvGeometry.create((x_shape[0], cout, oh, ow), m.weight.shape, m.stride, m.padding, m.dilation,
                               m.groups)


@pytest.mark.torch
@pytest.mark.parametrize("case", range(len(CONFIGS)))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_parity_every_algorithm(torch, case, algorithm):
    x_shape, cout, kernel, kw = CONFIGS[case]
    if conv.get(algorithm).supports(_conv_geometry(x_shape, cout, kernel, kw), np.dtype(np.float64)) is not None:
        pytest.skip(f"{algorithm} does not run this geometry")
    tm = torch.nn.ConvTranspose2d(x_shape[1], cout, kernel, **kw).double()
    m = load_torch_weights(nn.ConvTranspose2d(x_shape[1], cout, kernel, dtype=np.float64, algorithm=algorithm,
                                              **kw), tm)
    rng = np.random.default_rng(case)
    x = rng.standard_normal(x_shape)
    dy = rng.standard_normal(m(x).shape)
    assert m._cache.algorithm.name == algorithm
    assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy), np.float64, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
def test_default_init_and_state_dict_match_torch(torch):
    m, tm = nn.ConvTranspose2d(4, 6, (3, 2), groups=2), torch.nn.ConvTranspose2d(4, 6, (3, 2), groups=2)
    assert list(m.state_dict()) == list(tm.state_dict()) == ["weight", "bias"]
    assert m.weight.shape == tuple(tm.weight.shape) == (4, 3, 3, 2)
    # torch's fan_in is weight.size(1) * kh * kw = out/groups * kh * kw (in_channels would give half this bound)
    m = nn.ConvTranspose2d(8, 2, 3, rng=0)
    bound = 1 / np.sqrt(2 * 3 * 3)
    assert bound * 0.9 < np.abs(m.weight.data).max() <= bound
    assert np.abs(m.bias.data).max() <= bound


@pytest.mark.torch
def test_unbatched_matches_torch(torch):
    kw = dict(stride=2, padding=1, output_padding=1)
    tm = torch.nn.ConvTranspose2d(2, 3, 3, **kw).double()
    m = load_torch_weights(nn.ConvTranspose2d(2, 3, 3, dtype=np.float64, **kw), tm)
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    dy = np.random.default_rng(1).standard_normal(m(x).shape)
    assert m(x).ndim == 3
    assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy), np.float64, rtol=1e-10, atol=1e-12)


def test_gradcheck():
    m = nn.ConvTranspose2d(4, 2, (3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2,
                           dilation=(1, 2), dtype=np.float64, rng=0)
    assert strided.gradcheck(m, np.random.default_rng(0).standard_normal((2, 4, 3, 4)))


@pytest.mark.parametrize("kwargs, name", [
    (dict(output_padding=2, stride=2), "output_padding"),
    (dict(output_padding=(0, 1)), "output_padding"),
    (dict(stride=0), "stride"),
    (dict(padding=-1), "padding"),
    (dict(dilation=0), "dilation"),
    (dict(groups=3), "groups"),
    (dict(padding_mode="reflect"), "padding_mode"),
    (dict(algorithm="nope"), "algorithm"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        nn.ConvTranspose2d(4, 2, 3, **kwargs)


def test_bad_input_is_rejected_before_work():
    m = nn.ConvTranspose2d(4, 2, 3)
    with pytest.raises(ValueError, match="4 input channels"):
        m(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="output size"):
        nn.ConvTranspose2d(1, 1, 1, padding=3)(np.zeros((1, 1, 2, 2), np.float32))


def test_save_load_round_trip(tmp_path):
    m = nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=1, output_padding=(1, 0), groups=2, rng=0)
    path = strided.io.save(m, tmp_path / "m.npz")
    back = strided.io.load(path)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    assert isinstance(back, nn.ConvTranspose2d) and back.output_padding == (1, 0)
    np.testing.assert_array_equal(back(x), m(x))


@pytest.mark.torch
def test_torch_interop_round_trip(torch):
    T = torch.nn
    tm = T.Sequential(T.ConvTranspose2d(4, 6, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
                                        groups=2, dilation=(1, 2), dtype=torch.float64), T.ReLU())
    ours = strided.io.from_torch(tm)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 4))
    expected = tm(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-10, atol=1e-12)
    back = strided.io.to_torch(ours)
    assert isinstance(back[0], T.ConvTranspose2d) and back[0].output_padding == (1, 2)
    np.testing.assert_allclose(back(torch.tensor(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_onnx_grouped_in_onnxruntime(tmp_path):
    """Groups and output padding at least the stride (onnx's reference evaluator has no grouped ConvTranspose)."""
    ort = pytest.importorskip("onnxruntime", reason="pip install strided[onnx]")
    m = nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), output_padding=(1, 1), groups=2,
                           dilation=(1, 2), rng=0)
    path = strided.io.export_onnx(m, tmp_path / "m.onnx", (4, 5, 4))
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 4)).astype(np.float32)
    session = ort.InferenceSession(str(path))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, m(x), rtol=1e-5, atol=1e-5)
