"""The shape of the code: the root holds the three entry points and one package; the package's
modules import one way (no cycle); only web/ knows HTTP; one module owns the run folder's file
names; no function or class does several jobs; the tests mirror the package."""
import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = "mnist_monitor"
ENTRY_POINTS = ("model.py", "server.py", "train.py")
SOURCES = sorted(list(ROOT.glob("*.py")) + list((ROOT / PACKAGE).rglob("*.py")))
HTTP_LIBRARIES = {"flask", "werkzeug", "waitress"}
RUN_FOLDER_NAMES = ("config.json", "run.json", "status.json", "metrics.jsonl", "meta.json", "claim.json",
                    "heartbeat.json", "stop.request", "curves.png", ".pt", "_m{", "model{")
OWNER = f"{PACKAGE}.runstore"


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    return ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)


def imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (at any depth of the file): ``from a.b import c`` counts
    as importing ``a.b.c`` where that is a module, else ``a.b``."""
    names = {module_name(p) for p in SOURCES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module
                      for a in node.names}
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
        if module_name(path).startswith(OWNER):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and not any(c.isspace() for c in node.value)):  # prose for people may name a file
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}" for name in RUN_FOLDER_NAMES[:9]
                              if name in node.value]
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(OWNER):
                offenders += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                              if a.name.endswith("_FILE") or a.name.endswith("_name")]
    assert offenders == []


def test_the_root_holds_the_entry_points_and_one_package():
    assert sorted(p.name for p in ROOT.glob("*.py")) == list(ENTRY_POINTS)
    folders = {p.parent for p in (ROOT / PACKAGE).rglob("*.py")}
    assert all((folder / "__init__.py").is_file() for folder in folders)


def test_only_web_knows_http():
    """Flask, Werkzeug and the WSGI server are imported only by web/ and server.py, and nothing
    below web/ imports it: the trainer, the scheduler, sweeps and inference raise domain errors."""
    offenders = []
    for path in SOURCES:
        name = module_name(path)
        if name == "server" or name.startswith(f"{PACKAGE}.web"):
            continue
        found = {m.split(".")[0] for m in imports_any(path)} & HTTP_LIBRARIES
        found |= {m for m in imports_any(path) if m.startswith(f"{PACKAGE}.web")}
        offenders += [f"{name} imports {m}" for m in sorted(found)]
    assert offenders == []


def test_the_architecture_test_sees_an_http_import():
    """The rule above can fail: a module that imports Flask or the web package is seen."""
    code = "import flask\nfrom mnist_monitor.web.errors import NotFound\nfrom werkzeug import exceptions\n"
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    assert {m.split(".")[0] for m in found} & HTTP_LIBRARIES == {"flask", "werkzeug"}
    assert any(m.startswith(f"{PACKAGE}.web") for m in found)


def test_the_tests_mirror_the_package():
    """A folder of unit tests per package folder (its name without the package's prefix)."""
    folders = sorted(p.name for p in (ROOT / PACKAGE).iterdir() if (p / "__init__.py").is_file())
    missing = [f for f in folders if not list((ROOT / "tests" / f).glob("test_*.py"))]
    assert missing == []


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
                   "page_hosts", "page_address", "main", "leave", "class_code"}


def test_no_function_over_50_lines_and_no_class_over_200():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > 50:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size} lines)")
            if isinstance(node, ast.ClassDef) and size > 200:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} class {node.name} ({size} lines)")
    assert long == []
