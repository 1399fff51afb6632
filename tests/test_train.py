"""fit/evaluate: learning, determinism, exact resume, callbacks, divergence and interruption."""
import json

import numpy as np
import pytest

import strided
from strided import nn, optim
from strided.train import (HISTORY_KEYS, Callback, EarlyStopping, ModelCheckpoint, Trainer, TrainingDiverged,
                           evaluate, fit)

import _interrupted_fit as worker
from _interrupted_fit import quadrant_data


def small_net(dropout=0.0):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Dropout(dropout), nn.Linear(64, 4))


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def quiet(*_):
    pass


def test_fit_learns_tiny_dataset_to_full_train_accuracy():
    strided.manual_seed(0)
    x, y = quadrant_data()
    model = small_net()
    hist = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01), (x, y), (x, y),
               epochs=15, batch_size=16, progress=False, log=quiet)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert evaluate(model, (x, y))["accuracy"] == 1.0
    assert len(hist["epoch"]) == 15 and hist["val_acc"][-1] == 1.0


def test_evaluate_confusion_matrix_matches_predictions():
    strided.manual_seed(1)
    x, y = quadrant_data(40, seed=3)
    model = small_net()
    res = evaluate(model, (x, y), batch_size=7, num_classes=4)
    model.eval()
    pred = model(x).argmax(1)
    expected = np.zeros((4, 4), int)
    for t, p in zip(y, pred):
        expected[t, p] += 1
    assert res["confusion"] == expected.tolist()
    assert res["accuracy"] == pytest.approx((pred == y).mean())
    assert model.training is False  # evaluate restores the mode it found


def run(epochs, run_dir=None, resume=None, seed=3, interrupt_at=None):
    strided.manual_seed(seed)
    x, y = quadrant_data(48)
    model = small_net(dropout=0.3)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    calls = {"n": 0}

    def augment(xb, rng):
        calls["n"] += 1
        if interrupt_at is not None and calls["n"] == interrupt_at:
            raise KeyboardInterrupt
        return xb + rng.normal(0, 0.05, xb.shape).astype(xb.dtype)

    fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=epochs, batch_size=16, scheduler=sched, seed=seed,
        augment=augment, run_dir=run_dir, resume=resume, progress=False, log=quiet)
    return model


def test_same_seed_gives_bit_identical_weights():
    a, b = weights(run(2)), weights(run(2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = weights(run(2, seed=4))
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_resume_after_interrupt_is_bit_exact(tmp_path):
    full = weights(run(4))
    # 3 batches per epoch: interrupt in the middle of epoch 3
    with pytest.raises(KeyboardInterrupt):
        run(4, run_dir=tmp_path, interrupt_at=8)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["epoch"] == [1, 2]
    resumed = weights(run(4, resume=tmp_path, seed=99))  # the checkpoint, not the new seed, decides
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_divergence_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path):
    strided.manual_seed(0)
    x, y = quadrant_data(32)
    model = small_net()
    calls = {"n": 0}
    saved = {}

    def poison(xb, rng):
        # 4 batches per epoch: the 2nd batch of epoch 2 turns into NaN
        calls["n"] += 1
        if calls["n"] == 5:
            saved["checkpoint"] = (tmp_path / "checkpoint.npz").read_bytes()
        return xb * np.nan if calls["n"] == 6 else xb

    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 2\b"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), (x, y), epochs=3, batch_size=8,
            augment=poison, run_dir=tmp_path, progress=False, log=quiet)
    assert (tmp_path / "checkpoint.npz").read_bytes() == saved["checkpoint"]
    assert json.loads((tmp_path / "history.json").read_text())["epoch"] == [1]


class FakeTrainer(Trainer):
    def __init__(self, model):
        super().__init__(model, None, None, None, None, quiet)


