"""The package as installed: what ``import strided`` loads, and the metadata pyproject.toml declares."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# networking (only a download needs it) and the optional extras (only their feature needs them)
NOT_ON_IMPORT = ("http", "email", "socket", "ssl", "urllib.request", "matplotlib", "scipy", "onnx", "onnxruntime",
                 "torch", "tqdm", "safetensors", "threadpoolctl", "PIL")


def _modules_loaded_by(statement: str) -> list[str]:
    """The modules a fresh interpreter loads to run ``statement`` (those its start-up loaded left out)."""
    code = ("import json, sys; before = set(sys.modules); " + statement +
            "; print(json.dumps(sorted(set(sys.modules) - before)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def _offending(modules) -> list[str]:
    return [m for m in modules if any(m == name or m.startswith(name + ".") for name in NOT_ON_IMPORT)]


def test_offending_detects_what_it_should():
    assert _offending(["http.client", "torch", "strided", "urllib.parse", "emails"]) == ["http.client", "torch"]


@pytest.mark.parametrize("statement", ["import strided", "import strided.data", "import strided.io"])
def test_import_loads_no_networking_and_no_optional_extra(statement):
    loaded = _modules_loaded_by(statement)
    assert "strided" in loaded
    assert _offending(loaded) == []


def test_a_download_imports_its_networking_modules_when_it_starts():
    code = ("from strided.data.download import download_file, FileSpec, DownloadError\n"
            "try:\n    download_file(['file:///nonexistent/strided-test'], '/tmp/strided-test-x', "
            "FileSpec('x', 'idx'), log=None)\n"
            "except DownloadError as exc:\n    print('DownloadError', exc)\n"
            "import sys; print('urllib.request' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("DownloadError could not download x") and proc.stdout.strip().endswith("True")
