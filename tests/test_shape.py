"""The package's shape holds: layers as contracts, small modules and functions, a true map.

The layers and the one TensorFlow import are import-linter contracts in setup.cfg; this runs them
as part of the suite (CI runs `lint-imports` too), so an upward import fails here first.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "shakegen"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py"))


def test_the_import_contracts_hold():
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if linter is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run([linter, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_the_contracts_name_every_package():
    """Every sub-package and top-level module of shakegen sits on a layer of the contract."""
    text = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    layers = text.split("[importlinter:contract:layers]", 1)[1].split("[importlinter:contract:", 1)[0]
    named = set(re.findall(r"shakegen\.([a-z_]+)", layers))
    present = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    present |= {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert present - named == set(), "on no layer: add them to setup.cfg's layers contract"
    assert named - present == set(), "named in the contract but not in the package"


def test_no_module_is_over_the_limit():
    long = {str(path.relative_to(ROOT)): count for path in modules() if (count := _lines(path)) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: split them by job"


def test_no_function_is_over_the_limit():
    long = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines (nested functions count): split them"


def test_the_architecture_page_names_every_module_and_no_other():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*\.py)`", page.split("## The modules", 1)[1].split("\n## ", 1)[0]))
    every = {str(path.relative_to(PACKAGE)) for path in modules()}
    required = {name for name in every if not name.endswith("__init__.py")}  # a package's face may go unnamed
    assert required - named == set(), "modules docs/architecture.md does not name: add them to its module table"
    assert named - every == set(), "docs/architecture.md names modules that do not exist"


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


# Below the faces an import inside a function must defer a heavy library (TensorFlow, Keras,
# matplotlib, ...) that the module does not import already; any other import belongs at the top,
# where a reader (and import-linter) sees it. The faces may also defer their commands' parts.
HEAVY = {"tensorflow", "keras", "matplotlib", "fastapi", "uvicorn", "prompt_toolkit", "requests", "pydantic"}
FACES = ("shakegen.cli", "shakegen.serve", "shakegen.api", "shakegen.__main__", "shakegen")


def test_imports_inside_functions_defer_a_heavy_library():
    graph = _ImportGraph()
    needless = []
    for name, path in graph.files.items():
        if name in FACES or name.startswith(FACES[:2]):
            continue
        already = graph.heavy(graph.closure(name) | {name})
        for line, targets in graph.inner[name]:
            deferred = graph.heavy(set().union(*(graph.closure(t) | {t} for t in targets)))
            if not deferred - already:
                needless.append(f"{path.relative_to(ROOT)}:{line} {' '.join(sorted(targets))}")
    assert needless == [], "imports inside functions that defer nothing heavy: move them to the top"


class _ImportGraph:
    """shakegen's imports as written: those at module level, and those inside functions."""

    def __init__(self):
        self.files = {self._name(path): path for path in modules()}
        self.top = {}
        self.inner = {}
        for name, path in self.files.items():
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            tree = ast.parse(path.read_text(encoding="utf-8"))
            functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            inside = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
            imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
            self.top[name] = set().union(*(self._targets(n, package) for n in imports if id(n) not in inside))
            self.inner[name] = []
            for node in imports:
                targets = self._targets(node, package)
                if id(node) in inside and any(target.startswith("shakegen") for target in targets):
                    self.inner[name].append((node.lineno, targets))

    def _name(self, path: Path) -> str:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def _targets(self, node, package: str) -> set[str]:
        if isinstance(node, ast.Import):
            return {alias.name for alias in node.names}
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module
        found = {module} | {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in self.files}
        if module == "shakegen.model.backend":  # `from shakegen.model.backend import tf`: TensorFlow itself
            found |= {"tensorflow"} | ({"keras"} if any(a.name == "keras" for a in node.names) else set())
        return found

    def closure(self, name: str) -> set[str]:
        """Every module that importing ``name`` imports (module-level imports, transitively)."""
        seen, todo = set(), [name]
        while todo:
            for target in self.top.get(todo.pop(), ()):
                parts = target.split(".")
                for end in range(1, len(parts) + 1):  # importing a.b.c imports a and a.b too
                    module = ".".join(parts[:end])
                    if module not in seen:
                        seen.add(module)
                        todo.append(module)
        return seen

    @staticmethod
    def heavy(names: set[str]) -> set[str]:
        return {name.split(".")[0] for name in names} & HEAVY
