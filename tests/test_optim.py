"""Optimizers and learning-rate schedulers against torch.optim, plus exact resumption and argument checking.

Trajectories: the same starting values and the same gradient formula (a
quadratic with a wiggle) are fed to our optimizer and to torch's for 20
steps; every intermediate parameter value is compared.
"""
import json
import tracemalloc

import numpy as np
import pytest

from strided import optim
from strided.nn import Module, Parameter

SHAPES = [(3, 4), (5,), (2, 3, 3, 3)]
STEPS = 20


def _initial(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grad(x, k):
    """Gradient of sum(c x^2 / 2 + 0.1 cos(3x) + b x): curvatures differ per element, so adaptive rules differ."""
    c = np.linspace(0.5, 3.0, x.size).reshape(x.shape)
    return (c * x - 0.3 * np.sin(3 * x) + 0.1 * (k + 1)).astype(x.dtype)


def _all_grads(step, k):
    return True


def _groups(params, group_spec):
    if group_spec is None:
        return params
    return [{"params": [params[i] for i in idx], **opts} for idx, opts in group_spec]


def run_ours(cls, kwargs, x0, steps=STEPS, group_spec=None, has_grad=_all_grads, opt=None, params=None):
    params = params or [Parameter(x.copy()) for x in x0]
    opt = opt or cls(_groups(params, group_spec), **kwargs)
    traj = []
    for t in range(steps):
        for k, p in enumerate(params):
            p.grad = _grad(p.data, k) if has_grad(t, k) else None
        opt.step()
        traj.append([p.data.copy() for p in params])
    return traj, params, opt


def run_torch(torch, name, kwargs, x0, steps=STEPS, group_spec=None, has_grad=_all_grads):
    params = [torch.tensor(x.copy(), requires_grad=True) for x in x0]
    opt = getattr(torch.optim, name)(_groups(params, group_spec), **kwargs)
    traj = []
    for t in range(steps):
        for k, p in enumerate(params):
            p.grad = torch.from_numpy(_grad(p.detach().numpy(), k)) if has_grad(t, k) else None
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj


def assert_same_trajectory(ours, theirs, rtol, atol):
    assert len(ours) == len(theirs)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for k, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {t + 1}, parameter {k}")


CONFIGS = [
    (optim.SGD, {}),
    (optim.SGD, dict(lr=0.05)),
    (optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.SGD, dict(lr=0.05, weight_decay=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=0.1, maximize=True)),
    (optim.Adam, {}),
    (optim.Adam, dict(lr=0.05)),
    (optim.Adam, dict(lr=0.05, weight_decay=0.1)),
    (optim.Adam, dict(lr=0.05, amsgrad=True)),
    (optim.Adam, dict(lr=0.05, betas=(0.3, 0.4), eps=1e-3)),
    (optim.Adam, dict(lr=0.05, amsgrad=True, weight_decay=0.1, maximize=True)),
    (optim.Adam, dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    (optim.AdamW, {}),
    (optim.AdamW, dict(lr=0.05, weight_decay=0.2, amsgrad=True)),
    (optim.AdamW, dict(lr=0.05, betas=(0.5, 0.9), maximize=True)),
    (optim.RMSprop, {}),
    (optim.RMSprop, dict(lr=0.01, centered=True)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    (optim.RMSprop, dict(lr=0.01, alpha=0.3, centered=True, momentum=0.5, weight_decay=0.1)),
    (optim.RMSprop, dict(lr=0.01, eps=1e-4, maximize=True)),
    (optim.Adagrad, {}),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.05)),
    (optim.Adagrad, dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    (optim.Adagrad, dict(lr=0.1, eps=1e-6, maximize=True)),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for cls, kw in CONFIGS]

# One demanding configuration per optimizer, for the tests that do not need them all.
RICH = [
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    (optim.AdamW, dict(lr=0.05, weight_decay=0.2)),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1)),
]
RICH_IDS = [cls.__name__ + ("-nesterov" if kw.get("nesterov") else "") for cls, kw in RICH]


