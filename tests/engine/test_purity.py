"""The engine imports only the standard library and itself: it must run anywhere the shell runs it."""

import ast
import sys
from pathlib import Path

import app.engine

ENGINE_DIR = Path(app.engine.__file__).parent


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_engine_imports_only_stdlib_and_itself():
    modules = sorted(ENGINE_DIR.rglob("*.py"))
    assert len(modules) >= 10
    outside = []
    for path in modules:
        for name, level in _imports(path):
            top = name.split(".")[0]
            if level > 0 or name == "app.engine" or name.startswith("app.engine."):
                continue
            if top == "__future__" or top in sys.stdlib_module_names:
                continue
            outside.append(f"{path.name}: {name}")
    assert not outside, f"app/engine must use the standard library only: {outside}"


def test_relative_imports_stay_inside_the_engine():
    for path in ENGINE_DIR.rglob("*.py"):
        depth = len(path.relative_to(ENGINE_DIR).parts) - 1  # packages below app/engine
        for name, level in _imports(path):
            assert level <= depth + 1, f"{path.name} reaches outside app.engine with a relative import of {name!r}"
