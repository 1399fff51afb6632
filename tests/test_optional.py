"""Optional dependencies (strided._optional): one message for a missing library, saying how to install it."""
import sys

import numpy as np
import pytest

from strided import _optional

MISSING = "strided_no_such_module_for_tests"


def test_require_imports_what_is_installed():
    assert _optional.require("numpy", "arrays") is np
    assert _optional.require("numpy.linalg", "arrays") is np.linalg


def test_require_names_the_feature_the_package_and_the_command():
    with pytest.raises(ImportError) as info:
        _optional.require(f"{MISSING}.sub", "drawing things", extra="viz", packages=f"{MISSING} other")
    assert str(info.value) == (f"drawing things needs {MISSING}: pip install strided[viz]  "
                               f"(or: pip install {MISSING} other)")
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(ImportError, match=f"^PyTorch interchange needs {MISSING}: pip install {MISSING}$"):
        _optional.require(MISSING, "PyTorch interchange")


def test_a_blocked_module_counts_as_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy.linalg", None)
    with pytest.raises(ImportError, match=r"needs numpy: pip install strided\[x\]"):
        _optional.require("numpy.linalg", "it", extra="x")
    assert _optional.optional("numpy.linalg") is None
    assert not _optional.available("numpy.linalg")


def test_optional_and_available():
    assert _optional.optional(MISSING) is None and _optional.optional("numpy") is np
    assert _optional.available("numpy") and _optional.available("numpy.linalg")
    assert not _optional.available(MISSING) and not _optional.available(f"{MISSING}.sub")


def test_available_does_not_import():
    import subprocess
    code = ("import sys; from strided import _optional; assert _optional.available('tracemalloc'); "
            "assert 'tracemalloc' not in sys.modules, 'imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
