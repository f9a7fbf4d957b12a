#!/usr/bin/env python3
"""The size of supervisor.py: code tokens, lines of code, tokens per line of code, and the
longest functions, against the budget (at most 8,700 code tokens, 7.0 tokens per line of
code, no function over 40 lines of code).

Code tokens are names, operators, numbers and strings, without comments, docstrings and
layout, counted as ``shared/tools/tokens.py`` counts them, so that packing two statements
on one line, or splitting one over three, does not change the count. A line of code is a
line that holds a code token. Exits 1 if the module is over its budget.

Usage, from the repository root: ``python3 .ci/size.py [path]``.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

MAX_TOKENS = 8_700
MAX_TOKENS_PER_LINE = 7.0
MAX_FUNCTION_LINES = 40

LAYOUT = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def docstring_starts(tree: ast.Module) -> set[tuple[int, int]]:
    """Where each docstring starts: of the module, a class or a function, and the bare
    string after an assignment (an attribute's docstring)."""
    starts: set[tuple[int, int]] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for index, statement in enumerate(body + getattr(node, "orelse", [])):
            is_string = (isinstance(statement, ast.Expr)
                         and isinstance(statement.value, ast.Constant)
                         and isinstance(statement.value.value, str))
            first_of_a_definition = index == 0 and isinstance(
                node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            if is_string and (first_of_a_definition or index > 0):
                starts.add((statement.lineno, statement.col_offset))
    return starts


def code_tokens(source: str) -> list[tokenize.TokenInfo]:
    """The code tokens: no comment, docstring or layout."""
    docstrings = docstring_starts(ast.parse(source))
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [token for token in tokens
            if token.type not in LAYOUT
            and not (token.type == tokenize.STRING and token.start in docstrings)]


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "supervisor.py")
    source = path.read_text(encoding="utf-8")
    tokens = code_tokens(source)
    lines = {token.start[0] for token in tokens}
    functions = sorted(
        ((sum(node.lineno <= line <= (node.end_lineno or node.lineno) for line in lines), node.name)
         for node in ast.walk(ast.parse(source))
         if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))),
        reverse=True,
    )
    per_line = len(tokens) / len(lines)
    print(f"{path.name}: {len(tokens)} code tokens (budget {MAX_TOKENS:,}), {len(lines)} lines of"
          f" code, {per_line:.2f} tokens per line (budget {MAX_TOKENS_PER_LINE})")
    print("longest functions (lines of code): "
          + ", ".join(f"{name} {count}" for count, name in functions[:4]))
    over = (len(tokens) > MAX_TOKENS or per_line > MAX_TOKENS_PER_LINE
            or functions[0][0] > MAX_FUNCTION_LINES)
    if over:
        print("over the budget")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
