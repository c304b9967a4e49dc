"""The shape of the package (issue 14): no import cycle between refimpl's modules, counting imports inside
functions too, and no module importing another module's private (``_name``) names."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "refimpl"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph():
    """``{module: {imported refimpl module: [names]}}`` from every import statement of every module."""
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        mod = _module_name(path)
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        edges = graph.setdefault(mod, {})
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("refimpl"):
                    continue
                for alias in node.names:  # `from . import x` imports the module refimpl.x
                    sub = f"{target}.{alias.name}"
                    if (ROOT.parent / (sub.replace(".", "/") + ".py")).exists() or (
                        ROOT.parent / sub.replace(".", "/") / "__init__.py"
                    ).exists():
                        edges.setdefault(sub, [])
                    else:
                        edges.setdefault(target, []).append(alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("refimpl"):
                        edges.setdefault(alias.name, [])
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w == v or w.startswith(v + "."):  # a package importing its own submodules
                continue
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

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_no_module_imports_private_names_of_another():
    bad = [(m, t, n) for m, edges in import_graph().items() for t,
        names in edges.items() for n in names if n.startswith("_") and not n.startswith("__") and t != m]  # fmt: skip
    assert bad == [], bad


#: the rooms of the package, bottom to top (docs/architecture.md): a module imports only from its own room
#: or from rooms below it; the package root (the lazy public API) sits above them all
LAYERS = [
    ("refimpl.checks", "refimpl.schema", "refimpl.io", "refimpl.interrupt", "refimpl.threads", "refimpl.memory"),
    ("refimpl.linalg",),
    ("refimpl.tasks",),
    ("refimpl.model",),
    ("refimpl.grad",),
    ("refimpl.dynamics",),
    ("refimpl.exact",),
    ("refimpl.training",),
    ("refimpl.sweep",),
    ("refimpl.check",),
    ("refimpl.bench", "refimpl.bench_peers", "refimpl.bench_report", "refimpl.bench_timing", "refimpl.demo"),
    ("refimpl.cli",),
]


def layer_of(module: str) -> int:
    if module == "refimpl":
        return len(LAYERS)
    for i, rooms in enumerate(LAYERS):
        if any(module == r or module.startswith(r + ".") for r in rooms):
            return i
    raise AssertionError(f"{module} is in no room of LAYERS: add it")


def test_imports_only_go_down():
    """Every import of every module (inside functions too) goes to its own room or a lower one."""
    up = [
        (m, t)
        for m, edges in import_graph().items()
        for t in edges
        if t != "refimpl" and not t.startswith(m + ".") and layer_of(t) > layer_of(m)
    ]
    assert up == [], up


def test_layer_check_can_fail():
    """The check above is not vacuous: an upward edge is found."""
    assert layer_of("refimpl.model.cell") < layer_of("refimpl.dynamics.lyapunov")
    assert layer_of("refimpl.cli.train") > layer_of("refimpl.training.trainer")
