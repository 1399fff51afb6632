"""A model's architecture as JSON: layer types and constructor arguments, and back.

Every :class:`~strided.nn.Module` remembers the arguments it was built with
(``get_config()``), so a model is described by its class name plus those
arguments, and rebuilt by calling the class again. Containers are walked:
a module whose constructor takes its children as ``*modules``
(``Sequential``, ``Concat``) is described by its children and its other
arguments (``{"type": "Concat", "children": [...], "config": {"dim": 1}}``),
and a constructor argument that is itself a module (``Residual``'s
``body`` and ``shortcut``, a user class wrapping a backbone) is described
in place. A module that appears at several places of the model (shared
weights) is described once; its other places refer to the first
(``{"same_as": "model[0]"}``), so the rebuilt model shares it too. Only classes
in the registry are rebuilt: every layer and loss of :mod:`strided.nn` is
registered, and :func:`register_module` adds your own. Rebuilding never
imports or executes anything named by the file (no pickle).

Values are converted by :mod:`strided.io.tree` (tuples, NumPy dtypes and
scalars survive the trip through JSON).
"""
from __future__ import annotations

import inspect

from ..nn.module import Module, Sequential
from . import tree

__all__ = ["register_module", "registered_modules", "describe", "build", "UnregisteredModuleError",
           "ArchitectureError"]

_BY_NAME: dict[str, type] = {}
_BY_CLASS: dict[type, str] = {}


class UnregisteredModuleError(TypeError):
    """A module class that strided.io does not know how to rebuild."""


class ArchitectureError(ValueError):
    """A stored architecture that cannot be rebuilt (unknown type, bad arguments)."""


def register_module(cls=None, *, name: str | None = None):
    """Let :func:`strided.io.save`/``load`` describe and rebuild instances of ``cls`` (a Module subclass).

    The class must be rebuildable from its constructor arguments alone
    (``cls(**module.get_config())``), with arguments made of numbers, strings,
    tuples, lists, dicts, NumPy arrays/dtypes or other modules. Its
    parameters and buffers are then restored from the file. Usable as a
    decorator (``@register_module``) or a call; ``name`` defaults to the
    class name and must be unique. Returns ``cls``.
    """
    if cls is None:
        return lambda c: register_module(c, name=name)
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"cls must be a subclass of strided.nn.Module, got {cls!r}")
    key = cls.__name__ if name is None else name
    if not isinstance(key, str) or not key:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    other = _BY_NAME.get(key)
    if other is not None and other is not cls:
        raise ValueError(
            f"a module class named {key!r} is already registered ({other.__module__}.{other.__qualname__}); "
            f"register {cls.__module__}.{cls.__qualname__} under another name: register_module(cls, name=...)"
        )
    _BY_NAME[key] = cls
    _BY_CLASS[cls] = key
    return cls


def registered_modules() -> dict[str, type]:
    """Name -> class of every module type that can be saved and loaded."""
    return dict(_BY_NAME)


def _register_builtins() -> None:
    from .. import nn
    for attr in nn.__all__:
        obj = getattr(nn, attr)
        if isinstance(obj, type) and issubclass(obj, Module) and obj is not Module:
            register_module(obj)


_register_builtins()


def _type_name(module: Module, where: str) -> str:
    cls = type(module)
    name = _BY_CLASS.get(cls)
    if name is None:
        raise UnregisteredModuleError(
            f"cannot save {where}: {cls.__module__}.{cls.__qualname__} is not a registered module class. "
            f"Register it with strided.io.register_module({cls.__qualname__}) (it must be rebuildable as "
            f"{cls.__qualname__}(**module.get_config())), or save only the weights with "
            "strided.io.save_state_dict(model, path) and rebuild the model in code"
        )
    return name


def _children_argument(module: Module) -> str | None:
    """The name of the ``*modules`` parameter when the constructor takes the module's children that way, else None.

    ``Sequential(*layers)`` and ``Concat(*branches, dim=1)`` are rebuilt as
    ``cls(*children, **other_arguments)``; a Sequential subclass with a
    constructor of its own (a block built from a few numbers) is not.
    """
    for param in inspect.signature(type(module).__init__).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            given = Module.get_config(module).get(param.name, ())
            return param.name if all(isinstance(v, Module) for v in given) else None
    return None


