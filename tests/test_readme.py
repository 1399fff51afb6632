"""The README stays runnable as written.

Every ```python block runs (in a fresh namespace, in a scratch directory;
the training loop on a small stand-in for Fashion-MNIST). Every command the
README shows, in shell blocks, in the command-line synopsis and in inline
code, is checked: ``strided ...`` commands parse with the real parser (and
``train`` settings pass ``runs.validate``), the cheap listings run, scripts and
files exist and parse, and every ``strided[extra]`` is an extra of pyproject.toml.
"""
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

import strided
from strided import cli, data, runs

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(TEXT) if lang == language]


def small_fashion_mnist():
    """500 training and 100 test images whose class is a bright row at 2k+4: learnable in a few steps."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 600)
    images = rng.integers(0, 60, (600, 1, 28, 28)).astype(np.uint8)
    images[np.arange(600), 0, labels * 2 + 4, 4:24] = 255
    return data.DatasetSplits("fashion-mnist", tuple(map(str, range(10))),
                              data.ArrayDataset(images[:500], labels[:500]), data.ArrayDataset(images[500:], labels[500:]))


def run_block(code: str, name: str) -> None:
    try:
        exec(compile(code, f"{README}:{name}", "exec"), {"__name__": "__readme__"})
    except ImportError as exc:       # an optional dependency (the message says how to install it)
        if "pip install" not in str(exc):
            raise
        pytest.skip(str(exc))


# ----------------------------------------------------------------------------- python blocks
def test_readme_training_loop_runs_and_prints_a_running_mean_loss(monkeypatch, capsys):
    code = re.search(r"## The training step, written by hand\n+```python\n(.*?)```", TEXT, re.S).group(1)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: small_fashion_mnist())
    run_block(code, "the training step")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"epoch {i + 1}: mean loss ") for i, line in enumerate(lines))
    losses = [float(re.search(r"mean loss ([\d.]+)", line).group(1)) for line in lines]
    assert losses[2] < losses[0]                       # the mean over an epoch, falling as it learns
    assert float(lines[-1].rsplit(" ", 1)[1]) > 0.9


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_every_python_block_runs_as_written(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                        # files a block writes land here
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: small_fashion_mnist())
    strided.manual_seed(0)
    run_block(blocks("python")[index], f"python block {index + 1}")


# ----------------------------------------------------------------------------- commands
# the placeholders the README writes for a value, and a sample value for each
SAMPLES = {"RUN_DIR": "runs/x", "DIR": "runs/x", "NAME": "mnist", "M": "lenet5", "D": "fashion-mnist", "N": "2",
           "B": "16", "LR": "0.1", "S": "0", "K": "3", "FILES": "image.png"}


def placeholders_filled(words: list[str]) -> list[str]:
    """RUN_DIR, NAME, M, ... (upper-case placeholders) as sample values."""
    pattern = re.compile(r"\b(" + "|".join(SAMPLES) + r")\b")
    return [pattern.sub(lambda m: SAMPLES[m.group(1)], w) for w in words]


def alternatives(words: list[str]) -> list[list[str]]:
    """``reproduce two-class|lenet5-epoch``, ``--optimizer sgd|adam``: one command per combination."""
    expanded = [[]]
    for w in words:
        expanded = [e + [o] for e in expanded for o in w.split("|")]
    return expanded


def check_strided(argv: list[str]) -> None:
    """``strided ARGV`` parses; a train command's settings pass validation; the cheap listings run."""
    for args in alternatives(placeholders_filled(argv)):
        try:
            ns = cli.build_parser().parse_args(args)
        except SystemExit as exc:
            pytest.fail(f"README command `strided {' '.join(args)}` does not parse (exit {exc.code})")
        if ns.command == "train":
            settings = {k: getattr(ns, k) for k in runs.DEFAULTS if k != "classes"}
            runs.validate(runs.config(**settings, classes=cli._parse_classes(ns.classes)))
        if ns.command == "reproduce":
            from strided.reproduce import NAMES
            assert ns.name in NAMES, f"README names an experiment `strided reproduce` does not know: {ns.name}"
        if ns.command in ("models", "datasets"):
            assert cli.main(args) == 0


def check_command(line: str) -> bool:
    """Check one shell command of the README; False for a command this test does not know."""
    words = shlex.split(line, comments=True)
    if not words:
        return True
    if words[0] == "strided":
        check_strided(words[1:])
    elif words[:3] == ["python", "-m", "strided"]:
        check_strided(words[3:])
    elif words[:3] == ["python", "-m", "strided.data"]:
        from strided.data.__main__ import main as data_main
        with pytest.raises(SystemExit) as exc:   # the subcommand exists: its --help is printed
            data_main(words[3:4] + ["--help"])
        assert exc.value.code == 0
    elif words[0] == "bash" and words[1].startswith("scripts/"):
        script = ROOT / words[1]
        assert script.is_file(), script
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, f"{script} has a syntax error"
        if words[1] == "scripts/main.sh":        # its arguments go to `strided train`
            check_strided(["train", *words[2:]])
    elif words[0] == "python" and words[1].endswith(".py"):
        assert (ROOT / words[1]).is_file(), words[1]
    elif words[:2] == ["pip", "install"]:
        for target in words[2:]:
            if target.startswith(".["):
                check_extras(target[2:-1])
    elif words[0] in ("mpiexec", "srun"):       # launchers of the user's own script (docs/distributed.md)
        pass
    else:
        return False
    return True


def check_extras(names: str) -> None:
    from test_package import _pyproject
    extras = _pyproject()["project"]["optional-dependencies"]
    for name in names.split(","):
        assert name in extras, f"README installs strided[{name}], which pyproject.toml does not define"


def shell_lines() -> list[str]:
    lines = [ln for body in blocks("bash") for ln in body.splitlines()]
    # the synopsis block: `strided ...` usages, several on a line, continued on indented lines,
    # options in [brackets]; each usage becomes a command using every option it shows
    for body in blocks(""):
        if body.lstrip().startswith("strided "):
            text = re.sub(r"\n\s+(?=\[)", " ", body)
            for ln in text.splitlines():
                lines += ["strided " + re.sub(r"\[([^\]]*)\]", r"\1", part).strip()
                          for part in re.split(r"(?:^|\s{2,})strided ", ln.strip()) if part]
    return lines


@pytest.mark.parametrize("line", shell_lines())
def test_every_shell_command_is_checked(line):
    assert check_command(line), f"the README shows a command this test cannot check: {line}"


INLINE = re.findall(r"(?<!`)`((?:strided|python -m strided|bash scripts/|python benchmarks/)[^`]*)`", TEXT)


def test_inline_commands_are_found():
    assert any(c.startswith("strided train --resume") for c in INLINE)


@pytest.mark.parametrize("command", [c for c in INLINE if not c.startswith(("strided.", "strided["))])
def test_every_inline_command_is_checked(command):
    assert check_command(command), f"the README shows a command this test cannot check: {command}"


@pytest.mark.parametrize("extra", sorted(set(re.findall(r"strided\[(\w+)\]", TEXT))))
def test_every_extra_the_readme_names_exists(extra):
    check_extras(extra)
