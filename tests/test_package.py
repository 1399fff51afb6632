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


# ----------------------------------------------------------------------------- metadata
def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:          # Python 3.10
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs Python 3.11 or tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_with_its_file():
    meta = _pyproject()
    project = meta["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the strided authors" in text
    # the string form of `license` needs setuptools 77 or later
    (requirement,) = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    assert requirement.startswith("setuptools>=") and int(requirement.split(">=")[1].split(".")[0]) >= 77


def test_classifiers_agree_with_requires_python():
    project = _pyproject()["project"]
    classifiers = project["classifiers"]
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert project["requires-python"] == f">={versions[0]}"
    for c in ("Topic :: Scientific/Engineering :: Artificial Intelligence", "Typing :: Typed",
              "Operating System :: OS Independent", "Intended Audience :: Science/Research",
              "Intended Audience :: Education", "Intended Audience :: Developers"):
        assert c in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert project["keywords"]
    assert set(project["urls"]) == {"Homepage", "Repository", "Documentation", "Issues"}
    assert all(u.startswith("https://github.com/strided-dev/strided") for u in project["urls"].values())


def test_type_information_ships_with_the_package():
    assert (ROOT / "strided" / "py.typed").is_file()
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["strided"]


def test_source_distribution_carries_docs_tests_examples_and_benchmarks():
    lines = [line.split() for line in (ROOT / "MANIFEST.in").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    grafted = {words[1] for words in lines if words[0] == "graft"}
    included = {w for words in lines if words[0] == "include" for w in words[1:]}
    assert {"docs", "tests", "examples", "benchmarks"} <= grafted
    assert {"LICENSE", "README.md", "ARCHITECTURE.md"} <= included
    for directory in grafted:
        assert (ROOT / directory).is_dir(), directory


def test_every_extra_named_in_an_install_message_exists():
    import re
    extras = set(_pyproject()["project"]["optional-dependencies"])
    named = {m for path in (ROOT / "strided").rglob("*.py") if path.name != "_optional.py"   # the template
             for m in re.findall(r"""extra=["']([\w-]+)["']|strided\[([\w-]+)\]""", path.read_text())
             for m in m if m}
    assert {"viz", "onnx", "safetensors", "scipy"} <= named
    assert named <= extras, f"messages name extras pyproject.toml lacks: {named - extras}"


def test_readme_images_and_links_work_on_the_package_index():
    import re
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images and all(u.startswith("https://raw.githubusercontent.com/strided-dev/strided/main/")
                          for u in images)
    for url in images:
        assert (ROOT / url.split("/main/", 1)[1]).is_file(), url
    links = re.findall(r"(?<!!)\[[^\]]*\]\(([^)#]+)\)", readme)
    assert [u for u in links if not u.startswith("https://")] == []
    for url in links:
        if url.startswith("https://github.com/strided-dev/strided/blob/main/"):
            assert (ROOT / url.split("/blob/main/", 1)[1]).is_file(), url
