"""Learning-rate schedulers with torch's semantics: call ``scheduler.step()`` after each epoch (or batch).

A scheduler rewrites ``optimizer.param_groups[i]["lr"]`` each time it steps.
Building one records each group's starting ``lr`` as ``initial_lr`` (the
schedule's ``base_lrs``) and sets ``last_epoch = 0``; every ``step()`` then
advances ``last_epoch`` by one and sets the learning rate for that epoch::

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(model, opt)   # calls opt.step() per batch
        sched.step()

``fit`` steps a scheduler at the interval it declares in its class attribute
``interval``: ``"batch"`` (``OneCycleLR``, ``LinearLR``, ``SequentialLR``:
after every optimizer step) or ``"epoch"`` (the others: after every epoch;
``ReduceLROnPlateau`` with the epoch's value of its ``monitor``). Setting
``sched.interval`` on an instance changes it for that scheduler only.

Like torch's, most schedules are *recursive*: the next learning rate is
computed from the current ``group["lr"]``, so they compose with other changes
made to it. ``state_dict()`` holds plain values only; to resume, build the
optimizer and the scheduler as before, then load the optimizer's state, then
the scheduler's.
"""
from __future__ import annotations

import bisect
import copy
import math
import numbers

import numpy as np

from .. import _checks
from .optimizer import Optimizer


