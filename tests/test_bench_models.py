"""``strided bench models``: the twins agree with PyTorch, the benchmark runs and prints its table (no timings asserted)."""
import argparse

import numpy as np

import pytest

from strided import models
from strided.bench import models as bench
from strided.bench.torch_twin import check_agreement, model_pair


@pytest.mark.parametrize("name", ["fashion_cnn", "cifar_cnn", "resnet20", "fashion_resnet"])
def test_every_benchmarked_model_agrees_with_its_torch_twin(torch, name):
    model, tmodel = model_pair(torch, name, np.float64)
    shape = models.MODELS[name][1]
    errors = check_agreement(model, tmodel, torch, batch=4, dtype=np.float64, shape=shape)
    assert max(errors.values()) < 1e-10
    # the dropout layers are back in training mode after the check
    assert all(m.training for m in model.modules())
    first = next(p for p in model.parameters() if p.data.ndim == 4)
    first.data = first.data * 1.01
    with pytest.raises(AssertionError, match="disagree"):
        check_agreement(model, tmodel, torch, batch=4, dtype=np.float64, shape=shape)


def test_benchmark_prints_one_row_per_model_and_thread_count(torch, capsys):
    threads_before = torch.get_num_threads()
    assert bench.main(["--models", "lenet5:2,fashion_resnet:2", "--threads", "1,2", "--rounds", "1", "--no-memory",
                       "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "checked to agree" in out
    rows = [line for line in out.splitlines() if line.startswith("| lenet5") or line.startswith("| fashion_resnet")]
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] in ("1", "2")
        assert float(cells[3]) > 0 and float(cells[4]) > 0 and float(cells[6]) > 0
        assert cells[9] == "-"                              # --no-memory
    assert torch.get_num_threads() == threads_before        # the caller's setting is restored


def test_benchmark_runs_without_torch_and_measures_memory(capsys):
    assert bench.main(["--models", "lenet5:2", "--threads", "1", "--rounds", "1", "--no-torch"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("lenet5"))
    cells = line.split()
    assert cells[4:6] == ["-", "-"] and cells[-1] == "-"    # no PyTorch columns
    assert cells[-2] != "-"                                 # strided's memory was measured


@pytest.mark.parametrize("text", ["nope:4", "lenet5", "lenet5:0", "lenet5:x", ","])
def test_model_list_is_checked(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected|unknown"):
        bench.parse_models(text)


def test_model_list_parses():
    assert bench.parse_models("lenet5:64, resnet20:128") == [("lenet5", 64), ("resnet20", 128)]
