"""``Dropout(inplace=True)`` against torch's: the result is written into x, the gradient is unchanged.

torch and strided draw different masks, so the values are compared under
torch's own mask (fed to :func:`strided.functional.dropout_forward` as the
uniforms it thresholds), and with p = 0 and p = 1 where there is no draw to
differ; the layer itself must give bit for bit what the out-of-place layer
gives from the same seed, as torch's does.
"""
import numpy as np
import pytest
from _parity import KeepUniforms, assert_close

import strided.functional as F
from strided import io as sio
from strided import nn
from strided.windows import is_batch_last, to_batch_last

pytestmark = pytest.mark.torch

DTYPES = [np.float64, np.float32]
LAYOUTS = ["c_order", "batch_last", "view", "2d"]


def _layout(rng, layout, dtype):
    """(x, the array x is a view of, or None), no element exactly 0 so a dropped one is recognisable."""
    if layout == "view":
        base = (rng.standard_normal((2, 6, 4, 5)) + 5).astype(dtype)
        return base[:, ::2], base
    shape = (5, 7) if layout == "2d" else (3, 2, 4, 5)
    x = (rng.standard_normal(shape) + 5).astype(dtype)
    return (to_batch_last(x) if layout == "batch_last" else x), None


def _torch_inplace(torch, x, p, dy, train=True):
    """torch's Dropout(p, inplace=True) on a non-leaf copy of x: (output, input gradient, output is the input)."""
    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    t = tx * 1  # torch's in-place layers need a non-leaf input
    m = torch.nn.Dropout(p, inplace=True)
    ty = m.train(train)(t)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy(), ty.data_ptr() == t.data_ptr()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("p", [0.3, 0.8])
def test_inplace_dropout_matches_torch_under_its_mask(torch, rng, p, layout, dtype):
    x, base = _layout(rng, layout, dtype)
    original = x.copy()
    others = None if base is None else base[:, 1::2].copy()
    dy = rng.standard_normal(x.shape).astype(dtype)
    ty, tdx, same = _torch_inplace(torch, original, p, dy)
    assert same
    kept = ty != 0
    assert 0 < kept.sum() < kept.size

    y, cache = F.dropout_forward(x, p, KeepUniforms(kept), inplace=True)
    assert y is x and y.dtype == dtype
    assert is_batch_last(y) == (layout == "batch_last")
    if base is not None:  # only the view's own elements were written
        np.testing.assert_array_equal(base[:, 1::2], others)
    assert_close(x, ty, "in-place output", dtype)
    assert_close(F.dropout_backward(dy, cache), tdx, "input gradient", dtype)
    # the same as out of place, bit for bit
    y2, cache2 = F.dropout_forward(original, p, KeepUniforms(kept))
    np.testing.assert_array_equal(y2, x)
    np.testing.assert_array_equal(F.dropout_backward(dy, cache2), F.dropout_backward(dy, cache))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_inplace_dropout_without_a_draw_matches_torch(torch, rng, p, layout, dtype):
    x, _ = _layout(rng, layout, dtype)
    original = x.copy()
    dy = rng.standard_normal(x.shape).astype(dtype)
    ty, tdx, same = _torch_inplace(torch, original, p, dy)
    m = nn.Dropout(p, inplace=True)
    y = m(x)
    assert y is x and same
    assert_close(x, ty, "in-place output", dtype)
    assert_close(m.backward(dy), tdx, "input gradient", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_dropout_in_eval_mode_is_the_identity_as_torch(torch, rng, dtype):
    x, _ = _layout(rng, "c_order", dtype)
    original = x.copy()
    dy = rng.standard_normal(x.shape).astype(dtype)
    ty, tdx, same = _torch_inplace(torch, original, 0.5, dy, train=False)
    m = nn.Dropout(0.5, inplace=True).eval()
    assert m(x) is x and same
    np.testing.assert_array_equal(x, original)
    np.testing.assert_array_equal(ty, original)
    np.testing.assert_array_equal(m.backward(dy), tdx)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_inplace_layer_equals_the_out_of_place_layer(torch, rng, layout, dtype):
    """The same seed gives the same mask with and without inplace, as in torch."""
    x, _ = _layout(rng, layout, dtype)
    original = x.copy()
    dy = rng.standard_normal(x.shape).astype(dtype)
    m, plain = nn.Dropout(0.4, inplace=True, seed=11), nn.Dropout(0.4, seed=11)
    y = m(x)
    assert y is x
    y_plain = plain(original)
    assert not np.array_equal(y_plain, original)
    np.testing.assert_array_equal(y_plain, x)
    np.testing.assert_array_equal(m.backward(dy), plain.backward(dy))

    torch.manual_seed(5)
    ty, tdx, same = _torch_inplace(torch, original, 0.4, dy)
    torch.manual_seed(5)
    tx = torch.tensor(np.ascontiguousarray(original), requires_grad=True)
    tplain = torch.nn.Dropout(0.4)(tx)
    tplain.backward(torch.tensor(dy))
    assert same
    np.testing.assert_array_equal(ty, tplain.detach().numpy())
    np.testing.assert_array_equal(tdx, tx.grad.numpy())


def test_inplace_dropout_errors(rng):
    with pytest.raises(TypeError, match="x must be a float32 or float64 NumPy array with inplace=True.*got list"):
        nn.Dropout(0.5, inplace=True)([[1.0, 2.0]])
    with pytest.raises(TypeError, match="got dtype int64"):
        nn.Dropout(0.5, inplace=True)(np.array([1, 2], dtype=np.int64))
    frozen = np.array([1.0, -2.0, 3.0])
    frozen.setflags(write=False)
    for train in (True, False):  # refused in eval mode too: the layer does not change with the mode
        with pytest.raises(ValueError, match=r"read-only.*inplace=False"):
            nn.Dropout(0.5, inplace=True).train(train)(frozen)
    np.testing.assert_array_equal(frozen, [1.0, -2.0, 3.0])
    gen = np.random.default_rng(0)
    state = gen.bit_generator.state
    with pytest.raises(ValueError, match="read-only"):
        F.dropout_forward(frozen, 0.5, gen, inplace=True)
    assert gen.bit_generator.state == state  # refused before drawing
    with pytest.raises(TypeError, match="inplace must be True or False, got 'yes'"):
        nn.Dropout(0.5, inplace="yes")
    with pytest.raises(TypeError, match="inplace must be True or False"):
        nn.Dropout(0.5, 1)
    # out of place, a read-only input is fine and left alone
    assert not np.shares_memory(nn.Dropout(0.5)(frozen), frozen)


def test_inplace_dropout_repr_and_files_match_torch(torch, tmp_path):
    for inplace in (True, False):
        ours, theirs = nn.Dropout(0.25, inplace), torch.nn.Dropout(0.25, inplace)
        assert repr(ours) == repr(theirs)
        loaded = sio.load(sio.save(ours, tmp_path / "drop.npz"))
        assert loaded.inplace is inplace and loaded.get_config() == ours.get_config()
