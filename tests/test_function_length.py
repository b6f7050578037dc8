"""No function of the library is over 80 lines (tools/check_function_length.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location(
        "check_function_length", ROOT / "tools/check_function_length.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_no_function_is_over_80_lines():
    problems = _checker().check(ROOT / "unires")
    assert not problems, "\n".join(problems)


def test_the_checker_counts_from_def_to_the_end_of_the_body(tmp_path):
    checker = _checker()
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
