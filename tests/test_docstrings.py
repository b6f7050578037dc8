"""Every public function of the library has a docstring; those that raise say so
(tools/check_docstrings.py)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location(
        "check_docstrings", ROOT / "tools/check_docstrings.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_public_function_has_a_docstring_that_names_what_it_raises():
    problems = _checker().check(ROOT / "unires")
    assert not problems, "\n".join(problems)


def test_the_checker_finds_missing_docstrings_and_unstated_raises(tmp_path):
    checker = _checker()
    source = tmp_path / "pkg" / "m.py"
    source.parent.mkdir()
    source.write_text(
        "def bare(x):\n    return x\n\n\n"
        "def raising(x):\n    '''Half of x.'''\n    raise ValueError(x)\n\n\n"
        "def stated(x):\n    '''Half of x.\n\n    Raises:\n        ValueError: always.\n    '''\n"
        "    raise ValueError(x)\n\n\n"
        "def reraising(x):\n    '''Half of x.'''\n    try:\n        return x / 2\n"
        "    except ZeroDivisionError:\n        raise\n\n\n"
        "def _private(x):\n    return x\n\n\n"
        "class Thing:\n    def method(self):\n        pass\n\n    def _hidden(self):\n        pass\n"
    )
    ast.parse(source.read_text())
    found = checker.check(source.parent)
    assert [line.split(": ", 1)[1] for line in found] == [
        "bare: no docstring",
        "raising: raises but its docstring does not say so",
        "Thing.method: no docstring",
    ]
