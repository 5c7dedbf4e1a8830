"""The shape of the code: the rooms import one way, one module owns the run folder's file names,
the worker knows nothing of HTTP, and no function or class does several jobs."""
import ast
from pathlib import Path

from conftest import ROOT

SOURCES = sorted(p for p in list(ROOT.glob("*.py")) + list(ROOT.glob("runstore/*.py")))
RUN_FOLDER_NAMES = ("config.json", "run.json", "status.json", "metrics.jsonl", "meta.json", "claim.json",
                    "heartbeat.json", "stop.request", "curves.png", ".pt", "_m{", "model{")
OWNER = "runstore"


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    return ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)


def imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (at any depth of the file)."""
    names = {module_name(p) for p in SOURCES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name in names}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_modules():
    graph = {module_name(p): imports(p) - {module_name(p)} for p in SOURCES}
    graph = {m: {d for d in deps if not (m.startswith(d + ".") or d.startswith(m + "."))} for m, deps in graph.items()}
    assert find_cycle(graph) is None, find_cycle(graph)


def test_only_the_run_store_spells_the_run_folders_file_names():
    offenders = []
    for path in SOURCES:
        if module_name(path).split(".")[0] == OWNER:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and not any(c.isspace() for c in node.value)):  # prose for people may name a file
                offenders += [f"{path.name}:{node.lineno} {node.value!r}" for name in RUN_FOLDER_NAMES[:9]
                              if name in node.value]
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(OWNER):
                offenders += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                              if a.name.endswith("_FILE") or a.name.endswith("_name")]
    assert offenders == []


def test_the_worker_raises_no_http_error():
    worker = ROOT / "worker.py"
    assert not ({"errors", "flask", "werkzeug", "api"} & {m.split(".")[0] for m in imports_any(worker)})


def imports_any(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_server_py_holds_the_app_factory_and_the_command_line():
    tree = ast.parse((ROOT / "server.py").read_text())
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not any(isinstance(n, ast.ClassDef) for n in tree.body)  # no worker, no state: a factory and a CLI
    assert top == {"create_app", "build_parser", "positive_int", "gpu_share", "ray_pool", "stop_gracefully",
                   "page_hosts", "page_address", "main", "leave"}


def test_no_function_over_50_lines_and_no_class_over_200():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > 50:
                long.append(f"{path.name}:{node.lineno} {node.name} ({size} lines)")
            if isinstance(node, ast.ClassDef) and size > 200:
                long.append(f"{path.name}:{node.lineno} class {node.name} ({size} lines)")
    assert long == []