def test_early_stopping_stops_and_restores_best_weights():
    model = small_net()
    t = FakeTrainer(model)
    cb = EarlyStopping("val_loss", patience=2)
    best = weights(model)
    cb.on_epoch_end(t, {"epoch": 1, "val_loss": 1.0})
    for p in model.parameters():
        p.data += 1
    cb.on_epoch_end(t, {"epoch": 2, "val_loss": 1.5})
    assert not t.stop
    cb.on_epoch_end(t, {"epoch": 3, "val_loss": 1.2})
    assert t.stop
    cb.on_train_end(t)
    now = weights(model)
    assert all(np.array_equal(best[k], now[k]) for k in best)


def test_early_stopping_on_accuracy_maximises():
    t = FakeTrainer(small_net())
    cb = EarlyStopping("val_acc", patience=1)
    cb.on_epoch_end(t, {"epoch": 1, "val_acc": 0.5})
    cb.on_epoch_end(t, {"epoch": 2, "val_acc": 0.6})
    assert not t.stop and cb.best == 0.6
    cb.on_epoch_end(t, {"epoch": 3, "val_acc": 0.55})
    assert t.stop


def test_early_stopping_without_validation_says_what_is_missing():
    t = FakeTrainer(small_net())
    with pytest.raises(ValueError, match="val_loss"):
        EarlyStopping("val_loss").on_epoch_end(t, {"epoch": 1, "val_loss": None, "train_loss": 1.0})


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": -1}, "batch_size"),
    ({"train": (np.zeros((4, 1, 8, 8), np.float32), np.zeros(3, int))}, r"labels must have shape \(4,\)"),
    ({"train": (np.zeros((4, 1, 8, 8), np.float32), np.zeros(4))}, "integers"),
    ({"train": "data"}, "pair"),
    ({"train": (np.full((4, 1, 8, 8), np.nan, np.float32), np.zeros(4, int))}, "train images contain 256 NaN"),
])
def test_fit_rejects_bad_arguments(kwargs, match):
    model = small_net()
    args = dict(train=quadrant_data(8), epochs=1, batch_size=4)
    args.update(kwargs)
    train = args.pop("train")
    with pytest.raises((ValueError, TypeError), match=match):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), train, progress=False, log=quiet,
            **args)


def test_binary_losses_get_column_targets_and_thresholded_accuracy():
    strided.manual_seed(0)
    x, y = quadrant_data(64)
    y = (y >= 2).astype(np.int64)  # bright quadrant in the bottom half
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Sigmoid())
    fit(model, nn.BCELoss(), optim.SGD(model.parameters(), lr=0.5), (x, y), epochs=20, batch_size=16,
        progress=False, log=quiet)
    assert evaluate(model, (x, y), nn.BCELoss())["accuracy"] == 1.0


def test_fit_draws_curves_and_filters_into_the_run_directory(tmp_path):
    pytest.importorskip("matplotlib")
    from strided.viz import FigureCallback
    strided.manual_seed(0)
    x, y = quadrant_data(32)
    model = small_net()
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=2, batch_size=16,
        run_dir=tmp_path, callbacks=[FigureCallback()], progress=False, log=quiet)
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "filters.png").stat().st_size > 0
    dense = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    msgs = []
    fit(dense, nn.CrossEntropyLoss(), optim.SGD(dense.parameters(), lr=0.1), (x, y), epochs=1, batch_size=16,
        run_dir=tmp_path / "dense", callbacks=[FigureCallback()], progress=False, log=msgs.append)
    assert (tmp_path / "dense" / "curves.png").exists() and not (tmp_path / "dense" / "filters.png").exists()
    assert any("no Conv2d" in m for m in msgs)


# ----------------------------------------------------------------------------- schedules inside fit
class Recorder(Callback):
    """Records every batch hook call and the learning rate each optimizer step used."""

    def __init__(self):
        self.begins, self.ends, self.lrs, self.logs, self.global_steps = [], [], [], [], []

    def on_batch_begin(self, trainer, step):
        self.begins.append((trainer.epoch + 1, step))

    def on_batch_end(self, trainer, step, logs):
        self.ends.append((trainer.epoch + 1, step))
        self.lrs.append(logs["lr"])
        self.logs.append(dict(logs))
        self.global_steps.append(trainer.global_step)