def describe(module: Module, arrays: dict, where: str = "model", prefix: str = "__config__", _seen=None):
    """The JSON-friendly description of ``module``; arrays among its arguments go into ``arrays``.

    A module met again (shared) is described as ``{"same_as": <where it was first described>}``.
    """
    if not isinstance(module, Module):
        raise TypeError(f"{where} must be a strided.nn.Module, got {type(module).__name__}")
    seen = {} if _seen is None else _seen  # id(module) -> where it was described
    if id(module) in seen:
        return {"same_as": seen[id(module)]}
    seen[id(module)] = where
    name = _type_name(module, where)

    def modules_inside(value, at):
        if isinstance(value, Module):
            return {"__module__": describe(value, arrays, at, f"{prefix}/{at}", seen)}
        return None

    # the arguments as recorded: a Sequential subclass with its own constructor (a block built from a few
    # arguments) is rebuilt from those arguments, which Sequential.get_config hides
    config = Module.get_config(module) if isinstance(module, Sequential) else module.get_config()
    children = _children_argument(module)
    if children is None:
        return {"type": name, "config": tree.encode(config, arrays, f"{where} ({name}) argument", prefix,
                                                    hook=modules_inside)}
    config.pop(children, None)
    out = {"type": name, "children": [
        describe(child, arrays, f"{where}[{i}]", f"{prefix}/{i}", seen)
        for i, (_, child) in enumerate(module.named_children(remove_duplicate=False))  # a shared child at every place
    ]}
    if config:
        out["config"] = tree.encode(config, arrays, f"{where} ({name}) argument", prefix, hook=modules_inside)
    return out


#: the most modules a stored architecture may describe (a ResNet-152 has about 500); counted before
#: anything is built, so a crafted description cannot keep the loader constructing for minutes
MAX_MODULES = 4096


def count_modules(description) -> int:
    """How many layer descriptions (dicts with a ``"type"``) ``description`` holds, counted without recursion
    (the count stops just past :data:`MAX_MODULES`)."""
    count, stack = 0, [description]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            count += "type" in value
            if count > MAX_MODULES:
                break
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def build(description, arrays, where: str = "model", _built=None) -> Module:
    """Rebuild a module from :func:`describe`'s output (raises :class:`ArchitectureError` on a bad description).

    A description of more than :data:`MAX_MODULES` modules is refused before anything is built.
    """
    if _built is None:
        count = count_modules(description)
        if count > MAX_MODULES:
            raise ArchitectureError(f"{where}: the architecture describes more than {MAX_MODULES} modules, which "
                                    "is the most rebuilt (raise strided.io.serialize.MAX_MODULES for a larger model)")
    built = {} if _built is None else _built  # where -> module, for the references of shared modules
    if isinstance(description, dict) and set(description) == {"same_as"}:
        target = built.get(description["same_as"]) if isinstance(description["same_as"], str) else None
        if target is None:
            raise ArchitectureError(f"{where}: refers to a shared module at {description['same_as']!r:.80}, "
                                    "which is not described before it")
        return target
    module = _build(description, arrays, where, built)
    built[where] = module
    return module


def _build(description, arrays, where, built) -> Module:
    if not isinstance(description, dict) or not isinstance(description.get("type"), str):
        raise ArchitectureError(f"{where}: expected a layer description with a 'type', got {description!r:.80}")
    name = description["type"]
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ArchitectureError(
            f"{where}: unknown module type {name!r:.80}. If it is your own class, call "
            f"strided.io.register_module({name:.80}) before loading. Known types: {', '.join(sorted(_BY_NAME))}"
        )
    layers = []
    if "children" in description:
        children = description["children"]
        if not isinstance(children, list):
            raise ArchitectureError(f"{where}: 'children' must be a list, got {type(children).__name__}")
        layers = [build(c, arrays, f"{where}[{i}]", built) for i, c in enumerate(children)]

    def modules_inside(value, at):
        if isinstance(value, dict) and set(value) == {"__module__"}:
            return build(value["__module__"], arrays, at, built)
        return None

    try:
        config = tree.decode(description.get("config", {}), arrays, f"{where} ({name}) argument",
                             hook=modules_inside)
    except tree.DecodeError as exc:
        raise ArchitectureError(str(exc)) from exc
    if not isinstance(config, dict):
        raise ArchitectureError(f"{where}: the arguments of {name} must be a dict, got {type(config).__name__}")
    try:
        return cls(*layers, **config)
    except (TypeError, ValueError, ArithmeticError) as exc:
        what = f"{name}({_args(config)})" + (f" from its {len(layers)} children" if layers else "")
        raise ArchitectureError(f"{where}: cannot rebuild {what}: {exc}") from exc


def _args(config: dict) -> str:
    return ", ".join(f"{k}={v!r:.80}" for k, v in config.items())
