"""No function of the library is longer than 80 lines.

    python tools/check_function_length.py [ROOT] [--top N]   # ROOT: default unires/

A function's length counts its lines from ``def`` to the end of its body: decorators are not
counted; its docstring, comments and blank lines inside the body are. Every function counts,
public or private, methods and nested functions too (a nested function's lines also count for
the function around it). Prints one line per function over the limit (``path:line: name: N
lines``) and exits 1 when there is any; ``--top N`` also lists the N longest.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_LINES = 80

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def function_length(fn: FunctionNode) -> int:
    """Lines from ``def`` (decorators excluded) to the last line of the body."""
    return fn.end_lineno - fn.lineno + 1


def functions(tree: ast.Module) -> Iterator[tuple[str, FunctionNode]]:
    """(qualified name, node) of every function in the module, nested ones included."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, FunctionNode]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def lengths(root: Path) -> list[tuple[int, str]]:
    """(length, ``path:line: name``) of every function under ``root``, longest first."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, fn in functions(tree):
            found.append((function_length(fn), f"{path}:{fn.lineno}: {name}"))
    return sorted(found, key=lambda item: -item[0])


def check(root: Path, max_lines: int = MAX_LINES) -> list[str]:
    """One line per function under ``root`` longer than ``max_lines``, longest first."""
    return [f"{where}: {n} lines" for n, where in lengths(root) if n > max_lines]


def main(argv: list[str]) -> int:
    """Print the functions over the limit under ``argv``'s ROOT (default: the unires package),
    with ``--top N`` the N longest too; exit 1 if any is over."""
    args = list(argv)
    top = 0
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "unires"
    found = check(root)
    for line in found:
        print(line)
    for n, where in lengths(root)[:top]:
        print(f"{where}: {n} lines", file=sys.stderr)
    print(f"{len(found)} function(s) over {MAX_LINES} lines under {root}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