# -- trajectories against torch ------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=IDS)
def test_trajectory_matches_torch_float64(torch, cls, kwargs):
    x0 = _initial(np.float64)
    ours, _, _ = run_ours(cls, kwargs, x0)
    theirs = run_torch(torch, cls.__name__, kwargs, x0)
    assert_same_trajectory(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("cls,kwargs", CONFIGS, ids=IDS)
def test_trajectory_float32_stays_float32_and_matches_torch(torch, cls, kwargs):
    """float32 runs stay float32 and follow torch's float32 run.

    The tolerance is looser than float32's epsilon because rounding differences
    (torch fuses multiply-adds) grow over 20 steps where an update divides
    small numbers (small betas/alpha, centered RMSprop): there torch's own
    float32 run is ~1e-5 away from the float64 one. The float64 test pins
    the formulas; a formula error here would be orders of magnitude larger.
    """
    x0 = _initial(np.float32)
    ours, params, opt = run_ours(cls, kwargs, x0)
    for p in params:
        assert p.data.dtype == np.float32
    for st in opt.state.values():
        for name, value in st.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, name
    theirs = run_torch(torch, cls.__name__, kwargs, x0)
    assert_same_trajectory(ours, theirs, rtol=1e-4, atol=5e-5)


@pytest.mark.torch
@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_two_param_groups_with_their_own_options_match_torch(torch, cls, kwargs):
    x0 = _initial(np.float64)
    spec = [([0, 2], dict(lr=kwargs["lr"] / 5)), ([1], dict(weight_decay=0.3))]
    ours, _, opt = run_ours(cls, kwargs, x0, group_spec=spec)
    assert [g["lr"] for g in opt.param_groups] == [kwargs["lr"] / 5, kwargs["lr"]]
    theirs = run_torch(torch, cls.__name__, kwargs, x0, group_spec=spec)
    assert_same_trajectory(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_missing_gradients_are_skipped_like_torch(torch, cls, kwargs):
    """A parameter without a gradient this step keeps its value and its state (step counts diverge per parameter)."""
    def has_grad(t, k):
        return not (k == 1 and t % 3 == 0) and not (k == 2 and t < 4)

    x0 = _initial(np.float64)
    ours, _, _ = run_ours(cls, kwargs, x0, has_grad=has_grad)
    theirs = run_torch(torch, cls.__name__, kwargs, x0, has_grad=has_grad)
    assert_same_trajectory(ours, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(ours[3][2], x0[2])


@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_frozen_parameters_are_untouched_and_get_no_state(cls, kwargs):
    params = [Parameter(x) for x in _initial(np.float64)]
    frozen = params[1]
    before = frozen.data.copy()
    frozen.requires_grad = False
    opt = cls(params, **kwargs)
    for _ in range(3):
        for k, p in enumerate(params):
            p.grad = _grad(p.data, k)  # even with a gradient present, a frozen parameter is not updated
        opt.step()
    np.testing.assert_array_equal(frozen.data, before)
    assert frozen not in opt.state
    assert not np.array_equal(params[0].data, _initial(np.float64)[0])


@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_updates_are_in_place(cls, kwargs):
    params = [Parameter(x) for x in _initial(np.float32)]
    arrays = [p.data for p in params]
    opt = cls(params, **kwargs)
    run_ours(cls, kwargs, None, steps=3, opt=opt, params=params)
    for p, a in zip(params, arrays):
        assert p.data is a
        assert not np.array_equal(a, _initial(np.float32)[params.index(p)])


@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_float32_stays_float32_with_numpy_float64_hyperparameters(cls, kwargs):
    """np.float64 scalars promote float32 arrays in NumPy 2; options set that way must not change the dtype."""
    params = [Parameter(x) for x in _initial(np.float32)]
    opt = cls(params, **kwargs)
    for group in opt.param_groups:
        for key, value in group.items():
            if isinstance(value, float):
                group[key] = np.float64(value)
            elif key == "betas":
                group[key] = tuple(np.float64(b) for b in value)
    reference, _, _ = run_ours(cls, kwargs, _initial(np.float32), steps=5)
    traj, _, _ = run_ours(cls, kwargs, None, steps=5, opt=opt, params=params)
    assert all(p.data.dtype == np.float32 for p in params)
    assert_same_trajectory(traj, reference, rtol=0, atol=0)


@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_float64_gradients_do_not_promote_float32_parameters(cls, kwargs):
    params = [Parameter(x) for x in _initial(np.float32)]
    opt = cls(params, **kwargs)
    for _ in range(3):
        for k, p in enumerate(params):
            p.grad = _grad(p.data.astype(np.float64), k)
        opt.step()
    assert all(p.data.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for st in opt.state.values() for v in st.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_step_allocates_no_parameter_sized_arrays_once_warm(cls, kwargs):
    p = Parameter(np.random.default_rng(0).standard_normal(200_000))
    opt = cls([p], **kwargs)
    p.grad = _grad(p.data, 0)
    opt.step()
    opt.step()  # state and work arrays exist from here on
    tracemalloc.start()
    try:
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < p.data.nbytes // 4, f"a step allocated {peak} bytes for a {p.data.nbytes}-byte parameter"


def test_zero_grad():
    params = [Parameter(x) for x in _initial()]
    opt = optim.SGD(params, lr=0.1)
    for k, p in enumerate(params):
        p.grad = _grad(p.data, k)
    grads = [p.grad for p in params]
    opt.zero_grad(set_to_none=False)
    for p, g in zip(params, grads):
        assert p.grad is g and not g.any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_calls_the_closure_first_and_returns_its_loss():
    p = Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.5)

    def closure():
        p.grad = 2 * p.data  # gradient of |p|^2 at the current value
        return float(p.data @ p.data)

    assert opt.step(closure) == 5.0
    np.testing.assert_array_equal(p.data, np.array([1.0, -2.0]) - 0.5 * 2 * np.array([1.0, -2.0]))
    p.grad = np.ones(2)
    assert opt.step() is None


# -- saving and resuming -------------------------------------------------------------
def _through_json_and_npz(obj, tmp_path):
    """Round trip through the file formats a checkpoint uses: arrays to .npz, everything else to JSON."""
    arrays = {}

    def encode(o):
        if isinstance(o, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = o
            return {"__array__": key}
        if isinstance(o, dict):
            return {str(k): encode(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [encode(v) for v in o]
        return o

    (tmp_path / "state.json").write_text(json.dumps(encode(obj)))
    np.savez(tmp_path / "state.npz", **arrays)
    with np.load(tmp_path / "state.npz") as npz:
        stored = {k: npz[k] for k in npz.files}

    def decode(o):
        if isinstance(o, dict):
            if set(o) == {"__array__"}:
                return stored[o["__array__"]]
            return {k: decode(v) for k, v in o.items()}
        if isinstance(o, list):
            return [decode(v) for v in o]
        return o

    return decode(json.loads((tmp_path / "state.json").read_text()))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,kwargs", RICH, ids=RICH_IDS)
def test_resume_from_state_dict_is_bit_exact(tmp_path, cls, kwargs, dtype):
    def has_grad(t, k):  # include a parameter whose state starts late
        return not (k == 2 and t < 12)

    spec = [([0, 2], dict(lr=kwargs["lr"] / 2)), ([1], {})]
    x0 = _initial(dtype)
    straight, _, _ = run_ours(cls, kwargs, x0, group_spec=spec, has_grad=has_grad)

    first, params, opt = run_ours(cls, kwargs, x0, steps=10, group_spec=spec, has_grad=has_grad)
    saved = _through_json_and_npz(opt.state_dict(), tmp_path)
    fresh = [Parameter(p.data.copy()) for p in params]
    opt2 = cls(_groups(fresh, spec), **kwargs)
    opt2.load_state_dict(saved)
    second, _, _ = run_ours(cls, kwargs, None, steps=10, params=fresh, opt=opt2,
                            has_grad=lambda t, k: has_grad(t + 10, k))
    for a, b in zip(straight, first + second):
        for x, y in zip(a, b):
            assert x.dtype == y.dtype == dtype
            assert np.array_equal(x, y)


def test_state_dict_layout_is_torch_like_and_holds_copies():
    params = [Parameter(x) for x in _initial()]
    opt = optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.01}], lr=0.1)
    run_ours(None, None, None, steps=2, opt=opt, params=params)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.01]
    assert sorted(sd["state"]) == [0, 1, 2]
    assert sd["state"][0]["step"] == 2 and isinstance(sd["state"][0]["step"], int)
    assert sd["state"][2]["exp_avg"].shape == SHAPES[2]
    sd["state"][0]["exp_avg"][...] = 123.0
    sd["param_groups"][0]["lr"] = 5.0
    assert not (opt.state[params[0]]["exp_avg"] == 123.0).any()
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.torch
def test_state_dict_loads_torch_optimizer_state(torch):
    """A torch state dict converted to NumPy (tensors -> arrays) resumes to torch's trajectory."""
    kwargs = dict(lr=0.05, amsgrad=True, weight_decay=0.1)
    x0 = _initial()
    theirs = run_torch(torch, "Adam", kwargs, x0, steps=STEPS)
    tparams = [torch.tensor(x.copy(), requires_grad=True) for x in x0]
    topt = torch.optim.Adam(tparams, **kwargs)
    for _ in range(10):
        for k, p in enumerate(tparams):
            p.grad = torch.from_numpy(_grad(p.detach().numpy(), k))
        topt.step()
    tsd = topt.state_dict()
    sd = {"state": {i: {k: v.numpy() for k, v in st.items()} for i, st in tsd["state"].items()},
          "param_groups": [dict(g) for g in tsd["param_groups"]]}
    params = [Parameter(p.detach().numpy().copy()) for p in tparams]
    opt = optim.Adam(params, **kwargs)
    opt.load_state_dict(sd)  # torch-only group keys (foreach, fused...) are kept, not interpreted
    assert opt.state[params[0]]["step"] == 10
    ours, _, _ = run_ours(None, None, None, steps=10, opt=opt, params=params)
    assert_same_trajectory(ours, theirs[10:], rtol=1e-10, atol=1e-12)


def test_failed_load_leaves_the_optimizer_untouched():
    params = [Parameter(x) for x in _initial()]
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run_ours(None, None, None, steps=2, opt=opt, params=params)
    before = opt.state_dict()
    bad = opt.state_dict()
    bad["param_groups"][0]["lr"] = 0.5
    bad["state"][2]["momentum_buffer"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"momentum_buffer.*shape \(2, 2\)"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i in before["state"]:
        np.testing.assert_array_equal(after["state"][i]["momentum_buffer"], before["state"][i]["momentum_buffer"])


def test_load_state_dict_rejects_mismatches():
    params = [Parameter(x) for x in _initial()]
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    adam = optim.Adam(params, lr=0.1)
    run_ours(None, None, None, steps=1, opt=adam, params=params)
    with pytest.raises(ValueError, match="different optimizer"):
        sgd.load_state_dict(adam.state_dict())
    two_groups = optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1)
    with pytest.raises(ValueError, match=r"has 1 group\(s\), this SGD has 2"):
        two_groups.load_state_dict(optim.SGD(params, lr=0.1).state_dict())
    with pytest.raises(ValueError, match="lists 2 parameter"):
        optim.SGD(params, lr=0.1).load_state_dict(optim.SGD(params[:2], lr=0.1).state_dict())
    sd = adam.state_dict()
    sd["state"][0]["velocity"] = np.zeros(SHAPES[0])
    with pytest.raises(ValueError, match="unknown entry 'velocity'"):
        optim.Adam(params, lr=0.1).load_state_dict(sd)
    sd = adam.state_dict()
    sd["state"][0]["step"] = -1
    with pytest.raises(ValueError, match="step"):
        optim.Adam(params, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        sgd.load_state_dict({"param_groups": []})


# -- argument checking -----------------------------------------------------------------
def _p():
    return [Parameter(np.zeros(3))]


@pytest.mark.parametrize("make,exc,match", [
    (lambda: optim.SGD(_p(), lr=0), ValueError, r"lr must be .*> 0, got 0"),
    (lambda: optim.Adam(_p(), lr=-1e-3), ValueError, r"lr must be .*> 0, got -0.001"),
    (lambda: optim.SGD(_p(), lr="0.1"), TypeError, "lr must be a number, got '0.1'"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=-0.5), ValueError, "momentum .*got -0.5"),
    (lambda: optim.RMSprop(_p(), momentum=-1), ValueError, "momentum .*got -1"),
    (lambda: optim.SGD(_p(), lr=0.1, dampening=2), ValueError, "dampening"),
    (lambda: optim.SGD(_p(), lr=0.1, nesterov=True), ValueError, "nesterov.*momentum > 0"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening = 0"),
    (lambda: optim.SGD(_p(), lr=0.1, nesterov=1), TypeError, "nesterov must be True or False"),
    (lambda: optim.Adam(_p(), betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be in \[0, 1\), got 1.0"),
    (lambda: optim.Adam(_p(), betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be in \[0, 1\), got -0.1"),
    (lambda: optim.AdamW(_p(), betas=0.9), TypeError, "betas must be a pair"),
    (lambda: optim.Adam(_p(), eps=-1e-8), ValueError, "eps"),
    (lambda: optim.Adam(_p(), weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda: optim.Adam(_p(), amsgrad="yes"), TypeError, "amsgrad"),
    (lambda: optim.RMSprop(_p(), alpha=1.5), ValueError, "alpha"),
    (lambda: optim.Adagrad(_p(), lr_decay=-1), ValueError, "lr_decay"),
    (lambda: optim.Adagrad(_p(), initial_accumulator_value=-1), ValueError, "initial_accumulator_value"),
    (lambda: optim.SGD([], lr=0.1), ValueError, "params is empty"),
    (lambda: optim.SGD(iter([]), lr=0.1), ValueError, "params is empty"),
    (lambda: optim.SGD([np.zeros(3)], lr=0.1), TypeError, r"params\[0\] must be a strided.nn.Parameter, got ndarray"),
    (lambda: optim.SGD([_p()[0], 3.0], lr=0.1), TypeError, r"params\[1\] must be a strided.nn.Parameter, got float"),
    (lambda: optim.SGD([("w", _p()[0])], lr=0.1), TypeError, "named_parameters"),
    (lambda: optim.SGD(_p()[0], lr=0.1), TypeError, "single Parameter"),
    (lambda: optim.SGD(Module(), lr=0.1), TypeError, "model.parameters()"),
    (lambda: optim.SGD(None, lr=0.1), TypeError, "params must be an iterable"),
    (lambda: optim.SGD(_p() * 2, lr=0.1), ValueError, "more than once"),
    (lambda: optim.SGD([{"params": _p()}, {"params": [], "lr": 0.1}], lr=0.1), ValueError, r"params\[1\]\['params'\] is empty"),
    (lambda: optim.SGD([{"params": _p(), "lr": -2}], lr=0.1), ValueError, r"params\[0\]\['lr'\] must be .*got -2"),
    (lambda: optim.SGD([{"params": _p(), "betas": (0.9, 0.9)}], lr=0.1), ValueError, r"unknown option\(s\) \['betas'\]"),
    (lambda: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError, "must have a 'params' entry"),
    (lambda: optim.AdamW([{"params": _p(), "decoupled_weight_decay": False}]), ValueError, "AdamW"),
])
def test_bad_arguments_are_rejected_with_a_clear_message(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_add_param_group_validates_and_fills_defaults():
    a, b = _p(), _p()
    opt = optim.SGD(a, lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": b})
    with pytest.raises(ValueError, match=r"param_groups\[2\]\['momentum'\]"):
        opt.add_param_group({"params": _p(), "momentum": -1})
    assert len(opt.param_groups) == 2


def test_gradient_of_the_wrong_shape_is_rejected_before_any_update():
    params = [Parameter(np.ones(3)), Parameter(np.ones(4))]
    opt = optim.SGD(params, lr=0.1)
    params[0].grad = np.ones(3)
    params[1].grad = np.ones(5)
    with pytest.raises(ValueError, match=r"\['params'\]\[1\]\.grad has shape \(5,\), expected .* \(4,\)"):
        opt.step()
    np.testing.assert_array_equal(params[0].data, np.ones(3))


# -- learning-rate schedulers ----------------------------------------------------------
SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5), 20),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3), 15),
    ("ExponentialLR", dict(gamma=0.9), 15),
    ("CosineAnnealingLR", dict(T_max=5), 30),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.005), 42),
    ("CosineAnnealingLR", dict(T_max=1, eta_min=0.01), 6),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=25), 24),
    ("OneCycleLR", dict(max_lr=0.8, total_steps=30, anneal_strategy="linear", pct_start=0.25), 30),
    ("OneCycleLR", dict(max_lr=0.8, epochs=4, steps_per_epoch=5, three_phase=True, base_momentum=0.7), 19),
    ("LinearLR", dict(), 9),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.6, total_iters=7), 12),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.0, total_iters=4), 8),
]


