"""A small fit into a run directory, run as a child process that tests/test_train.py stops at a random moment.

``python tests/_interrupted_fit.py RUN_DIR SECONDS_PER_BATCH`` trains from
scratch, sleeping after every batch so that a signal sent at a random time
lands anywhere in the run; the test then resumes it in-process with
:func:`train` and compares with an uninterrupted run. Everything that makes
resumption hard is in it: dropout, random augmentation, a per-batch
schedule (OneCycleLR), early stopping and a best-model checkpoint.
"""
import sys
import time

import numpy as np

import strided
from strided import nn, optim
from strided.train import Callback, EarlyStopping, ModelCheckpoint, fit

EPOCHS, BATCH, N = 4, 16, 48


def quadrant_data(n=64, seed=0, noise=0.3, bright=1.5):
    """4 classes: which quadrant of an 8x8 image is bright (by ``bright`` over Gaussian ``noise``).

    Returns images (n, 1, 8, 8) float32 and labels (n,) int64. With the
    defaults the classes are separable, so a small CNN must reach 100%.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, noise, (n, 1, 8, 8)).astype(np.float32)
    for k, (r, c) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        x[y == k, :, r:r + 4, c:c + 4] += bright
    return x, y


class Slow(Callback):
    def __init__(self, seconds):
        self.seconds = seconds

    def on_batch_end(self, trainer, step, logs):
        time.sleep(self.seconds)


def augment(xb, rng):
    return xb + rng.normal(0, 0.05, xb.shape).astype(xb.dtype)


def train(run_dir, resume=None, seconds_per_batch=0.0):
    """Build and fit the model (seeded), into ``run_dir``; returns (model, history)."""
    strided.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Dropout(0.3), nn.Linear(64, 4))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=0.2, epochs=EPOCHS, steps_per_epoch=-(-N // BATCH))
    callbacks = [ModelCheckpoint("val_loss", mode="min"), EarlyStopping("val_acc", patience=3)]
    if seconds_per_batch:
        callbacks.append(Slow(seconds_per_batch))
    history = fit(model, nn.CrossEntropyLoss(), opt, quadrant_data(N, 0, noise=0.8, bright=0.5),
                  quadrant_data(32, 1, noise=0.8, bright=0.5), epochs=EPOCHS,
                  batch_size=BATCH, scheduler=sched, callbacks=callbacks, seed=5, augment=augment,
                  run_dir=run_dir, resume=resume, progress=False)
    return model, history


if __name__ == "__main__":
    train(sys.argv[1], seconds_per_batch=float(sys.argv[2]))