def _torch_lrs(torch, make, steps, lr=0.05, metrics=None):
    """The rate each of ``steps`` optimizer steps uses under torch's scheduler ``make(opt)``."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    sched = make(opt)
    out = []
    for i in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[i])
    return out, opt.param_groups[0]["lr"]


def _fit_with(scheduler_for, n=80, epochs=2, valid=None, **kwargs):
    strided.manual_seed(0)
    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rec = Recorder()
    hist = fit(model, nn.CrossEntropyLoss(), opt, quadrant_data(n), valid, epochs=epochs, batch_size=16,
               scheduler=scheduler_for(opt), callbacks=[rec], progress=False, log=quiet, **kwargs)
    return rec, hist, opt


@pytest.mark.torch
def test_one_cycle_is_stepped_per_batch_in_fit_reaches_max_lr_and_matches_torch(torch):
    # 2 epochs of 5 batches; pct_start 0.3 puts the peak on step 2 exactly
    rec, _, _ = _fit_with(lambda o: optim.OneCycleLR(o, max_lr=0.4, epochs=2, steps_per_epoch=5))
    expected, _ = _torch_lrs(torch, lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.4, epochs=2, steps_per_epoch=5), 10)
    np.testing.assert_allclose(rec.lrs, expected, rtol=1e-13)
    assert max(rec.lrs) == pytest.approx(0.4, rel=1e-14)


@pytest.mark.torch
@pytest.mark.parametrize("which", ["LinearLR", "SequentialLR"])
def test_warmup_schedules_are_stepped_per_batch_in_fit_like_torch(torch, which):
    def make(lib):
        def build(o):
            warm = lib.LinearLR(o, start_factor=0.2, total_iters=4)
            if which == "LinearLR":
                return warm
            return lib.SequentialLR(o, [warm, lib.CosineAnnealingLR(o, T_max=11)], milestones=[4])
        return build

    rec, _, _ = _fit_with(make(optim.lr_scheduler), epochs=3)
    expected, _ = _torch_lrs(torch, make(torch.optim.lr_scheduler), 15)
    np.testing.assert_allclose(rec.lrs, expected, rtol=1e-13)


@pytest.mark.torch
def test_reduce_lr_on_plateau_steps_per_epoch_on_val_loss_like_torch(torch):
    x, y = quadrant_data(32, seed=9)
    y = np.random.default_rng(1).permutation(y)  # labels unrelated to the images: val_loss soon stops improving
    rec, hist, opt = _fit_with(lambda o: optim.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.01),
                               n=32, epochs=8, valid=(x, y))
    expected, last = _torch_lrs(torch, lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
        o, factor=0.5, patience=1, threshold=0.01), 8, metrics=hist["val_loss"])
    assert hist["lr"] == expected and opt.param_groups[0]["lr"] == last
    assert last < 0.05  # it did reduce
    assert rec.lrs[::2] == hist["lr"]  # constant within an epoch


def test_per_epoch_scheduler_is_stepped_once_per_epoch_and_its_interval_can_be_changed():
    rec, hist, _ = _fit_with(lambda o: optim.StepLR(o, step_size=1, gamma=0.5), epochs=3)
    assert hist["lr"] == pytest.approx([0.05, 0.025, 0.0125], rel=1e-15)

    def per_batch(o):
        sched = optim.StepLR(o, step_size=1, gamma=0.5)
        sched.interval = "batch"
        return sched
    rec, _, _ = _fit_with(per_batch, epochs=1)
    assert rec.lrs == pytest.approx([0.05 * 0.5**k for k in range(5)], rel=1e-15)


def test_batch_callbacks_see_every_step_in_order():
    rec, _, _ = _fit_with(lambda o: None, n=40, epochs=2)  # 3 batches per epoch: 16, 16, 8
    assert rec.begins == rec.ends == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert rec.global_steps == [1, 2, 3, 4, 5, 6]
    assert [lg["batch_size"] for lg in rec.logs] == [16, 16, 8] * 2
    assert all(np.isfinite(lg["loss"]) and lg["grad_norm"] is None for lg in rec.logs)


def test_clip_grad_norm_in_fit_bounds_every_step():
    class GradNorms(Callback):
        def __init__(self):
            self.after, self.before = [], []

        def on_batch_end(self, trainer, step, logs):  # the gradients are still there after the step
            self.before.append(logs["grad_norm"])
            self.after.append(np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                                          for p in trainer.model.parameters())))

    strided.manual_seed(0)
    model = small_net()
    norms = GradNorms()
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.05), quadrant_data(48), epochs=2,
        batch_size=16, clip_grad_norm=0.05, callbacks=[norms], progress=False, log=quiet)
    assert len(norms.after) == 6 and all(b > 0.05 for b in norms.before)
    np.testing.assert_allclose(norms.after, 0.05, rtol=1e-5)


# ----------------------------------------------------------------------------- best model and history files
def test_model_checkpoint_keeps_the_best_epoch(tmp_path):
    class Snapshots(Callback):
        def __init__(self):
            self.weights = {}

        def on_epoch_end(self, trainer, logs):
            self.weights[logs["epoch"]] = weights(trainer.model)

    strided.manual_seed(0)
    x, y = quadrant_data(48)
    model = small_net()
    snaps = Snapshots()
    # a large rate makes val_loss go up and down, so the best epoch is not simply the last
    hist = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.8, momentum=0.9), (x, y),
               quadrant_data(32, seed=5), epochs=6, batch_size=16, run_dir=tmp_path, progress=False, log=quiet,
               callbacks=[snaps, ModelCheckpoint("val_loss", mode="min", input_shape=(1, 8, 8),
                                                 metadata={"note": "kept"})])
    best_epoch = int(np.argmin(hist["val_loss"])) + 1
    assert best_epoch != len(hist["epoch"]), "the run must not be monotone for this test to mean anything"
    best = strided.load(tmp_path / "best.npz")
    expected = snaps.weights[best_epoch]
    assert all(np.array_equal(v, expected[k]) for k, v in best.state_dict().items())
    info = strided.io.info(tmp_path / "best.npz")
    assert info["metadata"] == {"note": "kept", "epoch": best_epoch, "val_loss": min(hist["val_loss"])}
    assert info["input_shape"] == [1, 8, 8]


def test_history_csv_holds_the_history_json(tmp_path):
    import csv
    strided.manual_seed(0)
    model = small_net()
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), quadrant_data(32), epochs=3,
        batch_size=16, run_dir=tmp_path, progress=False, log=quiet)
    hist = json.loads((tmp_path / "history.json").read_text())
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(HISTORY_KEYS) and len(rows) == 3
    for key in HISTORY_KEYS:
        column = [None if r[key] == "" else float(r[key]) for r in rows]
        assert column == hist[key], key  # exact: every float written in full


@pytest.mark.parametrize("kwargs,match", [
    (dict(callbacks=[ModelCheckpoint("train_loss", "min")], run_dir=None), r"ModelCheckpoint keeps best.npz in the run"),
    (dict(callbacks=[EarlyStopping("val_loss")]), r"EarlyStopping monitors 'val_loss'.*no validation data.*train_loss"),
    (dict(scheduler=lambda o: optim.ReduceLROnPlateau(o)), r"ReduceLROnPlateau monitors 'val_loss'"),
    (dict(scheduler=lambda o: optim.OneCycleLR(o, max_lr=0.1, total_steps=5)),
     r"OneCycleLR\(total_steps=5\) has 5 steps left, but this fit takes 6.*epochs=2, steps_per_epoch=3"),
    (dict(clip_grad_norm=0.0), "clip_grad_norm"),
    (dict(callbacks=[print]), r"callbacks\[0\] must be a strided.train.Callback"),
])
def test_fit_refuses_before_training_and_writes_nothing(tmp_path, kwargs, match):
    model = small_net()
    before = weights(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if callable(kwargs.get("scheduler")):
        kwargs["scheduler"] = kwargs["scheduler"](opt)
    kwargs.setdefault("run_dir", tmp_path / "run")
    with pytest.raises((ValueError, TypeError), match=match):
        fit(model, nn.CrossEntropyLoss(), opt, quadrant_data(40), epochs=2, batch_size=16, progress=False,
            log=quiet, **kwargs)
    assert not (tmp_path / "run").exists()
    assert all(np.array_equal(v, before[k]) for k, v in weights(model).items())


# ----------------------------------------------------------------------------- interruptions
def test_ctrl_c_in_epoch_1_keeps_the_initial_checkpoint_and_resumes_exactly(tmp_path, capsys):
    full = weights(run(4))
    with pytest.raises(KeyboardInterrupt):
        run(4, run_dir=tmp_path, interrupt_at=2)  # the 2nd batch of epoch 1: weights are half trained
    ck = strided.io.load_checkpoint(tmp_path / "checkpoint.npz")
    assert ck["epoch"] == 0 and json.loads((tmp_path / "history.json").read_text())["epoch"] == []
    strided.manual_seed(3)
    initial = small_net(dropout=0.3)
    assert all(np.array_equal(v, ck["model"].state_dict()[k]) for k, v in initial.state_dict().items())
    resumed = weights(run(4, resume=tmp_path, seed=99))
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_interrupt_message_says_where_resume_restarts(tmp_path):
    msgs = []
    strided.manual_seed(0)
    model = small_net()
    calls = {"n": 0}

    def stop_in_epoch_2(xb, rng):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return xb

    with pytest.raises(KeyboardInterrupt):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), quadrant_data(48), epochs=3,
            batch_size=16, augment=stop_in_epoch_2, run_dir=tmp_path, progress=False, log=msgs.append)
    assert "interrupted during epoch 2" in msgs[-1] and "checkpoint after epoch 1" in msgs[-1]
    assert "resuming restarts epoch 2" in msgs[-1]


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_resume_after_a_kill_at_a_random_moment_is_bit_exact(tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path


    root = Path(__file__).resolve().parent.parent
    expected, expected_history = worker.train(tmp_path / "uninterrupted")
    rng = np.random.default_rng()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    for attempt in range(5):
        run_dir = tmp_path / f"killed{attempt}"
        seconds_per_batch = 0.05  # 12 batches: about 0.6 s of training
        delay = float(rng.uniform(0.0, 12 * seconds_per_batch))
        child = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_interrupted_fit.py"), str(run_dir),
                                  str(seconds_per_batch)], env=env, cwd=root, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (run_dir / "checkpoint.npz").exists() and child.poll() is None:
                assert time.monotonic() < deadline, "the child never wrote its initial checkpoint"
                time.sleep(0.005)
            time.sleep(delay)
            child.send_signal(getattr(signal, sig))
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        if child.returncode != 0:
            break  # stopped before the end, as wanted; a child that finished first gets another try
    assert child.returncode != 0, f"the child always finished before the {sig} (last delay {delay:.3f}s)"
    if sig == "SIGKILL":
        assert child.returncode == -signal.SIGKILL
    stopped_after = strided.io.load_checkpoint(run_dir / "checkpoint.npz")["epoch"]
    model, history = worker.train(run_dir, resume=run_dir)
    where = f"{sig} after {delay:.3f}s, checkpoint after epoch {stopped_after}"
    assert all(np.array_equal(v, expected.state_dict()[k]) for k, v in model.state_dict().items()), where
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert history[key] == expected_history[key], (key, where)
    assert (run_dir / "best.npz").read_bytes() == (tmp_path / "uninterrupted" / "best.npz").read_bytes(), where
