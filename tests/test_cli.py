"""The ``strided`` command line end to end, on a tiny dataset written in the real IDX format."""
import json
import subprocess
import sys

import numpy as np
import pytest

from strided import cli, io, runs

from _fake_datasets import fake_idx_dataset


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    fake_idx_dataset(root / "fashion-mnist", n_train=60, n_test=20)
    return root


def train(data_root, run_dir, *extra):
    return cli.main(["train", "--data-root", str(data_root), "--run-dir", str(run_dir), "--epochs", "2",
                     "--batch-size", "16", "--quiet", "--no-plots", *extra])


def test_train_writes_a_complete_run_and_evaluate_reads_it(data_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(data_root, run_dir) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    for name in ("config.json", "history.json", "metrics.json", "model.npz", "model_initial.npz", "checkpoint.npz"):
        assert (run_dir / name).exists(), name
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"] == "lenet5" and cfg["seed"] == 0 and cfg["image_shape"] == [1, 28, 28]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.array(metrics["confusion"]).sum() == 20
    model = io.load(run_dir / "model.npz")
    assert model.num_parameters() == 61706
    assert cli.main(["evaluate", str(run_dir), "--data-root", str(data_root)]) == 0
    assert f"accuracy {metrics['test_accuracy']:.4f}" in capsys.readouterr().out


def test_resume_extends_a_finished_run_exactly(data_root, tmp_path):
    # a schedule fixed by the total epochs (cosine) could not be extended; a constant rate can
    a, b = tmp_path / "a", tmp_path / "b"
    assert train(data_root, a, "--epochs", "3", "--scheduler", "none") == 0
    assert train(data_root, b, "--epochs", "2", "--scheduler", "none") == 0
    assert cli.main(["train", "--resume", str(b), "--epochs", "3", "--quiet", "--no-plots",
                     "--data-root", str(data_root)]) == 0
    wa, wb = io.load_state_dict(a / "model.npz"), io.load_state_dict(b / "model.npz")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_extending_a_finished_cosine_run_is_refused_with_what_to_do(data_root, tmp_path, capsys):
    run_dir = tmp_path / "cos"
    assert train(data_root, run_dir, "--epochs", "1", "--scheduler", "cosine") == 0
    before = (run_dir / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "2", "--quiet", "--no-plots",
                     "--data-root", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cosine" in err and "learning rate 0" in err and "--epochs 2" in err and "--scheduler step or none" in err
    assert (run_dir / "checkpoint.npz").read_bytes() == before


def test_train_keeps_the_best_model_and_a_csv_history(data_root, tmp_path):
    run_dir = tmp_path / "run"
    assert train(data_root, run_dir, "--epochs", "3", "--valid-fraction", "0.25") == 0
    history = json.loads((run_dir / "history.json").read_text())
    best_epoch = int(np.argmax(history["val_acc"])) + 1
    info = io.info(run_dir / "best.npz")
    assert info["metadata"]["epoch"] == best_epoch and info["metadata"]["val_acc"] == max(history["val_acc"])
    assert info["metadata"]["class_names"] == json.loads((run_dir / "config.json").read_text())["class_names"]
    assert io.load(run_dir / "best.npz").num_parameters() == 61706
    lines = (run_dir / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss") and len(lines) == 4
    no_valid = tmp_path / "no_valid"
    assert train(data_root, no_valid, "--epochs", "1", "--valid-fraction", "0") == 0
    assert not (no_valid / "best.npz").exists()


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_over_exactly(data_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train(data_root, run_dir) == 0
    finished = io.load_state_dict(run_dir / "model.npz")
    for name in ("checkpoint.npz", "history.json", "history.csv", "model.npz", "best.npz", "metrics.json"):
        (run_dir / name).unlink(missing_ok=True)  # what a stop during data loading leaves: config and initial model
    assert cli.main(["train", "--resume", str(run_dir), "--quiet", "--no-plots", "--data-root", str(data_root)]) == 0
    assert "no checkpoint yet: training from the start" in capsys.readouterr().out
    again = io.load_state_dict(run_dir / "model.npz")
    assert all(np.array_equal(finished[k], again[k]) for k in finished)


def test_two_class_subset(data_root, tmp_path, capsys):
    assert train(data_root, tmp_path / "r", "--model", "two_class_net", "--classes", "1,3", "--optimizer", "sgd",
                 "--lr", "0.01") == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["class_names"] == ["Trouser", "Dress"]


def test_missing_data_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STRIDED_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["train", "--dataset", "mnist", "--run-dir", str(tmp_path / "r"), "--quiet"]) == 2
    assert "download" in capsys.readouterr().err


def test_models_and_datasets_listings(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "61,706" in out and "fashion_cnn" in out
    assert cli.main(["datasets"]) == 0
    assert "fashion-mnist" in capsys.readouterr().out


def test_console_entry_point_runs_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "strided", "evaluate", str(tmp_path / "missing")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_run_settings_are_the_defaults_with_what_was_given():
    cfg = runs.config(model="two_class_net", epochs=3, lr=None)
    assert cfg == {**runs.DEFAULTS, "model": "two_class_net", "epochs": 3}
    with pytest.raises(TypeError, match=r"unknown run settings \['learning_rate'\]"):
        runs.config(learning_rate=0.1)