def _two_group_pair(torch, name, opt_kwargs):
    ours = [Parameter(np.zeros(2)), Parameter(np.zeros(3))]
    theirs = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    o = getattr(optim, name)([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.02}], **opt_kwargs)
    t = getattr(torch.optim, name)([{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.02}], **opt_kwargs)
    return o, t


@pytest.mark.torch
@pytest.mark.parametrize("opt_name,opt_kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.1))])
@pytest.mark.parametrize("name,kwargs,steps", SCHEDULERS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(SCHEDULERS)])
def test_scheduler_matches_torch(torch, name, kwargs, steps, opt_name, opt_kwargs):
    o, t = _two_group_pair(torch, opt_name, opt_kwargs)
    ours = getattr(optim.lr_scheduler, name)(o, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(t, **kwargs)

    def compare(when):
        assert ours.last_epoch == theirs.last_epoch
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-13, atol=1e-16, err_msg=when)
        for g, tg in zip(o.param_groups, t.param_groups):
            np.testing.assert_allclose(g["lr"], tg["lr"], rtol=1e-13, atol=1e-16, err_msg=when)
            key = "betas" if "betas" in g else "momentum"
            np.testing.assert_allclose(g[key], tg[key], rtol=1e-13, err_msg=when)

    compare("after construction")
    for epoch in range(steps):
        o.step()
        t.step()
        ours.step()
        theirs.step()
        compare(f"after scheduler step {epoch + 1}")


