"""A first run with no surprises: every mistake is one ``error:`` line, and leaves no run directory.

Each case runs ``strided train`` in a fresh working directory (``tmp_path``) on
a tiny dataset in the real IDX format, without ``--run-dir``, so the default
run directory ``runs/<model>-<dataset>-<time>`` is the one that must not appear.
"""
import errno
import json
import os
import sys
import urllib.error
import urllib.request

import pytest

from strided import cli, io, progress, runs

from _fake_datasets import fake_idx_dataset


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path as the working directory, with a tiny Fashion-MNIST in tmp_path/data."""
    fake_idx_dataset(tmp_path / "data" / "fashion-mnist", n_train=60, n_test=20)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def strided(*argv) -> int:
    """``strided ARGV`` in this process: its exit status (argparse's exit included)."""
    try:
        return cli.main(list(argv))
    except SystemExit as exc:
        return exc.code


def train(*args):
    return strided("train", "--data-root", "data", "--epochs", "1", "--batch-size", "16", "--quiet",
                   "--no-plots", *args)


def one_error_line(capsys) -> str:
    """The single line of stderr, which must start with ``error:``; returns it."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def no_run_directory(workdir):
    runs_dir = workdir / "runs"
    return not runs_dir.exists() or not any(runs_dir.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size must be a positive int, got 0"),
    (["--batch-size", "-3"], "--batch-size must be a positive int, got -3"),
    (["--epochs", "0"], "--epochs must be a positive int, got 0"),
    (["--lr", "-0.1"], "--lr must be a finite number > 0"),
    (["--momentum", "-1"], "--momentum must be a finite number >= 0"),
    (["--step-size", "0", "--scheduler", "step"], "--step-size must be a positive int"),
    (["--seed", "-1"], "--seed must be a non-negative int"),
    (["--valid-fraction", "1"], "--valid-fraction must be in [0, 1)"),
    (["--patience", "-2"], "--patience must be a non-negative int"),
    (["--patience", "1", "--valid-fraction", "0"], "--patience 1 needs a validation split"),
    (["--classes", "1"], "--classes must name at least two distinct classes"),
    (["--classes", "3,3"], "--classes must name at least two distinct classes"),
    (["--model", "two_class_net", "--classes", "1,3,5"], "two_class_net needs exactly two classes"),
    (["--model", "two_class_net"], "two_class_net needs exactly two classes (e.g. --classes 1,3), got 10"),
    (["--algorithm", "fastest"], "unknown algorithm 'fastest'"),
    (["--algorithm", "winograd"], "--algorithm winograd: algorithm 'winograd' cannot run this convolution"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--scheduler", "warm"], "unknown scheduler 'warm'"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--learning-rate", "0.1"], "unrecognized arguments: --learning-rate"),
])
def test_a_bad_option_is_one_error_line_and_writes_nothing(workdir, capsys, args, message):
    assert train(*args) == 2
    assert message in one_error_line(capsys)
    assert no_run_directory(workdir)


def test_patience_without_a_validation_image_is_refused_before_writing(workdir, capsys):
    # 60 images x 0.001 leaves no validation image although the fraction is not 0
    assert train("--patience", "1", "--valid-fraction", "0.001") == 2
    assert "--patience needs a validation split" in one_error_line(capsys)
    assert no_run_directory(workdir)


def test_algorithm_scipy_without_scipy_names_the_missing_piece(workdir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.signal", None)   # what the optional-import helper sees without SciPy
    assert train("--algorithm", "scipy") == 2
    line = one_error_line(capsys)
    assert "--algorithm scipy" in line and "pip install" in line and "scipy" in line
    assert no_run_directory(workdir)


def test_the_default_run_directory_is_named_after_model_and_dataset(workdir, capsys):
    assert train() == 0
    (run,) = (workdir / "runs").iterdir()
    assert run.name.startswith("lenet5-fashion-mnist-")
    assert f"run directory runs/{run.name}" in capsys.readouterr().out
    assert train("--model", "fashion_cnn", "--epochs", "1") == 0
    assert sorted(p.name.rsplit("-", 2)[0] for p in (workdir / "runs").iterdir()) == [
        "fashion_cnn-fashion-mnist", "lenet5-fashion-mnist"]


def test_offline_download_is_one_error_line_naming_the_file(workdir, capsys, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(errno.EAI_AGAIN if hasattr(errno, "EAI_AGAIN") else -3,
                                            "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("STRIDED_DATA", str(workdir / "cache"))
    monkeypatch.setenv("HOME", str(workdir))
    assert strided("train", "--dataset", "mnist", "--download", "--quiet", "--no-plots") == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "could not download train-images-idx3-ubyte.gz" in errors[0]
    assert "Temporary failure in name resolution" in errors[0]
    assert no_run_directory(workdir)


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "No space left on device"),
                                          (errno.EROFS, "Read-only file system")])
def test_a_file_that_cannot_be_written_is_one_error_line_naming_it(workdir, capsys, monkeypatch, code, reason):
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("config.json"):
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    assert train() == 2
    line = one_error_line(capsys)
    assert line.endswith(f"config.json: {reason}") and "runs/lenet5-fashion-mnist-" in line
    assert no_run_directory(workdir)


def test_a_run_directory_where_no_file_can_be_created_is_one_error_line(workdir, capsys, monkeypatch):
    real_open = os.open

    def refused(path, flags, *args, **kwargs):
        if os.path.basename(str(path)).startswith(".config.json.tmp-"):   # a read-only directory, for atomic_write
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    assert train("--run-dir", "r") == 2
    assert one_error_line(capsys) == f"error: {os.path.join('r', 'config.json')}: {os.strerror(errno.EACCES)}"
    assert not (workdir / "r").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user that permissions apply to")
def test_a_read_only_run_directory_is_one_error_line(workdir, capsys):
    parent = workdir / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        assert train("--run-dir", str(parent / "run")) == 2
    finally:
        parent.chmod(0o700)
    assert str(parent / "run") in one_error_line(capsys)
    assert not (parent / "run").exists()


def test_a_corrupt_config_on_resume_is_one_error_line_naming_the_file(workdir, capsys):
    assert train("--run-dir", "r") == 0
    capsys.readouterr()
    (workdir / "r" / "config.json").write_text('{"model": "lenet5", "epo')
    assert strided("train", "--resume", "r", "--data-root", "data", "--quiet", "--no-plots") == 2
    assert "r/config.json is not valid JSON" in one_error_line(capsys)
    (workdir / "r" / "config.json").write_text(json.dumps({"model": "lenet5"}))
    assert strided("train", "--resume", "r", "--data-root", "data", "--quiet", "--no-plots") == 2
    assert "r/config.json is not a run's configuration: it lacks dataset" in one_error_line(capsys)


def test_resume_checks_the_new_epochs(workdir, capsys):
    assert train("--run-dir", "r") == 0
    capsys.readouterr()
    before = {p.name: p.stat().st_mtime_ns for p in (workdir / "r").iterdir()}
    assert strided("train", "--resume", "r", "--epochs", "0", "--data-root", "data", "--quiet") == 2
    assert "--epochs must be a positive int, got 0" in one_error_line(capsys)
    assert {p.name: p.stat().st_mtime_ns for p in (workdir / "r").iterdir()} == before


def test_validate_refuses_what_the_command_line_refuses():
    runs.validate(runs.config())
    with pytest.raises(ValueError, match="--batch-size must be a positive int, got 0"):
        runs.validate(runs.config(batch_size=0))
    with pytest.raises(TypeError, match="--epochs must be a positive int, got 2.5"):
        runs.validate(runs.config(epochs=2.5))


# ----------------------------------------------------------------------------- progress
class _Terminal:
    """A stream that says it is a terminal, collecting what is written."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_without_tqdm_the_bar_is_replaced_by_one_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(progress, "_hint_given", False)
    stream = _Terminal()
    for epoch in range(3):
        bar = progress.EpochProgress(100, f"epoch {epoch + 1}/3", stream=stream)
        bar.update(100, loss=0.5)
        bar.close()
    assert stream.text.count("pip install strided[progress]") == 1
    assert stream.text.startswith("no progress bar: a progress bar needs tqdm")


def test_the_bar_is_drawn_on_a_terminal_and_in_a_notebook_only(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(progress, "_hint_given", False)
    terminal = _Terminal()
    bar = progress.EpochProgress(100, "epoch 1/1", stream=terminal)
    bar.update(50, loss=0.25)
    bar.close()
    assert "epoch 1/1" in terminal.text and "img" in terminal.text

    class Log(_Terminal):
        def isatty(self):
            return False

    log = Log()
    progress.EpochProgress(100, "epoch 1/1", stream=log).close()
    assert log.text == ""                       # a CI log or a file: no bar
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    bar = progress.EpochProgress(100, "epoch 1/1", stream=log)
    bar.update(10)
    bar.close()
    assert "epoch 1/1" in log.text              # a notebook: stderr is no terminal, the bar is drawn


def test_fit_prints_epoch_lines_without_tqdm(monkeypatch, workdir, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert cli.main(["train", "--data-root", "data", "--epochs", "2", "--batch-size", "16", "--no-plots",
                     "--run-dir", "r"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out
    assert io.load(workdir / "r" / "model.npz").num_parameters() == 61706
