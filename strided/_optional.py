"""Optional dependencies: imported when a feature first needs them, with one way of saying how to install them.

NumPy is strided's only requirement. Every other library serves one
feature and is imported by that feature, on first use, through this
module, so a missing one fails in one recognisable way:

    >>> require("matplotlib", "plotting", extra="viz")     # doctest: +SKIP
    ImportError: plotting needs matplotlib: pip install strided[viz]  (or: pip install matplotlib)

or, where the feature has a fallback, is simply skipped
(``optional("tqdm.auto")`` returns None without tqdm).

Args:
    module: the dotted name of the module to import (``"scipy.signal"``,
        ``"safetensors.numpy"``); its first part names the distribution.
    feature: what needs it, as the subject of a sentence (``"ONNX export"``).
    extra: the ``strided[extra]`` that installs it, or None when no extra
        does (PyTorch, whose build the user chooses).
    packages: what ``pip install`` needs without the extra (default: the
        distribution of ``module``).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

__all__ = ["available", "install_hint", "optional", "require"]


def install_hint(module: str, feature: str, extra: str | None = None, packages: str | None = None) -> str:
    """The message of a missing dependency: ``'<feature> needs <package>: pip install strided[<extra>] ...'``."""
    package = module.split(".", 1)[0]
    packages = packages or package
    how = f"pip install strided[{extra}]  (or: pip install {packages})" if extra else f"pip install {packages}"
    return f"{feature} needs {package}: {how}"


def require(module: str, feature: str, extra: str | None = None, packages: str | None = None) -> ModuleType:
    """Import ``module``, or raise ImportError with :func:`install_hint`'s message (the cause chained)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(install_hint(module, feature, extra, packages)) from exc


def optional(module: str) -> ModuleType | None:
    """Import ``module``, or None when it is not installed (for features that work without it)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def available(module: str) -> bool:
    """Whether ``module`` is installed, without importing it (its parent packages are imported)."""
    if sys.modules.get(module) is not None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:          # a parent package is missing
        return False
