"""Every public function of the library has a docstring, and those that raise say so.

    python tools/check_docstrings.py [ROOT]     # ROOT: the package folder, default unires/

Public: a module-level function or a method of a module-level class whose name (and class
name) does not start with "_", in a module whose path has no part starting with "_" other
than ``__init__.py``. Nested functions are private to their function. "Raises" means a
``raise X`` statement in the function's own body (not a bare ``raise``, not in a nested
function); its docstring must then contain the word "raise" (e.g. a ``Raises:`` section).
Prints one line per problem (``path:line: name: what``) and exits 1 when there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _own_nodes(fn: FunctionNode) -> Iterator[ast.AST]:
    """The nodes of ``fn``'s body, not descending into nested functions or classes."""
    stack = list(fn.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.append(child)


def raises(fn: FunctionNode) -> bool:
    """True when ``fn`` itself raises an exception (a ``raise X``; a bare re-raise does not
    count)."""
    return any(isinstance(n, ast.Raise) and n.exc is not None for n in _own_nodes(fn))


def public_functions(tree: ast.Module) -> Iterator[tuple[str, FunctionNode]]:
    """(qualified name, node) of the module's public functions and public classes' methods."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                is_function = isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                if is_function and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def problems(path: Path) -> list[str]:
    """The docstring problems of one source file, one line each."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for name, fn in public_functions(tree):
        doc = ast.get_docstring(fn)
        if not doc:
            found.append(f"{path}:{fn.lineno}: {name}: no docstring")
        elif raises(fn) and "raise" not in doc.lower():
            found.append(f"{path}:{fn.lineno}: {name}: raises but its docstring does not say so")
    return found


def is_public_module(path: Path, root: Path) -> bool:
    """False for modules under a private part (``_x.py``, ``_dir/``), ``__init__`` aside."""
    parts = path.relative_to(root).parts
    return not any(p.startswith("_") and p != "__init__.py" for p in parts)


def check(root: Path) -> list[str]:
    """Every problem under ``root`` (a package folder), sorted by file."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if is_public_module(path, root):
            found.extend(problems(path))
    return found


def main(argv: list[str]) -> int:
    """Print the problems under ``argv[0]`` (default: the unires package); exit 1 if any."""
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "unires"
    found = check(root)
    for line in found:
        print(line)
    count = sum(1 for p in root.rglob("*.py") if is_public_module(p, root))
    print(f"{len(found)} problem(s) in {count} modules under {root}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
