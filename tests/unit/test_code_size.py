"""Size guard: no file over 800 lines and no function over 80 lines (the whole ``def``,
decorators excluded, docstring included) in the product's package and the collection's plugins.

A few exceptions may be named below, at most three, each with its reason ("data table" means
module-level literals only); an exception that no longer exceeds the limit must be removed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = (ROOT / "qualification", ROOT / "ansible_collections/vqual/qualification/plugins")
MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 80

#: ``path`` (a file) or ``path:qualified.function`` -> why it may exceed the limit.
EXCEPTIONS: dict[str, str] = {}
MAX_EXCEPTIONS = 3


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int, int]]:
    """``(qualified name, first line, line count)`` of every function, nested ones included."""
    found: list[tuple[str, int, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                found.append((name, node.lineno, node.end_lineno - node.lineno + 1))
            found += _functions(node, name + ".")
        else:
            found += _functions(node, prefix)
    return found


def offenders(trees: tuple[Path, ...] = TREES, root: Path = ROOT) -> list[tuple[str, str]]:
    """``(key, description)`` of every file and function over its limit, largest first."""
    found: list[tuple[int, str, str]] = []
    for tree in trees:
        for path in sorted(tree.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8")
            lines = len(text.splitlines())
            if lines > MAX_FILE_LINES:
                found.append((lines, rel, f"file {rel}: {lines} lines (max {MAX_FILE_LINES})"))
            for name, first, count in _functions(ast.parse(text, filename=rel)):
                if count > MAX_FUNCTION_LINES:
                    what = f"function {rel}:{first} {name}: {count} lines (max {MAX_FUNCTION_LINES})"
                    found.append((count, f"{rel}:{name}", what))
    return [(key, text) for _, key, text in sorted(found, key=lambda f: (-f[0], f[1]))]


def test_no_file_or_function_over_the_limits() -> None:
    over = [text for key, text in offenders() if key not in EXCEPTIONS]
    assert not over, f"{len(over)} over the size limits (split them):\n" + "\n".join(over)


def test_exceptions_are_few_reasoned_and_still_needed() -> None:
    assert len(EXCEPTIONS) <= MAX_EXCEPTIONS
    assert all(reason.strip() for reason in EXCEPTIONS.values())
    current = {key for key, _ in offenders()}
    assert [key for key in EXCEPTIONS if key not in current] == []


def test_the_guard_measures_whole_defs_and_files(tmp_path: Path) -> None:
    # def line + docstring + 79 statements = 81 lines: over; 80 lines: not; a long class of
    # short methods: not (only functions count); a file of 801 lines: over.
    over = "\n".join(f"    x{i} = {i}" for i in range(79))
    just = "\n".join(f"    y{i} = {i}" for i in range(78))
    methods = "\n".join(f"    def m{i}(self):\n        return {i}\n" for i in range(40))
    text = (f'def long():\n    """Doc."""\n{over}\n\n\ndef fits():\n    """Doc."""\n{just}\n\n\n'
            f"class C:\n{methods}")
    padding = MAX_FILE_LINES + 1 - len(text.splitlines())
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/big.py").write_text(text + "#\n" * padding)
    (tmp_path / "pkg/small.py").write_text(text)
    found = offenders((tmp_path / "pkg",), tmp_path)
    assert found == [
        ("pkg/big.py", "file pkg/big.py: 801 lines (max 800)"),
        ("pkg/big.py:long", "function pkg/big.py:1 long: 81 lines (max 80)"),
        ("pkg/small.py:long", "function pkg/small.py:1 long: 81 lines (max 80)"),
    ]
