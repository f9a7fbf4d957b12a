#!/usr/bin/env python3
"""The size of supervisor.py: lines of code (not blank lines, comments or docstrings),
and the longest functions. The budget (issues 10 and 14): 850 lines of code with the
restart strategies and the watchdog, and no function over 40 lines.

Usage, from the repository root: ``python3 .ci/size.py [path]``.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path


def code_lines(source: str) -> set[int]:
    """The numbers of the lines that hold code: no blank line, comment or docstring."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and node.end_lineno is not None):
            docstrings.update(range(node.lineno, node.end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
            tokenize.DEDENT, tokenize.ENDMARKER}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return lines


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "supervisor.py")
    source = path.read_text(encoding="utf-8")
    lines = code_lines(source)
    functions = sorted(
        ((sum(node.lineno <= n <= (node.end_lineno or node.lineno) for n in lines), node.name)
         for node in ast.walk(ast.parse(source))
         if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))),
        reverse=True,
    )
    print(f"{path.name}: {len(lines)} lines of code ({source.count(chr(10))} in all)")
    print("longest functions: " + ", ".join(f"{name} {count}" for count, name in functions[:4]))


if __name__ == "__main__":
    main()
