"""
No import cycles in C{tm20}: every import counts (module level, C{if TYPE_CHECKING:}, inside a
function), read from the source by L{tests.importgraph}.  The checker itself is tested on a
small package made here, so that a broken checker cannot pass silently.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.importgraph import cycles, importGraph, shortestCycleThrough

ROOT = Path(__file__).resolve().parents[1]


class Tm20ImportsTests(SynchronousTestCase):
    def test_noCycles(self) -> None:
        graph = importGraph(ROOT, "tm20")
        self.assertGreater(len(graph), 50)  # the package was read
        found = cycles(graph)
        self.assertEqual(
            [" -> ".join(shortestCycleThrough(graph, c[0])) for c in found],
            [],
            "import cycles in tm20 (break them: move the shared part down, or depend on an"
            " interface)",
        )

    def test_doorsAreApart(self) -> None:
        """
        The two HTTP doors share nothing but what lies below them (L{tm20.services},
        L{tm20.views}, ...): C{tm20.console} imports nothing of C{tm20.api}, nor the other way.
        """
        graph = importGraph(ROOT, "tm20")
        for door, other in (("tm20.console", "tm20.api"), ("tm20.api", "tm20.console")):
            modules = [m for m in graph if m == door or m.startswith(door + ".")]
            self.assertGreater(len(modules), 3, door)  # the door was read
            for module in modules:
                crossing = sorted(
                    m for m in graph[module] if m == other or m.startswith(other + ".")
                )
                self.assertEqual(crossing, [], f"{module} imports {other}")

    def test_protocolIsPure(self) -> None:
        """C{tm20.protocol} imports nothing else of ours (design.md)."""
        graph = importGraph(ROOT, "tm20")
        for module, imported in graph.items():
            if module.startswith("tm20.protocol"):
                outside = sorted(m for m in imported if not m.startswith("tm20.protocol"))
                self.assertEqual(outside, [], module)


class CheckerTests(SynchronousTestCase):
    def write(self, files: dict[str, str]) -> Path:
        root = Path(self.mktemp())
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    def test_findsEveryKindOfImport(self) -> None:
        root = self.write(
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from pkg.b import B\n",
                "pkg/b.py": "def f():\n    from . import c\n",
                "pkg/c.py": "import pkg.a\n",
                "pkg/d.py": "from pkg import a\n",
                "pkg/sub/__init__.py": "from ..d import x\n",
            }
        )
        graph = importGraph(root, "pkg")
        self.assertEqual(graph["pkg.a"], {"pkg.b"})
        self.assertEqual(graph["pkg.b"], {"pkg.c"})
        self.assertEqual(graph["pkg.d"], {"pkg.a"})
        self.assertEqual(graph["pkg.sub"], {"pkg.d"})
        self.assertEqual(cycles(graph), [["pkg.a", "pkg.b", "pkg.c"]])
        self.assertEqual(shortestCycleThrough(graph, "pkg.a"), ["pkg.a", "pkg.b", "pkg.c", "pkg.a"])

    def test_acyclic(self) -> None:
        root = self.write({"pkg/__init__.py": "", "pkg/a.py": "import pkg.b\n", "pkg/b.py": ""})
        self.assertEqual(cycles(importGraph(root, "pkg")), [])
