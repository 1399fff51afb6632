"""fit/evaluate: learning, determinism, exact resume, callbacks, divergence and interruption."""
import json

import numpy as np
import pytest

import strided
from strided import nn, optim
from strided.train import EarlyStopping, Trainer, TrainingDiverged, evaluate, fit


def quadrant_data(n=64, seed=0):
    """4 classes: which quadrant of an 8x8 image is bright. Separable, so a small CNN must reach 100%."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for k, (r, c) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        x[y == k, :, r:r + 4, c:c + 4] += 1.5
    return x, y


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
