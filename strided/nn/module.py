"""``Parameter``, ``Module`` and ``Sequential``: the module contract.

A module is a small object over the functional core:

    y  = m(x)            # forward; keeps what backward needs (the cache)
    dx = m.backward(dy)  # input gradient; *adds* into each parameter's .grad

Parameters and buffers are registered by assignment (as in torch), so
``named_parameters()``, ``state_dict()`` and ``load_state_dict()`` walk the
tree and produce torch's names (``0.weight``, ``3.running_mean``...).
Every module also remembers the arguments it was built with
(``get_config()``), which is what lets a saved file rebuild its model.

Everything a forward keeps for its backward lives in ``self._cache``. That
one rule lets a module be called more than once in one forward pass (weight
sharing, or one ``ReLU`` used at several places, as torch models often do):
``Module.__call__`` puts the cache of each earlier call of the pass on a
stack, and after each ``backward`` the cache of the call before is restored,
so a backward run in the reverse order of the forward calls (what every
container does) gives every call its own gradient, summed into the shared
parameters. A forward pass starts when a module is called while no other
module is running, so call modules (``m(x)``), not their ``forward``.
"""
from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np

from .. import _checks


class Parameter:
    """A learnable array: ``data`` (np.ndarray), ``grad`` (None until a backward) and ``requires_grad``.

    Gradients accumulate across backward calls, like torch, until ``zero_grad``.
    A parameter with ``requires_grad=False`` is frozen: backward skips its
    gradient and optimizers skip its update (write-up 003's frozen-layer experiment).
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        data = np.asarray(data)
        if data.dtype.kind != "f":
            data = data.astype(np.float32)
        self.data = data
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def accumulate(self, g: np.ndarray) -> None:
        """Add ``g`` into ``grad`` (torch's accumulation semantics); no-op when frozen."""
        if not self.requires_grad:
            return
        if self.grad is None:
            self.grad = np.array(g, dtype=self.data.dtype, copy=True).reshape(self.data.shape)
        else:
            self.grad += g

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}{frozen})"


class _Calls(threading.local):
    """How deep module calls are nested (0: none running) and which forward pass is under way, per thread."""
    depth = 0
    forward_pass = 0


_CALLS = _Calls()


