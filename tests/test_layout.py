"""The layout keeps its shape: small modules and functions, a pure engine, blueprints that stand alone,
and the project's own warnings raised as errors in tests."""

import ast
import sys
import warnings
from pathlib import Path

import pytest

import app as app_package

APP_DIR = Path(app_package.__file__).parent
MODULE_MAX_LINES = 500
FUNCTION_MAX_LINES = 60


def _modules():
    return sorted(APP_DIR.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(APP_DIR).as_posix()


def _functions(tree):
    """(qualified name, lines) of every function, methods and nested functions included."""

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno, *(decorator.lineno for decorator in child.decorator_list)])
                yield f"{prefix}{child.name}", child.end_lineno - start + 1
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from walk(tree, "")


def _imports(tree):
    """Absolute names imported (a `from x import y` yields `x` and `x.y`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_module_is_over_500_lines():
    long = {
        _name(path): count
        for path in _modules()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_MAX_LINES
    }
    assert not long, f"modules over {MODULE_MAX_LINES} lines: {long}"


def test_no_function_is_over_60_lines():
    long = {}
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function, lines in _functions(tree):
            if lines > FUNCTION_MAX_LINES:
                long[f"{_name(path)}::{function}"] = lines
    assert not long, f"functions over {FUNCTION_MAX_LINES} lines: {long}"


def test_the_engine_imports_only_the_standard_library():
    outside = []
    for path in sorted((APP_DIR / "engine").rglob("*.py")):
        for name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "__future__" and not name.startswith("app.engine"):
                outside.append(f"{_name(path)}: {name}")
    assert not outside, f"app/engine must use the standard library only: {outside}"


def test_no_blueprint_imports_another_blueprint():
    blueprints = set(app_package.BLUEPRINTS)
    crossing = []
    for path in _modules():
        parts = path.relative_to(APP_DIR).parts
        if parts[0] != "web" or len(parts) < 2:
            continue
        owner = parts[1].removesuffix(".py")
        if owner not in blueprints:
            continue  # a helper of the web layer (htmx, message_log…): any blueprint may use it
        for name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            pieces = name.split(".")
            if pieces[:2] == ["app", "web"] and len(pieces) > 2 and pieces[2] in blueprints - {owner}:
                crossing.append(f"{_name(path)} imports {name}")
    assert not crossing, f"a blueprint imports another: move the shared part down a layer: {crossing}"


def test_the_projects_own_warnings_fail_tests():
    with pytest.raises(UserWarning):
        warnings.warn_explicit("a warning from the app", UserWarning, "app/web/x.py", 1, module="app.web.x")
    with warnings.catch_warnings(record=True):
        warnings.warn_explicit("not ours", UserWarning, "lib.py", 1, module="somelib")
