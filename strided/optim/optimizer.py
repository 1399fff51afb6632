"""``Optimizer``: the base class of every update rule, with torch's parameter groups and state layout.

An optimizer owns a list of *parameter groups*. Each group is a dict holding
its ``"params"`` (a list of :class:`~strided.nn.Parameter`) and one value per
option (``lr``, ``momentum``...), so one optimizer can train a whole model with,
say, a smaller learning rate for a pretrained backbone::

    opt = SGD([{"params": backbone.parameters(), "lr": 1e-3},
               {"params": head.parameters()}], lr=1e-2, momentum=0.9)

Per-parameter state (momentum buffers, moment estimates, step counts) lives in
``opt.state``, a dict keyed by the ``Parameter`` object itself. ``step()``
updates every parameter that has a gradient, in place on ``p.data``; a
parameter whose ``grad`` is ``None`` (no gradient this step) or whose
``requires_grad`` is False (frozen, as in write-up 003's frozen-layer experiment)
is skipped and its state is left alone.

``state_dict()`` follows torch's layout with plain values only, so it can be
written as JSON plus an ``.npz`` of arrays and reloaded bit for bit::

    {"state": {0: {"step": 3, "exp_avg": ndarray, ...}, 1: {...}},
     "param_groups": [{"lr": 0.01, ..., "params": [0, 1]}, ...]}

where parameters are numbered by their position across all groups.
"""
from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from .. import _checks
from ..nn.module import Module, Parameter


