"""Largest module, class and function of the project's Python code, and what exceeds the limits.

    python3 tools/sizes.py [ROOT]

Limits (DEVELOPERS.md): modules under 600 lines, classes under 300, functions
under 60 (tables and generated data excepted). Prints each largest and every
one over its limit; exit status 0 (a report, not a gate).
"""
from __future__ import annotations
import ast, sys
from pathlib import Path

LIMITS = {"module": 600, "class": 300, "function": 60}
DIRS = ("nfclease", "conformance", "load", "reports", "strategies")

def sizes(root: Path):
    for d in DIRS:
        for path in sorted((root / d).rglob("*.py")):
            rel = str(path.relative_to(root))
            text = path.read_text(encoding="utf-8")
            yield "module", rel, len(text.splitlines())
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef):
                    yield "class", f"{rel}:{node.name}", node.end_lineno - node.lineno + 1
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield "function", f"{rel}:{node.name}", node.end_lineno - node.lineno + 1

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
rows = list(sizes(root))
for kind in LIMITS:
    of = sorted((r for r in rows if r[0] == kind), key=lambda r: -r[2])
    print(f"largest {kind}: {of[0][1]} {of[0][2]}")
    over = [r for r in of if r[2] > LIMITS[kind]]
    print(f"  over {LIMITS[kind]}: {len(over)}")
    for r in over:
        print(f"    {r[2]:5d} {r[1]}")
