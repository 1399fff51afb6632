"""The README's hand-written training loop runs as printed (on a small stand-in for Fashion-MNIST)."""
import re
from pathlib import Path

import numpy as np

import strided
from strided import data

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_training_loop_runs_and_learns(monkeypatch, capsys):
    code = re.search(r"## The training step, written by hand\n+```python\n(.*?)```", README.read_text(), re.S).group(1)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 600)
    images = rng.integers(0, 60, (600, 1, 28, 28)).astype(np.uint8)
    images[np.arange(600), 0, labels * 2 + 4, 4:24] = 255   # class k: a bright row at 2k+4
    small = data.DatasetSplits("fashion-mnist", tuple(map(str, range(10))),
                               data.ArrayDataset(images[:500], labels[:500]), data.ArrayDataset(images[500:], labels[500:]))
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: small)
    exec(compile(code, str(README), "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert float(lines[-1].rsplit(" ", 1)[1]) > 0.9