def flag(name: str, value) -> bool:
    """Validate a boolean option (``nesterov``, ``amsgrad``...)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def unit_interval(name: str, value) -> float:
    """Validate a decay rate in ``[0, 1)`` (Adam's betas: 1 would never forget, and divides by zero)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _as_step_count(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a non-negative int, got {value!r}")
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and float(value).is_integer():
        value = int(value)  # a step count saved as a float (torch keeps it in a float tensor)
    if not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def lerp_(start: np.ndarray, end: np.ndarray, weight: float, tmp: np.ndarray) -> np.ndarray:
    """``start <- start + weight * (end - start)`` in place: an exponential moving average step.

    Computed as ``torch.lerp`` does, which for ``weight >= 0.5`` uses the
    equivalent ``end - (end - start) * (1 - weight)`` (smaller rounding error
    when ``start`` contributes little). ``tmp`` is a work array like ``start``.
    """
    np.subtract(end, start, out=tmp)
    if abs(weight) < 0.5:
        tmp *= weight
        start += tmp
    else:
        tmp *= 1.0 - weight
        np.subtract(end, tmp, out=start)
    return start


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``step``/``zero_grad``/``state_dict``.

    Subclasses set ``defaults`` through ``__init__`` and implement:

    - ``_check_options(options, name) -> dict``: validate and normalise every
      option except ``lr`` (``name(key)`` gives the name to use in messages);
    - ``_update(p, grad, state, group)``: update ``p.data`` in place.

    and list their state entries in ``_state_arrays`` (arrays shaped like the
    parameter) and ``_state_counters`` (ints such as ``step``) so that
    ``load_state_dict`` can check what it is given.
    """

    _state_arrays: tuple[str, ...] = ()
    _state_counters: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict):
        self.defaults = self._checked(dict(defaults), lambda key: key)
        self.param_groups: list[dict] = []
        self.state: dict[Parameter, dict] = {}
        # Reusable work arrays, one set per parameter, so a step allocates
        # nothing once warmed up. Not state: never saved, rebuilt on demand.
        self._work: dict[tuple[Parameter, int], np.ndarray] = {}

        groups, as_dicts = self._as_group_list(params)
        for i, group in enumerate(groups):
            self._add_group(group, f"params[{i}]" if as_dicts else "params")

    # -- construction ------------------------------------------------------
    @staticmethod
    def _as_group_list(params) -> tuple[list, bool]:
        if isinstance(params, (Parameter, np.ndarray)):
            raise TypeError(
                f"params must be an iterable of Parameters or of dicts, got a single {type(params).__name__}; "
                "wrap it in a list: [p]"
            )
        if isinstance(params, Module):
            raise TypeError(f"params must be an iterable of Parameters, got the module {type(params).__name__}; "
                            "pass model.parameters()")
        if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"params must be an iterable of Parameters or of dicts, got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("params is empty; expected at least one Parameter (e.g. model.parameters())")
        if isinstance(groups[0], dict):
            for i, g in enumerate(groups):
                if not isinstance(g, dict):
                    raise TypeError(f"params[{i}] must be a dict like params[0], got {type(g).__name__}")
            return groups, True
        return [{"params": groups}], False

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (``{"params": [...], "lr": ...}``); options it omits take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict with a 'params' entry, got {type(param_group).__name__}")
        self._add_group(param_group, f"param_groups[{len(self.param_groups)}]")

    def _add_group(self, group: dict, where: str) -> None:
        if "params" not in group:
            raise ValueError(f"{where} must have a 'params' entry, got keys {sorted(group)}")
        unknown = [k for k in group if k != "params" and k not in self.defaults]
        if unknown:
            raise ValueError(
                f"{where} has unknown option(s) {unknown}; {type(self).__name__} options are: {', '.join(self.defaults)}"
            )
        params = group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (np.ndarray, str, bytes, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{where}['params'] must be an iterable of Parameters, got {type(params).__name__}")
        params = list(params)
        label = where if where == "params" else f"{where}['params']"
        if not params:
            raise ValueError(f"{label} is empty; expected at least one Parameter")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                hint = " (use model.parameters(), not named_parameters())" if isinstance(p, tuple) else ""
                raise TypeError(f"{label}[{i}] must be a strided.nn.Parameter, got {type(p).__name__}{hint}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(f"{label}[{i}] ({p!r}) appears more than once; each parameter may be in one group only")
            seen.add(id(p))
        options = {k: v for k, v in group.items() if k != "params"}
        merged = {**self.defaults, **options}
        name = (lambda key: f"{where}[{key!r}]") if where != "params" else (lambda key: key)
        self.param_groups.append({"params": params, **self._checked(merged, name)})

    def _checked(self, options: dict, name, *, loading: bool = False) -> dict:
        """Validate every option; ``lr`` is checked here, the rest by the subclass."""
        out = dict(options)
        if loading:
            # A schedule may legitimately have brought lr down to 0 before saving.
            lr = options["lr"]
            if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real) or not math.isfinite(lr):
                raise ValueError(f"{name('lr')} must be a finite number, got {lr!r}")
            out["lr"] = float(lr)
        else:
            out["lr"] = _checks.positive_float(name("lr"), options["lr"])
        out.update(self._check_options(options, name))
        return out

    def _check_options(self, options: dict, name) -> dict:
        raise NotImplementedError

    # -- running ---------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: ``grad = None`` (default), or fill it with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self, closure=None):
        """Update every trainable parameter that has a gradient, in place.

        ``closure``, if given, is called first (it should recompute the loss
        and the gradients) and its result is returned, as in torch; otherwise
        ``step`` returns None.
        """
        loss = None
        if closure is not None:
            if not callable(closure):
                raise TypeError(f"closure must be callable or None, got {type(closure).__name__}")
            loss = closure()
        todo = []
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is None or not p.requires_grad:
                    continue
                if p.grad.shape != p.data.shape:
                    raise ValueError(
                        f"param_groups[{gi}]['params'][{pi}].grad has shape {tuple(p.grad.shape)}, "
                        f"expected the parameter's shape {tuple(p.data.shape)}"
                    )
                todo.append((p, group))
        # Checked everything first so a bad gradient leaves all parameters untouched.
        for p, group in todo:
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {}
            self._update(p, p.grad, state, group)
        return loss

    def _update(self, p: Parameter, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    def _scratch(self, p: Parameter, i: int) -> np.ndarray:
        """Work array number ``i`` for ``p`` (shape and dtype of ``p.data``), reused across steps."""
        w = self._work.get((p, i))
        if w is None or w.shape != p.data.shape or w.dtype != p.data.dtype:
            w = self._work[(p, i)] = np.empty_like(p.data)
        return w

    def _direction(self, p: Parameter, grad: np.ndarray, weight_decay: float, maximize: bool) -> np.ndarray:
        """The gradient an update rule sees: ``grad`` (negated to maximize) plus ``weight_decay * p``.

        That is torch's coupled (L2) weight decay: the penalty ``wd/2 * |p|^2``
        added to the loss. ``grad`` itself is never modified (the caller may
        still need it); a work array is returned when anything changes.
        """
        if weight_decay != 0:
            g = np.multiply(p.data, weight_decay, out=self._scratch(p, 0))
            if maximize:
                g -= grad
            else:
                g += grad
            return g
        if maximize:
            return np.negative(grad, out=self._scratch(p, 0))
        return grad

    @staticmethod
    def _state_array(state: dict, key: str, p: Parameter, fill: float = 0.0) -> np.ndarray:
        """``state[key]``, created as an array like ``p.data`` filled with ``fill`` the first time it is needed."""
        a = state.get(key)
        if a is None:
            a = state[key] = np.full_like(p.data, fill)
        return a

    # -- saving and resuming ---------------------------------------------------
    def _indexed_params(self) -> list[Parameter]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """The optimizer's state as plain values (ints, floats, bools, tuples, NumPy arrays), all copies.

        ``{"state": {index: {name: value}}, "param_groups": [{option: value, "params": [index, ...]}]}``,
        indices being positions in the concatenated parameter lists of the groups.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[p] = len(index)
                packed["params"].append(index[p])
            groups.append(packed)
        state = {}
        for p, st in self.state.items():
            if p in index and st:
                state[index[p]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` returned, for an optimizer built over the same parameters.

        Saved parameter indices are matched to this optimizer's parameters by
        position, group by group (as torch does). State keys may be ints or
        their string form (what JSON makes of them); arrays are copied and cast
        to their parameter's dtype. Everything is checked before anything
        changes, so a failed load leaves the optimizer as it was.
        """
        if not hasattr(state_dict, "items") or "state" not in state_dict or "param_groups" not in state_dict:
            got = sorted(state_dict) if hasattr(state_dict, "keys") else type(state_dict).__name__
            raise ValueError(f"state_dict must be a mapping with 'state' and 'param_groups' entries, got {got}")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(self.param_groups):
            n = len(saved_groups) if isinstance(saved_groups, (list, tuple)) else type(saved_groups).__name__
            raise ValueError(
                f"state_dict['param_groups'] has {n} group(s), this {type(self).__name__} has {len(self.param_groups)}"
            )
        by_saved_id: dict[int, Parameter] = {}
        new_groups = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            where = f"state_dict['param_groups'][{gi}]"
            if not hasattr(saved, "items") or "params" not in saved:
                raise ValueError(f"{where} must be a dict with a 'params' entry, got {saved!r}")
            ids = list(saved["params"])
            if len(ids) != len(group["params"]):
                raise ValueError(
                    f"{where}['params'] lists {len(ids)} parameter(s), this optimizer's group {gi} has {len(group['params'])}"
                )
            missing = [k for k in self.defaults if k not in saved]
            if missing:
                raise ValueError(
                    f"{where} lacks option(s) {missing} of {type(self).__name__}: "
                    "was it saved from a different optimizer?"
                )
            options = {k: v for k, v in saved.items() if k != "params"}
            checked = self._checked({k: options[k] for k in self.defaults}, lambda key: f"{where}[{key!r}]",
                                    loading=True)
            # Keys that are not options (a scheduler's initial_lr, max_lr...) are restored as they were.
            extra = {k: copy.deepcopy(v) for k, v in options.items() if k not in self.defaults}
            new_groups.append({"params": group["params"], **checked, **extra})
            for sid, p in zip(ids, group["params"]):
                by_saved_id[_as_step_count(f"{where}['params'] entry", sid)] = p

        saved_state = state_dict["state"]
        if not hasattr(saved_state, "items"):
            raise ValueError(f"state_dict['state'] must be a mapping, got {type(saved_state).__name__}")
        new_state: dict[Parameter, dict] = {}
        allowed = self._state_arrays + self._state_counters
        for key, entry in saved_state.items():
            try:
                sid = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"state_dict['state'] key {key!r} is not a parameter index") from None
            where = f"state_dict['state'][{key!r}]"
            if sid not in by_saved_id:
                raise ValueError(f"{where}: no parameter with index {sid} in state_dict['param_groups']")
            if not hasattr(entry, "items"):
                raise ValueError(f"{where} must be a dict, got {type(entry).__name__}")
            p = by_saved_id[sid]
            restored = {}
            for name, value in entry.items():
                if name not in allowed:
                    raise ValueError(
                        f"{where} has unknown entry {name!r}; {type(self).__name__} keeps {', '.join(allowed)}"
                    )
                if name in self._state_counters:
                    restored[name] = _as_step_count(f"{where}[{name!r}]", value)
                    continue
                arr = np.asarray(value)
                if arr.shape != p.data.shape:
                    raise ValueError(
                        f"{where}[{name!r}] has shape {tuple(arr.shape)}, expected the parameter's shape {tuple(p.data.shape)}"
                    )
                if arr.dtype.kind not in "biuf":
                    raise TypeError(f"{where}[{name!r}] has dtype {arr.dtype}, expected a real number array")
                restored[name] = arr.astype(p.data.dtype, copy=True)
            new_state[p] = restored
        self.param_groups[:] = new_groups
        self.state = new_state

    # -- description -------------------------------------------------------------
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            n = sum(p.size for p in group["params"])
            lines.append(f"Parameter Group {i}  # {len(group['params'])} tensors, {n:,} values")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