def _compare_lrs(ours, theirs, o, t, when):
    assert ours.last_epoch == theirs.last_epoch, when
    np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-13, atol=1e-16, err_msg=when)
    for g, tg in zip(o.param_groups, t.param_groups):
        np.testing.assert_allclose(g["lr"], tg["lr"], rtol=1e-13, atol=1e-16, err_msg=when)


SEQUENCES = [
    # (children as (name, kwargs), milestones, steps)
    ([("LinearLR", dict(start_factor=0.1, total_iters=4)), ("CosineAnnealingLR", dict(T_max=6, eta_min=0.01))], [4], 14),
    ([("ExponentialLR", dict(gamma=0.8)), ("StepLR", dict(step_size=2, gamma=0.5)),
      ("MultiStepLR", dict(milestones=[0, 3, 3], gamma=0.5))], [3, 7], 15),
    ([("LinearLR", dict(start_factor=0.25, total_iters=3)), ("OneCycleLR", dict(max_lr=0.9, total_steps=10))], [3], 12),
]


@pytest.mark.torch
@pytest.mark.parametrize("children,milestones,steps", SEQUENCES, ids=["warmup-cosine", "exp-step-multistep",
                                                                      "warmup-onecycle"])
def test_sequential_lr_matches_torch(torch, children, milestones, steps):
    o, t = _two_group_pair(torch, "SGD", dict(lr=0.1, momentum=0.9))
    ours = optim.SequentialLR(o, [getattr(optim.lr_scheduler, n)(o, **kw) for n, kw in children], milestones)
    theirs = torch.optim.lr_scheduler.SequentialLR(
        t, [getattr(torch.optim.lr_scheduler, n)(t, **kw) for n, kw in children], milestones)
    _compare_lrs(ours, theirs, o, t, "after construction")
    for i in range(steps):
        o.step()
        t.step()
        ours.step()
        theirs.step()
        _compare_lrs(ours, theirs, o, t, f"after step {i + 1}")


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(mode="max", factor=0.5, patience=1, threshold=0.05, cooldown=2, min_lr=[0.01, 0.004]),
    dict(factor=0.3, patience=0, threshold=0.1, threshold_mode="abs", min_lr=0.002, eps=1e-3),
    dict(mode="max", factor=0.5, patience=2, threshold_mode="abs", threshold=0.02, cooldown=1),
], ids=["defaults", "max-rel-cooldown", "min-abs-eps", "max-abs"])
def test_reduce_lr_on_plateau_matches_torch(torch, kwargs):
    o, t = _two_group_pair(torch, "SGD", dict(lr=0.1, momentum=0.9))
    ours = optim.ReduceLROnPlateau(o, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(t, **kwargs)
    # a noisy plateau: long enough stretches without improvement that every rule (patience, cooldown, min_lr) acts
    metrics = np.random.default_rng(0).normal(1.0, 0.05, 60) + np.repeat([0.5, 0.2, 0.0, -0.1, -0.1, -0.1], 10)
    for epoch, m in enumerate(metrics):
        ours.step(float(m))
        theirs.step(float(m))
        when = f"after epoch {epoch + 1}"
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == \
            (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter), when
        for g, tg in zip(o.param_groups, t.param_groups):
            assert g["lr"] == tg["lr"], when
    assert o.param_groups[0]["lr"] < 0.1  # the metric plateaued: the rate came down


@pytest.mark.parametrize("make", [
    lambda o: optim.SequentialLR(o, [optim.LinearLR(o, 0.2, total_iters=3), optim.StepLR(o, 2, 0.5)], [3]),
    lambda o: optim.ReduceLROnPlateau(o, patience=1, cooldown=1),
], ids=["SequentialLR", "ReduceLROnPlateau"])
def test_sequential_and_plateau_resume_from_state_dict(tmp_path, make):
    def drive(sched, epochs):
        lrs = []
        for e in epochs:
            if isinstance(sched, optim.ReduceLROnPlateau):
                sched.step(1.0 / (1 + e % 4))
            else:
                sched.step()
            lrs.append(sched.optimizer.param_groups[0]["lr"])
        return lrs

    opt = optim.SGD(_p(), lr=0.1, momentum=0.9)
    straight = drive(make(opt), range(12))
    opt = optim.SGD(_p(), lr=0.1, momentum=0.9)
    sched = make(opt)
    first = drive(sched, range(5))
    saved = _through_json_and_npz({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path)
    opt = optim.SGD(_p(), lr=0.1, momentum=0.9)
    sched = make(opt)
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    assert first + drive(sched, range(5, 12)) == straight


def test_schedulers_declare_when_fit_steps_them():
    opt = optim.SGD(_p(), lr=0.1, momentum=0.9)
    assert optim.OneCycleLR(opt, max_lr=1.0, total_steps=4).interval == "batch"
    warm = optim.LinearLR(opt)
    assert warm.interval == "batch"
    assert optim.SequentialLR(opt, [warm, optim.StepLR(opt, 2)], [5]).interval == "batch"
    for sched in (optim.StepLR(opt, 2), optim.CosineAnnealingLR(opt, 3), optim.ReduceLROnPlateau(opt)):
        assert sched.interval == "epoch"
    sched = optim.StepLR(opt, 2)
    sched.interval = "batch"  # an instance may be stepped per batch; the state does not carry it
    assert "interval" not in sched.state_dict() and optim.StepLR.interval == "epoch"


def test_one_cycle_refuses_to_step_past_total_steps():
    opt = optim.SGD(_p(), lr=0.1, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=1.0, total_steps=4)
    for _ in range(4):
        sched.step()
    with pytest.raises(ValueError, match="total_steps=4"):
        sched.step()


@pytest.mark.parametrize("make_sched", [
    lambda o: optim.StepLR(o, step_size=4, gamma=0.5),
    lambda o: optim.CosineAnnealingLR(o, T_max=6, eta_min=1e-3),
    lambda o: optim.MultiStepLR(o, milestones=[3, 12]),
    lambda o: optim.OneCycleLR(o, max_lr=0.5, total_steps=20),
], ids=["StepLR", "CosineAnnealingLR", "MultiStepLR", "OneCycleLR"])
def test_resume_optimizer_and_scheduler_is_bit_exact(tmp_path, make_sched):
    kwargs = dict(lr=0.05, momentum=0.9)

    def train(opt, sched, params, epochs):
        traj, lrs = [], []
        for _ in range(epochs):
            traj += run_ours(None, None, None, steps=1, opt=opt, params=params)[0]
            sched.step()
            lrs.append(sched.get_last_lr())
        return traj, lrs

    params = [Parameter(x) for x in _initial()]
    opt = optim.SGD(params, **kwargs)
    straight, straight_lrs = train(opt, make_sched(opt), params, 18)

    params = [Parameter(x) for x in _initial()]
    opt = optim.SGD(params, **kwargs)
    sched = make_sched(opt)
    first, first_lrs = train(opt, sched, params, 9)
    saved = _through_json_and_npz({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path)

    params = [Parameter(p.data.copy()) for p in params]
    opt = optim.SGD(params, **kwargs)
    sched = make_sched(opt)
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    second, second_lrs = train(opt, sched, params, 9)
    assert first_lrs + second_lrs == straight_lrs
    for a, b in zip(straight, first + second):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("make,exc,match", [
    (lambda o: optim.StepLR(None, step_size=2), TypeError, "optimizer must be a strided.optim.Optimizer"),
    (lambda o: optim.StepLR(o, step_size=0), ValueError, "step_size"),
    (lambda o: optim.StepLR(o, step_size=2.5), TypeError, "step_size"),
    (lambda o: optim.StepLR(o, step_size=2, gamma=-0.1), ValueError, "gamma"),
    (lambda o: optim.MultiStepLR(o, milestones=[2, -1]), ValueError, "milestones"),
    (lambda o: optim.ExponentialLR(o, gamma=0), ValueError, "gamma"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=5, eta_min=-1), ValueError, "eta_min"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=5, last_epoch=3), ValueError, "initial_lr"),
    (lambda o: optim.StepLR(o, step_size=2, last_epoch=-2), ValueError, "last_epoch"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0), ValueError, "total_steps"),
    (lambda o: optim.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=10), ValueError, "max_lr has 2 values"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda o: optim.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    (lambda o: optim.OneCycleLR(optim.Adagrad(_p()), max_lr=1.0, total_steps=10), ValueError, "cycle_momentum"),
    (lambda o: optim.LinearLR(o, start_factor=0), ValueError, "start_factor"),
    (lambda o: optim.LinearLR(o, start_factor=1.5), ValueError, "start_factor"),
    (lambda o: optim.LinearLR(o, end_factor=-0.1), ValueError, "end_factor"),
    (lambda o: optim.LinearLR(o, total_iters=0), ValueError, "total_iters"),
    (lambda o: optim.SequentialLR(o, [], []), ValueError, "non-empty"),
    (lambda o: optim.SequentialLR(o, [optim.StepLR(o, 2), optim.StepLR(o, 3)], []), ValueError, "milestones"),
    (lambda o: optim.SequentialLR(o, [optim.ReduceLROnPlateau(o)], []), ValueError, "ReduceLROnPlateau"),
    (lambda o: optim.SequentialLR(o, [optim.StepLR(optim.SGD(_p(), lr=0.1), 2)], []), ValueError, "another optimizer"),
    (lambda o: optim.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    (lambda o: optim.ReduceLROnPlateau(o, mode="up"), ValueError, "mode"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode"),
    (lambda o: optim.ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, "min_lr has 2 values"),
])
def test_bad_scheduler_arguments_are_rejected(make, exc, match):
    with pytest.raises(exc, match=match):
        make(optim.SGD(_p(), lr=0.1, momentum=0.9))


def test_scheduler_load_state_dict_rejects_another_schedulers_state():
    opt = optim.SGD(_p(), lr=0.1)
    step = optim.StepLR(opt, step_size=2)
    cosine = optim.CosineAnnealingLR(opt, T_max=3)
    with pytest.raises(ValueError, match="CosineAnnealingLR.*missing \\['T_max', 'eta_min'\\]"):
        cosine.load_state_dict(step.state_dict())