class RemovableHandle:
    """What :meth:`Module.register_forward_hook` returns: ``remove()`` takes the hook off again."""

    def __init__(self, hooks: OrderedDict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


def _restoring_caches(backward):
    """Wrap a class's ``backward`` so that afterwards the cache of the module's previous call is restored."""
    def wrapper(self, *args, **kwargs):
        out = backward(self, *args, **kwargs)
        # only the backward the instance's class resolves to pops: a subclass's backward calling
        # super().backward() steps back once, not twice
        if self._earlier_caches and type(self).backward is wrapper:
            object.__setattr__(self, "_cache", self._earlier_caches.pop())
        return out

    wrapper.__name__, wrapper.__qualname__ = backward.__name__, backward.__qualname__
    wrapper.__doc__, wrapper.__module__, wrapper.__wrapped__ = backward.__doc__, backward.__module__, backward
    return wrapper


class Module:
    """Base class of every layer and loss. Subclasses implement ``forward`` and ``backward``.

    ``forward`` keeps what ``backward`` needs in ``self._cache`` (see the
    module docstring: this is what makes calling a module twice in one
    forward pass correct). ``backward(dy, need_input_grad=True)`` returns
    dL/dx (or None when ``need_input_grad`` is False and the module can skip
    it) and adds parameter gradients with ``Parameter.accumulate``.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "backward" in cls.__dict__:
            cls.backward = _restoring_caches(cls.__dict__["backward"])

    #: the module's own random generator (a ``Dropout`` given a seed), whose state checkpoints save;
    #: None when it draws from strided's global generator (``strided.manual_seed``)
    own_generator: np.random.Generator | None = None

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        # Record constructor arguments (with defaults filled in) so the module
        # can be described as JSON and rebuilt without user code.
        try:
            sig = inspect.signature(cls.__init__)
            bound = sig.bind(None, *args, **kwargs)
            bound.apply_defaults()
            config = dict(bound.arguments)
            config.pop("self", None)
            for name, param in sig.parameters.items():
                # an empty *args or **kwargs is not an argument to pass back when the module is rebuilt
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) and not config.get(name):
                    config.pop(name, None)
        except TypeError:
            config = None  # __init__ will raise the real error
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "_earlier_caches", [])  # caches of this module's earlier calls in the pass
        object.__setattr__(self, "_forward_pass", -1)    # the pass of its last call
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        return self

    def __init__(self):
        pass

    # -- registration -----------------------------------------------------
    def __setattr__(self, name, value):
        # a parameter or module replaced by another of its kind keeps its place in the order, as in torch
        keep = self._parameters if isinstance(value, Parameter) else self._modules if isinstance(value, Module) else None
        for store in (self._parameters, self._buffers, self._modules):
            if store is not keep:
                store.pop(name, None)
        if keep is not None:
            keep[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """A non-learnable array that belongs in the state dict (running statistics)."""
        object.__setattr__(self, name, value)
        self._buffers[name] = value

    def __setstate__(self, state):  # pragma: no cover - copy/pickle support
        self.__dict__.update(state)

    def _sync_buffer(self, name: str, value: np.ndarray) -> None:
        object.__setattr__(self, name, value)
        self._buffers[name] = value

    # -- running ----------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy, need_input_grad=True):
        """dL/dx given dL/dy; ``need_input_grad=False`` lets a layer skip dx (the network's input)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args, **kwargs):
        calls = _CALLS
        if calls.depth == 0:
            calls.forward_pass += 1
        if self._forward_pass == calls.forward_pass:
            # called again in the same pass: keep the earlier call's cache for its backward
            self._earlier_caches.append(self._cache)
        else:
            object.__setattr__(self, "_forward_pass", calls.forward_pass)
            object.__setattr__(self, "_earlier_caches", [])
        for hook in tuple(self._forward_pre_hooks.values()):
            replaced = hook(self, args)
            if replaced is not None:
                args = replaced if isinstance(replaced, tuple) else (replaced,)
        calls.depth += 1
        try:
            out = self.forward(*args, **kwargs)
        finally:
            calls.depth -= 1
        for hook in tuple(self._forward_hooks.values()):
            replaced = hook(self, args, out)
            if replaced is not None:
                out = replaced
        return out

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every forward of this module, as torch does.

        args: the tuple of positional inputs; a hook returning something other
        than None replaces the output. Returns a handle whose ``remove()``
        takes the hook off. Hooks see values only: they take no part in backward.
        """
        if not callable(hook):
            raise TypeError(f"hook must be callable as hook(module, args, output), got {type(hook).__name__}")
        key = max(self._forward_hooks, default=-1) + 1
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, args)`` before every forward of this module, as torch does.

        A hook returning something other than None replaces the inputs (a
        tuple, or a single value). Returns a handle whose ``remove()`` takes the hook off.
        """
        if not callable(hook):
            raise TypeError(f"hook must be callable as hook(module, args), got {type(hook).__name__}")
        key = max(self._forward_pre_hooks, default=-1) + 1
        self._forward_pre_hooks[key] = hook
        return RemovableHandle(self._forward_pre_hooks, key)

    def _need_cache(self, cache, what: str = "forward"):
        """Fail clearly (ValueError) when backward is called without a forward to go back through."""
        if cache is None:
            raise ValueError(
                f"{type(self).__name__}.backward called before {what}: run the module on an input first "
                "(backward needs the cache that forward keeps)"
            )
        return cache

    def _needs_grad(self, name: str) -> bool:
        """Whether parameter ``name`` exists and is trained (frozen or absent: skip its gradient)."""
        p = self._parameters.get(name)
        return p is not None and p.requires_grad

    def _accumulate(self, grads):
        """Add a functional backward's ``weight``/``bias`` gradients into the parameters; return its ``x``."""
        for name in ("weight", "bias"):
            g = getattr(grads, name)
            if g is not None:
                self._parameters[name].accumulate(g)
        return grads.x

    # -- tree walking ------------------------------------------------------
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for this module and every module inside it, depth first, as torch.

        A module registered at several places (weight sharing) comes once,
        under its first name, unless ``remove_duplicate=False``.
        """
        seen: set[int] = set()

        def walk(m, name):
            if remove_duplicate:
                if id(m) in seen:
                    return
                seen.add(id(m))
            yield name, m
            for child_name, child in m._modules.items():
                if child is not None:
                    yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self, remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """(name, module) of the direct children, in registration order.

        A module registered under several names comes once, under its first
        name, as in torch, unless ``remove_duplicate=False``.
        """
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and not (remove_duplicate and id(child) in seen):
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen = set()
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mname, m in self.named_modules(prefix):
            for bname, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{bname}" if mname else bname), b

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters and buffers as NumPy arrays (copies) under torch's key names, in torch's order."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mname, m in self.named_modules(remove_duplicate=False):
            pre = f"{mname}." if mname else ""
            for pname, p in m._parameters.items():
                if p is not None:
                    out[pre + pname] = p.data.copy()
            for bname, b in m._buffers.items():
                if b is not None:
                    out[pre + bname] = np.array(b, copy=True)
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> "Module":
        """Copy arrays from ``state`` (NumPy arrays or anything ``np.asarray`` takes) into this model.

        Keys must match ``state_dict()`` exactly (with ``strict``), shapes must
        match, and values keep this model's dtype. Everything is checked before
        anything is copied, so a failed load leaves the model untouched.
        """
        if not hasattr(state, "items"):
            raise TypeError(f"state must be a mapping of names to arrays, got {type(state).__name__}")
        targets = {}
        for mname, m in self.named_modules(remove_duplicate=False):
            pre = f"{mname}." if mname else ""
            for pname, p in m._parameters.items():
                if p is not None:
                    targets[pre + pname] = (m, pname, True)
            for bname, b in m._buffers.items():
                if b is not None:
                    targets[pre + bname] = (m, bname, False)
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts)
                           + f" (expected keys: {list(targets)})")
        staged = []
        for key, (m, name, is_param) in targets.items():
            if key not in state:
                continue
            value = np.asarray(state[key])
            current = m._parameters[name].data if is_param else m._buffers[name]
            if value.shape != current.shape:
                raise ValueError(
                    f"load_state_dict: {key!r} has shape {tuple(value.shape)}, expected {tuple(current.shape)}"
                )
            if value.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: {key!r} has dtype {value.dtype}, expected a real number array")
            staged.append((m, name, is_param, value.astype(current.dtype, copy=True)))
        for m, name, is_param, value in staged:
            if is_param:
                m._parameters[name].data = value
            else:
                m._sync_buffer(name, value)
        return self

    # -- modes and conversions -----------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def freeze(self) -> "Module":
        """Stop training every parameter of this module (``requires_grad = False``)."""
        for p in self.parameters():
            p.requires_grad = False
        return self

    def unfreeze(self) -> "Module":
        for p in self.parameters():
            p.requires_grad = True
        return self

    def to(self, dtype) -> "Module":
        """Cast parameters and floating buffers to float32 or float64, in place; returns the module."""
        dt = _checks.dtype_of("dtype", dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = p.data.astype(dt)
                    p.grad = None if p.grad is None else p.grad.astype(dt)
            for name, b in list(m._buffers.items()):
                if b is not None and np.asarray(b).dtype.kind == "f":
                    m._sync_buffer(name, np.asarray(b).astype(dt))
            m._clear_cache()
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    def _clear_cache(self) -> None:
        """Drop what the last forward kept (called when dtypes change)."""
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "_earlier_caches", [])

    @property
    def dtype(self) -> np.dtype:
        for p in self.parameters():
            return p.dtype
        return np.dtype(np.float32)

    # -- description -----------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments this module was built with (the random generator left out)."""
        return {k: v for k, v in (self._config or {}).items() if k != "rng"}

    def extra_repr(self) -> str:
        cfg = self._config or {}
        return ", ".join(f"{k}={v!r}" for k, v in cfg.items() if not isinstance(v, Module))

    def __repr__(self) -> str:
        own = sum(p.size for p in self._parameters.values() if p is not None)
        head = f"{type(self).__name__}({self.extra_repr()})"
        if own:
            head += f"  # {own:,} params"
        if not self._modules:
            return head
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        total = self.num_parameters()
        lines.append(f")  # {total:,} params" if total else ")")
        return "\n".join(lines)


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse. Children are named ``0``, ``1``, ..."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential layer {i} must be a Module, got {type(layer).__name__}")
            setattr(self, str(i), layer)

    def __getitem__(self, i):
        layers = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*layers[i])
        return layers[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, layer: Module) -> "Sequential":
        setattr(self, str(len(self)), layer)
        return self

    def get_config(self) -> dict:
        return {}

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def backward(self, dy, need_input_grad=True):
        layers = list(self._modules.values())
        for i in range(len(layers) - 1, -1, -1):
            dy = layers[i].backward(dy, need_input_grad=need_input_grad or i > 0)
        return dy
