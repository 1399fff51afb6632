"""A network in strided and its twin in PyTorch: same weights, same training step, checked to agree.

:func:`build_pair` makes PyTorch's freshly initialised LeNet-5 and a
strided one holding the same weights; :func:`model_pair` does the same for
any model of the zoo (:data:`strided.models.MODELS`), built in strided and
converted with :func:`strided.io.to_torch`; :func:`strided_step` and
:func:`torch_step` are one training step (forward, cross-entropy,
backward, SGD with momentum) in each library; :func:`check_agreement`
refuses to time them unless their logits, loss and every gradient agree.
PyTorch is optional: :func:`import_torch` returns None without it.
"""
from __future__ import annotations

import numpy as np

from .. import models, nn, optim
from .._optional import optional
from ..io import to_torch
from ..random import manual_seed

LR, MOMENTUM = 0.01, 0.9


def import_torch(threads: int):
    """PyTorch set to ``threads`` threads, or None when it is not installed."""
    torch = optional("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return torch


def torch_lenet5(torch, num_classes: int = 10, in_channels: int = 1):
    """PyTorch's LeNet-5, module for module :func:`strided.models.lenet5` (same state-dict names)."""
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(in_channels, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120), tnn.Tanh(),
        tnn.Linear(120, 84), tnn.Tanh(),
        tnn.Linear(84, num_classes),
    )


def build_pair(torch, dtype=np.float32, seed: int = 0):
    """``(model, tmodel)``: PyTorch's freshly initialised LeNet-5 and strided's with the same weights."""
    torch.manual_seed(seed)
    tmodel = torch_lenet5(torch)
    if np.dtype(dtype) == np.float64:
        tmodel = tmodel.double()
    model = models.lenet5(dtype=dtype)
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    return model, tmodel


def model_pair(torch, name: str, dtype=np.float32, seed: int = 0):
    """``(model, tmodel)``: zoo model ``name`` (see ``strided.models.MODELS``) in strided and its PyTorch twin.

    The strided model is initialised from ``seed`` and converted with
    :func:`strided.io.to_torch`, so both hold the same weights and buffers.
    """
    manual_seed(seed)
    model = models.get_model(name, dtype=dtype)
    return model, to_torch(model)


def random_batch(batch: int, dtype=np.float32, seed: int = 0, shape=(1, 28, 28)):
    """x: (batch, *shape) standardised noise, y: (batch,) labels; a step's time does not depend on the values."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *shape)).astype(dtype), rng.integers(0, 10, batch)


def _dropout_off(model, tmodel, torch):
    """Put every dropout layer of both models in eval mode; returns the layers, to be put back in training mode."""
    ours = [m for m in model.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d)) and m.training]
    theirs = [m for m in tmodel.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d)) and m.training]
    for m in ours + theirs:
        m.training = False
    return ours + theirs


def check_agreement(model, tmodel, torch, batch: int = 64, dtype=np.float32, shape=(1, 28, 28)) -> dict:
    """Logits, loss and every parameter gradient of one step in both libraries; returns the largest relative errors.

    Errors are ``max |a - b| / max |b|`` per array (b being PyTorch's).
    x: (batch, *shape). Dropout layers run in eval mode for the check (their
    random masks differ between the libraries) and are put back in training
    mode afterwards. Raises ``AssertionError`` when any exceeds 1e-4 (float32) or 1e-10 (float64):
    the timings below would not compare the same computation.
    """
    x, y = random_batch(batch, dtype, seed=1, shape=shape)
    dropouts = _dropout_off(model, tmodel, torch)
    crit, tcrit = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    model.zero_grad()
    tmodel.zero_grad()
    logits = model(x)
    loss = crit(logits, y)
    model.backward(crit.backward(), need_input_grad=False)
    tlogits = tmodel(torch.from_numpy(x))
    tloss = tcrit(tlogits, torch.from_numpy(y))
    tloss.backward()

    def rel(a, b):
        b = np.asarray(b, dtype=np.float64)
        return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))

    errors = {"logits": rel(logits, tlogits.detach().numpy()), "loss": rel(loss, tloss.item())}
    tparams = dict(tmodel.named_parameters())
    grads = [rel(p.grad, tparams[name].grad.numpy()) for name, p in model.named_parameters()]
    errors["gradients"] = max(grads)
    model.zero_grad()
    tmodel.zero_grad()
    for m in dropouts:
        m.training = True
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    bad = {k: v for k, v in errors.items() if not v <= tol}
    if bad:
        raise AssertionError(f"strided and PyTorch disagree beyond {tol:g} (relative): {bad}")
    return errors


def strided_step(model, x, y):
    """One training step of ``model`` on (x, y): forward, cross-entropy, backward, SGD with momentum."""
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward(), need_input_grad=False)
        opt.step()
    return step


def torch_step(torch, tmodel, x, y):
    """The same training step in PyTorch."""
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        crit(tmodel(tx), ty).backward()
        opt.step()
    return step
