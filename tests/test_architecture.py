"""The house's rules, held by the code's own imports: the layers (import-linter, contracts in pyproject.toml),
no import cycle among imports that run, and modules that stay small.

grimp (the graph library under import-linter) builds the graph; type-only imports (`if TYPE_CHECKING:`)
are left out because they never run. Function-local imports are in the graph: they run when called.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400  # "small modules (about 400 lines at most)"


def import_cycles(package: str) -> list[list[str]]:
    """Every import cycle among `package`'s runtime imports, as strongly connected groups of modules."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative: the graph may be deep
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycle_among_modules_that_run():
    cycles = import_cycles("labkit")
    assert not cycles, "import cycles (cut each by its cause: pass the value in, or move the shared type down):\n" + \
        "\n".join(" <-> ".join(group) for group in cycles)


def test_the_cycle_finder_finds_a_cycle_and_ignores_type_only_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "circles"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circles import b\n")
    (pkg / "b.py").write_text("def f():\n    from circles import c\n")  # function-local: it runs when called
    (pkg / "c.py").write_text("import circles.a\n")
    (pkg / "d.py").write_text(textwrap.dedent("""\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from circles import e
        """))
    (pkg / "e.py").write_text("from circles import d\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("circles") == [["circles.a", "circles.b", "circles.c"]]


def test_the_layers_hold():
    """import-linter's contracts (pyproject.toml): the layers, the foundations, sandbox apart from the server."""
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_modules_stay_small():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "labkit").rglob("*.py")}
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_big, f"split these by what they hold (at most {MAX_LINES} lines): {too_big}"


def test_every_package_says_what_it_holds_and_what_it_may_import():
    missing = []
    for init in sorted((ROOT / "labkit").rglob("__init__.py")):
        doc = init.read_text().lstrip()
        if init.parent == ROOT / "labkit":
            continue  # the public names; the layers are described in the README
        if not doc.startswith('"""') or "May import" not in doc.split('"""')[1]:
            missing.append(str(init.relative_to(ROOT)))
    assert not missing, f"no docstring saying what the package holds and what it may import: {missing}"