def _epoch(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= -1, got {value!r}")
    if value < -1:
        raise ValueError(f"{name} must be an int >= -1 (-1 starts a new schedule), got {value!r}")
    return int(value)


class LRScheduler:
    """Base class. Subclasses implement ``get_lr()``: the learning rates for epoch ``last_epoch``.

    ``last_epoch=-1`` (default) starts a new schedule from the groups' current
    ``lr``; another value resumes one from groups that already hold ``initial_lr``.

    ``interval`` ("epoch" or "batch") is how often ``strided.train.fit`` calls
    ``step()``: after every epoch, or after every optimizer step. It is not
    part of ``state_dict()``.
    """

    interval: str = "epoch"

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a strided.optim.Optimizer, got {type(optimizer).__name__}")
        last_epoch = _epoch("last_epoch", last_epoch)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"last_epoch={last_epoch} resumes a schedule, but optimizer.param_groups[{i}] has no "
                        "'initial_lr'; load the optimizer's saved state first, or use last_epoch=-1"
                    )
        self.optimizer = optimizer
        self.base_lrs: list[float] = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial = False
        self._initial_step()

    def _initial_step(self) -> None:
        """The constructor's own step: recursive schedules keep the current rates in it (torch's ``_initial_step``)."""
        self._step_count = 0
        self._initial = True
        try:
            self.step()
        finally:
            self._initial = False

    def get_lr(self) -> list[float]:
        """Learning rates for epoch ``self.last_epoch``, one per parameter group."""
        raise NotImplementedError

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _closed_form_lr(self) -> list[float]:
        """Learning rates at ``last_epoch`` from ``base_lrs`` alone (torch's ``_get_closed_form_lr``); ``get_lr`` where
        a schedule has no closed form."""
        return self.get_lr()

    def _set_lrs(self, values) -> None:
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one epoch and write the new rates into the optimizer's groups (call after ``optimizer.step()``)."""
        self._step_count += 1
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def _restart(self) -> None:
        """Jump to epoch 0 by the closed form (how ``SequentialLR`` starts the next schedule at a milestone)."""
        self.last_epoch = 0
        self._set_lrs(self._closed_form_lr())

    def get_last_lr(self) -> list[float]:
        """The rates set by the last ``step()`` (a copy)."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer, as plain values (ints, floats, lists, strings)."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k not in ("optimizer", "_initial", "interval")}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` returned (from a scheduler of the same class and settings)."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        expected = set(self.state_dict())
        missing = sorted(expected - set(state_dict))
        unexpected = sorted(set(state_dict) - expected)
        if missing or unexpected:
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: missing {missing}, unexpected {unexpected}"
            )
        n = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr", "min_lrs"):
            if key in state_dict and len(state_dict[key]) != n:
                raise ValueError(f"state_dict[{key!r}] has {len(state_dict[key])} entries, the optimizer has {n} groups")
        _epoch("state_dict['last_epoch']", state_dict["last_epoch"])
        for key, value in state_dict.items():
            setattr(self, key, copy.deepcopy(value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={self._last_lr})"


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs: ``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = _checks.positive_int("step_size", step_size)
        self.gamma = _checks.positive_float("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each epoch listed in ``milestones`` (twice if listed twice)."""

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be a list of epoch numbers, got {milestones!r}")
        milestones = list(milestones)
        for m in milestones:
            if isinstance(m, (bool, np.bool_)) or not isinstance(m, numbers.Integral) or m < 0:
                raise ValueError(f"milestones must be non-negative ints, got {milestones!r}")
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = _checks.positive_float("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        hits = self.milestones.count(self.last_epoch)
        if not hits:
            return self._current_lrs()
        return [lr * self.gamma**hits for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        passed = bisect.bisect_right(self.milestones, self.last_epoch)
        return [base * self.gamma**passed for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch: ``lr = base_lr * gamma ** epoch``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = _checks.positive_float("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``base_lr`` down to ``eta_min`` over ``T_max`` epochs (SGDR without restarts).

    Closed form: ``lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``.
    As in torch it is computed recursively from the current rate,
    ``lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T)) / (1 + cos(pi (t-1) / T))``,
    so past ``T_max`` it climbs back up and the schedule repeats every ``2 * T_max``.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = _checks.positive_int("T_max", T_max)
        self.eta_min = _checks.positive_float("eta_min", eta_min, allow_zero=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._initial:
            return self._current_lrs()
        if (t - 1 - T) % (2 * T) == 0:
            # The ratio below would be 0/0 at the bottom of the curve: step up by the closed form instead.
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, self._current_lrs())]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta_min) + eta_min
                for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the rate by a factor going linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` steps.

    The usual warmup: ``LinearLR(opt, start_factor=0.1, total_iters=100)``
    starts at a tenth of the rate and reaches it after 100 steps, then keeps
    it. Closed form: ``lr_t = base_lr * (start + (end - start) * min(t, total_iters) / total_iters)``;
    as in torch it is applied recursively to the current rate. ``fit`` steps it
    after every batch (``interval = "batch"``).

    Args:
        optimizer: the optimizer whose rates it sets.
        start_factor: factor in (0, 1] at step 0 (default 1/3).
        end_factor: factor in [0, 1] from step ``total_iters`` on (default 1).
        total_iters: steps from start to end factor (default 5).
        last_epoch: -1 starts a new schedule.
    """

    interval = "batch"

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        start_factor = _checks.positive_float("start_factor", start_factor)
        if start_factor > 1.0:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor!r}")
        self.start_factor = start_factor
        self.end_factor = _checks.probability("end_factor", end_factor)
        self.total_iters = _checks.positive_int("total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, start, end = self.last_epoch, self.start_factor, self.end_factor
        if t == 0:
            return [lr * start for lr in self._current_lrs()]
        if self._initial or t > self.total_iters:
            return self._current_lrs()
        return [lr * (1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start)))
                for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        t = min(self.total_iters, self.last_epoch)
        return [base * (self.start_factor + (self.end_factor - self.start_factor) * t / self.total_iters)
                for base in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the step numbers in ``milestones``.

    ``SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=100), CosineAnnealingLR(opt, T_max=900)], [100])``
    warms up for 100 steps, then anneals over 900. At each milestone the next
    scheduler starts from its step 0 (closed form on its ``base_lrs``), as in
    torch. ``fit`` steps it after every batch (``interval = "batch"``; set
    ``sched.interval = "epoch"`` for milestones counted in epochs).

    Args:
        optimizer: the optimizer every one of ``schedulers`` was built on.
        schedulers: a non-empty list of schedulers (not ``ReduceLROnPlateau``).
        milestones: ``len(schedulers) - 1`` step numbers at which the next scheduler takes over.
        last_epoch: -1 starts a new schedule.
    """

    interval = "batch"

    def __init__(self, optimizer: Optimizer, schedulers, milestones, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a strided.optim.Optimizer, got {type(optimizer).__name__}")
        if not isinstance(schedulers, (list, tuple)) or not schedulers:
            raise ValueError(f"schedulers must be a non-empty list of schedulers, got {schedulers!r}")
        for i, sched in enumerate(schedulers):
            if isinstance(sched, ReduceLROnPlateau):
                raise ValueError(f"schedulers[{i}] is a ReduceLROnPlateau, which steps on a metric; "
                                 "SequentialLR cannot step it")
            if not isinstance(sched, LRScheduler):
                raise TypeError(f"schedulers[{i}] must be a strided.optim LRScheduler, got {type(sched).__name__}")
            if sched.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}] ({type(sched).__name__}) was built on another optimizer; "
                                 "every scheduler must belong to the optimizer given to SequentialLR")
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be a list of step numbers, got {milestones!r}")
        milestones = [_checks.positive_int(f"milestones[{i}]", m) for i, m in enumerate(milestones)]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"milestones must hold one step number fewer than schedulers ({len(schedulers) - 1}), "
                             f"got {len(milestones)}")
        self._schedulers = list(schedulers)
        self._milestones = milestones
        self.last_epoch = _epoch("last_epoch", last_epoch) + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for sched in self._schedulers:  # undo the step each scheduler took when it was built
            sched.last_epoch -= 1
        first = self._schedulers[bisect.bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        """Advance one step of the scheduler whose turn it is (its step 0 at a milestone)."""
        self.last_epoch += 1
        i = bisect.bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            sched._restart()
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()

    def state_dict(self) -> dict:
        """``last_epoch``, the milestones and every scheduler's own ``state_dict()``."""
        return {"last_epoch": self.last_epoch, "_milestones": list(self._milestones),
                "_last_lr": list(self._last_lr), "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` returned, each inner scheduler's state included."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        keys = set(self.state_dict())
        if set(state_dict) != keys:
            raise ValueError(f"state_dict does not match SequentialLR: expected keys {sorted(keys)}, "
                             f"got {sorted(state_dict)}")
        if len(state_dict["_schedulers"]) != len(self._schedulers):
            raise ValueError(f"state_dict holds {len(state_dict['_schedulers'])} schedulers, "
                             f"this SequentialLR has {len(self._schedulers)}")
        previous = [s.state_dict() for s in self._schedulers]
        try:
            for sched, state in zip(self._schedulers, state_dict["_schedulers"]):
                sched.load_state_dict(state)
        except (KeyError, TypeError, ValueError):
            for sched, state in zip(self._schedulers, previous):
                sched.load_state_dict(state)
            raise
        self.last_epoch = _epoch("state_dict['last_epoch']", state_dict["last_epoch"])
        self._milestones = list(state_dict["_milestones"])
        self._last_lr = list(state_dict["_last_lr"])


