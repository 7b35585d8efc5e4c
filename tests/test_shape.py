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
