"""The library's code checks (tools/): every public function has a docstring and those that
raise say so (check_docstrings.py); no function is over 80 lines (check_function_length.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tool", ["check_docstrings", "check_function_length"])
def test_the_library_passes_the_code_check(tool, load_tool):
    """Every public function has a docstring naming what it raises; none is over 80 lines."""
    problems = load_tool(tool).check(ROOT / "unires")
    assert not problems, "\n".join(problems)


def test_the_checker_finds_missing_docstrings_and_unstated_raises(tmp_path, load_tool):
    checker = load_tool("check_docstrings")
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


def test_the_checker_counts_from_def_to_the_end_of_the_body(tmp_path, load_tool):
    checker = load_tool("check_function_length")
    source = tmp_path / "pkg" / "m.py"
    source.parent.mkdir()
    body, nested = "    x = 1\n" * 3, "        x = 1\n" * 3
    source.write_text(
        "import functools\n\n\n"
        "@functools.cache\n@functools.wraps(print)\n"  # decorators do not count
        f"def short():\n{body}\n\n"  # 4 lines
        f"class Thing:\n    def method(self):\n{nested}        return x\n\n\n"  # 5 lines
        f"def outer():\n    def inner():\n{nested * 2}\n    return inner\n"  # 10 and 7 lines
    )
    assert [(n, where.split(": ", 1)[1]) for n, where in checker.lengths(source.parent)] == [
        (10, "outer"),
        (7, "outer.inner"),
        (5, "Thing.method"),
        (4, "short"),
    ]
    assert [line.split(": ", 1)[1] for line in checker.check(source.parent, 6)] == [
        "outer: 10 lines",
        "outer.inner: 7 lines",
    ]
