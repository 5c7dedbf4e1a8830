"""The page's scripts are native ES modules: one entry, an import graph without cycles, one state.

Fast checks of the files in static/ (no browser, no server).
"""
import re
from html.parser import HTMLParser
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "static"
ENTRY = "app.js"
STATE = "state.js"

# import x from "./a.js"; import { x } from "./a.js"; import "./a.js"; export { x } from "./a.js";
# import("./a.js"). Statements may span several lines.
IMPORT_RE = re.compile(r"""(?:^|[;\n])\s*(?:import|export)\s+(?:[\w$*{}\s,]*?\s*from\s*)?["']([^"']+)["']"""
                       r"""|\bimport\s*\(\s*["']([^"']+)["']\s*\)""")
NAMED_IMPORT_RE = re.compile(r"""^\s*(import|export)\s*\{([^}]*)\}\s*from\s*["']([^"']+)["']""", re.M)
EXPORTED_DECLARATION_RE = re.compile(r"^export\s+(?:async\s+)?(?:function\*?|const|let|var|class)\s+([\w$]+)", re.M)
EXPORT_LIST_RE = re.compile(r"^export\s*\{([^}]*)\}", re.M)
TOP_LEVEL_MUTABLE_RE = re.compile(r"^(?:export\s+)?(?:let|var)\s+([\w$]+)", re.M)


def strip_comments(source: str) -> str:
    """The source without // and /* */ comments (strings are kept: specifiers live in them)."""
    out, i, n = [], 0, len(source)
    while i < n:
        c = source[i]
        if c in "\"'`":
            j = i + 1
            while j < n and source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i:j + 1])
            i = j + 1
        elif source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def js_files() -> dict[str, str]:
    return {p.name: strip_comments(p.read_text(encoding="utf-8")) for p in sorted(STATIC.glob("*.js"))}


def imports_of(source: str) -> list[str]:
    return [a or b for a, b in IMPORT_RE.findall(source)]


def import_graph(files: dict[str, str]) -> dict[str, list[str]]:
    return {name: [spec[2:] for spec in imports_of(source)] for name, source in files.items()}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {node: WHITE for node in graph}
    stack: list[str] = []

    def visit(node):
        color[node] = GREY
        stack.append(node)
        for nxt in graph.get(node, []):
            if color.get(nxt, BLACK) == GREY:
                return stack[stack.index(nxt):] + [nxt]
            if color.get(nxt) == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = BLACK
        return None

    for node in graph:
        if color[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def exported_names(source: str) -> set[str]:
    names = set(EXPORTED_DECLARATION_RE.findall(source))
    for group in EXPORT_LIST_RE.findall(source):
        for item in group.split(","):
            if item.strip():
                names.add(item.split(" as ")[-1].strip())
    return names


# ---------------------------------------------------------------- the helpers catch what they must


def test_the_cycle_finder_finds_cycles_and_the_import_parser_reads_every_form():
    assert find_cycle({"a.js": ["b.js"], "b.js": ["c.js"], "c.js": ["a.js"]}) == ["a.js", "b.js", "c.js", "a.js"]
    assert find_cycle({"a.js": ["a.js"]}) == ["a.js", "a.js"]
    assert find_cycle({"a.js": ["b.js", "c.js"], "b.js": ["c.js"], "c.js": []}) is None
    source = strip_comments('import { a,\n  b } from "./x.js";\nimport "./y.js";\nexport { c } from "./z.js";\n'
                            'const m = import("./w.js");\nimport * as ns from "./v.js";\n// import "./commented.js";\n')
    assert imports_of(source) == ["./x.js", "./y.js", "./z.js", "./w.js", "./v.js"]


# ---------------------------------------------------------------- (a) the import graph


def test_every_import_is_a_relative_file_that_exists_and_the_graph_has_no_cycle():
    files = js_files()
    assert ENTRY in files and STATE in files
    for name, source in files.items():
        for spec in imports_of(source):
            assert re.fullmatch(r"\./[\w-]+\.js", spec), f"{name} imports {spec!r}: only ./<file>.js of static/ (no CDN, no bare names)"
            assert (STATIC / spec[2:]).is_file(), f"{name} imports {spec}, which does not exist"
    cycle = find_cycle(import_graph(files))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_is_loaded_from_the_entry():
    graph = import_graph(js_files())
    reached, todo = set(), [ENTRY]
    while todo:
        node = todo.pop()
        if node not in reached:
            reached.add(node)
            todo.extend(graph.get(node, []))
    assert set(graph) - reached == set(), "modules that nothing imports (left over?)"


def test_every_imported_name_is_exported_by_its_module():
    files = js_files()
    for name, source in files.items():
        for _, group, spec in NAMED_IMPORT_RE.findall(source):
            exported = exported_names(files[spec[2:]])
            for item in group.split(","):
                wanted = item.split(" as ")[0].strip()
                if wanted:
                    assert wanted in exported, f"{name} imports {wanted} from {spec}, which does not export it"


# ---------------------------------------------------------------- (b) the page loads one module


class Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []  # attributes of each <script>, with its inline text as "body"
        self.handlers: list[str] = []  # inline on...= attributes anywhere
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.handlers += [f"<{tag} {key}>" for key in attributes if key.lower().startswith("on")]
        if tag == "script":
            self._open = dict(attributes, body="")
            self.scripts.append(self._open)

    def handle_data(self, data):
        if self._open is not None:
            self._open["body"] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


def page_scripts() -> Scripts:
    parser = Scripts()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return parser


def test_the_page_loads_the_vendored_chart_library_then_one_module_entry_and_nothing_inline():
    page = page_scripts()
    modules = [s for s in page.scripts if s.get("type") == "module"]
    assert [s.get("src") for s in modules] == [f"/static/{ENTRY}"]
    classic = [s for s in page.scripts if s.get("type") != "module"]
    assert [s.get("src") for s in classic] == ["/static/vendor/uplot/uPlot.iife.min.js"], "first-party classic scripts"
    assert page.scripts.index(classic[0]) < page.scripts.index(modules[0])  # uPlot is defined before the modules run
    assert all(not s["body"].strip() for s in page.scripts), "inline script (the Content-Security-Policy refuses it)"
    assert page.handlers == [], "inline event handlers (the Content-Security-Policy refuses them)"


# ---------------------------------------------------------------- (c) one state, written once


def test_no_module_keeps_top_level_let_or_var_the_state_lives_in_one_object():
    mutable = {name: TOP_LEVEL_MUTABLE_RE.findall(source) for name, source in js_files().items()}
    assert {name: found for name, found in mutable.items() if found} == {}
    state = js_files()[STATE]
    assert exported_names(state) == {"state"}, "state.js exports the one state object, nothing else"


def test_no_module_writes_to_window_for_another_one_to_read():
    for name, source in js_files().items():
        assert not re.search(r"\b(?:window|globalThis|self)\.[\w$]+\s*=(?!=)", source), f"{name} sets a global"


def test_the_learning_rate_schedule_names_are_written_once():
    holders = [name for name, source in js_files().items() if re.search(r"""["']one-cycle["']""", source)]
    assert len(holders) == 1, holders
