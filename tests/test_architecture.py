"""Guardrails on the package's shape: no import cycles, no hidden imports, layers kept.

``tools/check_imports.py`` reads the source with ``ast``; these tests run it on zmartd
(which must be clean) and on small packages written here, to show that it does catch a
cycle, an unexplained function-local import and an import across layers.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "tools/check_imports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_imports"] = module
    spec.loader.exec_module(module)
    return module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_zmartd_has_no_cycles_hidden_imports_or_layer_breaks() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/check_imports.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_cycle_is_caught_even_through_a_function_local_import(tmp_path: Path) -> None:
    tool = _tool()
    root = _package(
        tmp_path,
        {
            "a.py": "from pkg import b\n",
            "b.py": "def f():\n    # lazy: start-up time\n    from pkg import a\n",
        },
    )
    problems = tool.check(tool.load_graph(root))
    assert problems == ["pkg.a -> pkg.b -> pkg.a  (import cycle)"]


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    tool = _tool()
    root = _package(
        tmp_path,
        {
            "a.py": "from pkg import b\n",
            "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        },
    )
    assert tool.check(tool.load_graph(root)) == []


def test_an_unexplained_function_local_import_is_caught(tmp_path: Path) -> None:
    tool = _tool()
    root = _package(
        tmp_path,
        {
            "a.py": "def f():\n    from pkg import b\n",
            "b.py": "",
        },
    )
    (problem,) = tool.check(tool.load_graph(root))
    assert "a.py:2: function-local import of pkg.b without a '# lazy: <why>'" in problem


def test_layers_and_independent_siblings(tmp_path: Path) -> None:
    tool = _tool()
    root = _package(
        tmp_path,
        {
            "low.py": "from pkg import high\n",
            "high.py": "",
            "x/__init__.py": "",
            "x/m.py": "from pkg.y import m\n",
            "y/__init__.py": "",
            "y/m.py": "",
        },
    )
    layers = (("low", ("pkg.low",)), ("high", ("pkg.high", "pkg.x", "pkg.y")))
    problems = tool.check(tool.load_graph(root), layers, (("pkg.x",), ("pkg.y",)))
    assert len(problems) == 2
    assert "pkg.low:1: imports pkg.high, a layer above (low -> high)" in problems
    assert any("pkg.x and pkg.y are independent" in p for p in problems)


def test_the_command_fails_on_a_deliberately_added_cycle(tmp_path: Path) -> None:
    root = _package(tmp_path, {"a.py": "import pkg.b\n", "b.py": "import pkg.a\n"})
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/check_imports.py"), str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "pkg.a -> pkg.b -> pkg.a  (import cycle)" in result.stdout