class ReduceLROnPlateau(LRScheduler):
    """Divide the rate by ``1 / factor`` when a monitored metric has stopped improving for ``patience`` epochs.

    ``step(metric)`` takes the epoch's value (``fit`` passes ``logs[monitor]``
    after every epoch: ``val_loss`` by default). A value is an improvement
    when it beats the best so far by ``threshold`` (relative: ``best * (1 -
    threshold)`` for mode "min", ``best * (1 + threshold)`` for "max";
    absolute: ``best -/+ threshold``). After more than ``patience`` epochs
    without one, every group's rate becomes ``max(lr * factor, min_lr)``
    (unless that changes it by less than ``eps``), then ``cooldown`` epochs
    pass before bad epochs count again. Exactly torch's rules.

    Args:
        optimizer: the optimizer whose rates it lowers.
        mode: "min" (a loss) or "max" (an accuracy).
        factor: in (0, 1), the multiplier (default 0.1).
        patience: epochs without improvement tolerated (default 10).
        threshold, threshold_mode: what counts as an improvement ("rel" or "abs").
        cooldown: epochs to wait after a reduction (default 0).
        min_lr: a lower bound, one number or one per group.
        eps: smallest change of rate that is applied.
        monitor: which of ``fit``'s per-epoch values it follows (``strided.train.HISTORY_KEYS``; not in torch).
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0,
                 eps: float = 1e-8, *, monitor: str = "val_loss"):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a strided.optim.Optimizer, got {type(optimizer).__name__}")
        factor = _checks.positive_float("factor", factor)
        if factor >= 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.factor = factor
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"min_lr has {len(min_lr)} values, expected one per parameter group ({n})")
            self.min_lrs = [_checks.positive_float(f"min_lr[{i}]", v, allow_zero=True) for i, v in enumerate(min_lr)]
        else:
            self.min_lrs = [_checks.positive_float("min_lr", min_lr, allow_zero=True)] * n
        if isinstance(patience, (bool, np.bool_)) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        if isinstance(cooldown, (bool, np.bool_)) or not isinstance(cooldown, numbers.Integral) or cooldown < 0:
            raise ValueError(f"cooldown must be an int >= 0, got {cooldown!r}")
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.eps = _checks.positive_float("eps", eps, allow_zero=True)
        self.mode = _checks.choice("mode", mode, ("min", "max"))
        self.threshold = _checks.positive_float("threshold", threshold, allow_zero=True)
        self.threshold_mode = _checks.choice("threshold_mode", threshold_mode, ("rel", "abs"))
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a per-epoch value such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self.best = math.inf if self.mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1.0 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bound
        bound = self.best * (self.threshold + 1.0) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bound

    def step(self, metrics) -> None:
        """Record one epoch's value of the monitored metric (a number) and lower the rates if it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = self._current_lrs()


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin): warm up to ``max_lr``, then anneal far below the start; step per batch.

    The rate goes from ``max_lr / div_factor`` up to ``max_lr`` over the first
    ``pct_start`` of ``total_steps`` (or ``epochs * steps_per_epoch``), then
    down to ``initial_lr / final_div_factor``, by cosine or linear annealing.
    With ``cycle_momentum`` the momentum (SGD/RMSprop ``momentum``, Adam's
    ``beta1``) moves the opposite way between ``max_momentum`` and
    ``base_momentum``. ``three_phase`` returns to the start rate before the
    final decay. Stepping past ``total_steps`` is an error. ``fit`` steps it
    after every batch (``interval = "batch"``).
    """

    interval = "batch"

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a strided.optim.Optimizer, got {type(optimizer).__name__}")
        if total_steps is not None:
            self.total_steps = _checks.positive_int("total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_checks.positive_int("epochs", epochs)
                                * _checks.positive_int("steps_per_epoch", steps_per_epoch))
        else:
            raise ValueError("OneCycleLR needs total_steps, or both epochs and steps_per_epoch; got none of them")
        pct_start = _checks.probability("pct_start", pct_start)
        self.anneal_strategy = _checks.choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
        if not isinstance(cycle_momentum, (bool, np.bool_)):
            raise TypeError(f"cycle_momentum must be True or False, got {cycle_momentum!r}")
        if not isinstance(three_phase, (bool, np.bool_)):
            raise TypeError(f"three_phase must be True or False, got {three_phase!r}")
        div_factor = _checks.positive_float("div_factor", div_factor)
        final_div_factor = _checks.positive_float("final_div_factor", final_div_factor)
        last_epoch = _epoch("last_epoch", last_epoch)
        n = len(optimizer.param_groups)
        max_lrs = self._per_group("max_lr", max_lr, n, _checks.positive_float)

        end1 = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._phases = [
                {"end_step": end1, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * self.total_steps) - 2, "start_lr": "max_lr", "end_lr": "initial_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"},
            ]
        else:
            self._phases = [
                {"end_step": end1, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": self.total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
            ]

        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = "betas" in optimizer.defaults
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and not self.use_beta1:
                raise ValueError(
                    f"cycle_momentum=True needs an optimizer with momentum or betas, got {type(optimizer).__name__}; "
                    "pass cycle_momentum=False"
                )
            max_ms = self._per_group("max_momentum", max_momentum, n, _checks.probability)
            base_ms = self._per_group("base_momentum", base_momentum, n, _checks.probability)
        if last_epoch == -1:
            for i, group in enumerate(optimizer.param_groups):
                group["initial_lr"] = max_lrs[i] / div_factor
                group["max_lr"] = max_lrs[i]
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if self.cycle_momentum:
                    if self.use_beta1:
                        group["betas"] = (max_ms[i], *group["betas"][1:])
                    else:
                        group["momentum"] = max_ms[i]
                    group["max_momentum"] = max_ms[i]
                    group["base_momentum"] = base_ms[i]
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _per_group(name: str, value, n: int, check) -> list[float]:
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(f"{name} has {len(value)} values, expected one per parameter group ({n})")
            return [check(f"{name}[{i}]", v) for i, v in enumerate(value)]
        return [check(name, value)] * n

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times, beyond total_steps={self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        m = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                        if self.use_beta1:
                            group["betas"] = (m, *group["betas"][1:])
                        else:
                            group["momentum"] = m
                    break
                start_step = end_step
        return lrs
