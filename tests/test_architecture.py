"""The layering of ARCHITECTURE.md, checked on the source with ``ast``.

- No import cycles among strided's modules: lower layers never import higher
  ones (imports inside functions count).
- No private name crosses a package boundary: an internal (``_name``) module
  is used only inside its package, and an internal name only inside the
  package of the module that defines it. The top-level modules (train, cli,
  runs, geometry, ...) are layers of their own, so their internal names stay
  in them; the top-level internal modules (``_checks``, ``_parallel``,
  ``_memory``, ``_version``) serve every subpackage through their public names.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "strided"
TOP = "strided"

def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


FILES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
TREES = {m: ast.parse(p.read_text(), filename=str(p)) for m, p in FILES.items()}


def _is_package(module: str) -> bool:
    return FILES[module].name == "__init__.py"


def _package(module: str) -> str:
    return module if _is_package(module) else module.rpartition(".")[0]


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = _package(module).split(".")
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _ours(name: str) -> bool:
    return name == TOP or name.startswith(TOP + ".")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _home(module: str) -> str:
    """Where the internal names of ``module`` may be used: its package, or the module itself at the top level."""
    package = _package(module)
    return module if package == TOP and module != TOP else package


def _inside(user: str, home: str) -> bool:
    return user == home or user.startswith(home + ".")


# ----------------------------------------------------------------------------- import graph
def import_graph() -> dict[str, set[str]]:
    """module -> the strided modules it imports (a package stands for its __init__.py)."""
    graph = {}
    for module, tree in TREES.items():
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, node)
                if _ours(target):
                    for alias in node.names:
                        sub = f"{target}.{alias.name}"
                        deps.add(sub if sub in FILES else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if _ours(a.name))
        deps.discard(module)
        graph[module] = {d for d in deps if d in FILES}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle [a, b, ..., a] of the directed graph, or None when it is acyclic."""
    state, stack = {}, []

    def visit(v):
        state[v] = "open"
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == "open":
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = "done"
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert "strided.train" in graph["strided.runs"]  # the graph sees imports inside functions
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# ----------------------------------------------------------------------------- internal names
def _definitions() -> dict[str, set[str]]:
    """internal attribute name -> the modules whose classes define it (methods, class attributes, self._x)."""
    defined = {}
    for module, tree in TREES.items():
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for node in ast.walk(cls):
                names = []
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node in cls.body:
                    names.append(node.name)
                elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                            if isinstance(el, ast.Name) and node in cls.body:
                                names.append(el.id)
                            elif (isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name)
                                  and el.value.id == "self"):
                                names.append(el.attr)
                elif (isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)
                      and node.args[0].id == "self" and isinstance(node.args[1], ast.Constant)
                      and ast.unparse(node.func) in ("setattr", "object.__setattr__")):
                    names.append(node.args[1].value)        # object.__setattr__(self, "_modules", ...)
                for name in names:
                    if _private(name):
                        defined.setdefault(name, set()).add(module)
    return defined


def _module_aliases(module: str, tree: ast.Module) -> dict[str, str]:
    """local name -> the strided module it is bound to by an import in ``module``."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _absolute(module, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in FILES:
                    aliases[alias.asname or alias.name] = sub
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in FILES and alias.asname:
                    aliases[alias.asname] = alias.name
    return aliases


def _dotted_module(node, aliases) -> str | None:
    """The strided module an expression such as ``F.loss`` names, or None."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted_module(node.value, aliases)
        if base is not None and f"{base}.{node.attr}" in FILES:
            return f"{base}.{node.attr}"
    return None


def crossings() -> list[str]:
    """Every use of an internal module or name outside the package it belongs to, as 'file:line: what'."""
    defined = _definitions()
    found = []
    for module, tree in TREES.items():
        aliases = _module_aliases(module, tree)

        def report(node, what, home):
            if not _inside(module, home):
                found.append(f"{FILES[module].relative_to(ROOT.parent)}:{node.lineno}: {what} (internal to {home})")

        def check_module_path(node, dotted):
            parts = dotted.split(".")
            for i, part in enumerate(parts):
                if _private(part):
                    report(node, dotted, ".".join(parts[:i]))
                    return

        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, node)
                if not _ours(target):
                    continue
                check_module_path(node, target)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in FILES:
                        check_module_path(node, sub)
                    elif _private(alias.name):
                        report(node, sub, _home(target))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _ours(alias.name):
                        check_module_path(node, alias.name)
            else:
                if isinstance(node, ast.Attribute):
                    owner, attr = node.value, node.attr
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                      and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                      and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                    owner, attr = node.args[0], node.args[1].value
                else:
                    continue
                if not _private(attr) or (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    continue
                target = _dotted_module(owner, aliases)
                if target is not None:  # a module's internal name: T._write_json
                    sub = f"{target}.{attr}"
                    if sub in FILES:
                        check_module_path(node, sub)
                    else:
                        report(node, sub, _home(target))
                elif attr in defined:   # an object's internal attribute: m._rng
                    homes = {_home(m) for m in defined[attr]}
                    if not any(_inside(module, h) for h in homes):
                        report(node, f"._{attr.lstrip('_')} of an object", " or ".join(sorted(homes)))
    return sorted(found)


def test_the_scan_sees_each_kind_of_crossing(tmp_path):
    # the three shapes the scan must catch, as it would see them in a module of strided.nn
    tree = ast.parse("from ..functional._common import floating\n"
                     "from ..functional.activation import _inplace_target\n"
                     "from .. import train as T\nT._write_json\n")
    TREES["strided.nn._scan_probe"], FILES["strided.nn._scan_probe"] = tree, ROOT / "nn" / "_scan_probe.py"
    try:
        probe = [c for c in crossings() if "_scan_probe" in c]
    finally:
        del TREES["strided.nn._scan_probe"], FILES["strided.nn._scan_probe"]
    assert len(probe) == 3, probe
    assert "strided.functional._common" in probe[0] and "strided.train._write_json" in probe[2]


def test_no_internal_name_crosses_a_package_boundary():
    found = crossings()
    assert not found, "internal names used outside their package:\n" + "\n".join(found)
