"""
Handlers are twisted.plugin plugins: the built-ins are found, and an operator's module dropped into
a tm20/plugins/ folder on the Python path adds a command or overrides a built-in one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tm20.dispatch import Dispatcher, chooseHandlers, isBuiltin
from tm20.interfaces import ICommandHandler

CUSTOM_PLUGIN = textwrap.dedent(
    """
    from twisted.plugin import IPlugin
    from zope.interface import implementer
    from tm20.interfaces import ICommandHandler


    @implementer(IPlugin, ICommandHandler)
    class Temperature:
        command = "sendtemp"

        def handle(self, context, session, message):
            return {"result": True, "echo": message.fields.get("value")}


    @implementer(IPlugin, ICommandHandler)
    class GrantingQr:
        command = "sendqrcode"

        def handle(self, context, session, message):
            return {"result": True, "access": 1, "message": "welcome " + message.record}


    temperature = Temperature()
    qr = GrantingQr()
    """
)

LIST_HANDLERS = (
    "from tm20.dispatch import Dispatcher, isBuiltin\n"
    "d = Dispatcher.fromPlugins()\n"
    "for name, h in sorted(d.handlers.items()):\n"
    "    print(name, 'builtin' if isBuiltin(h) else type(h).__module__)\n"
)


def writePlugin(root: Path) -> Path:
    root = root.resolve()
    plugins = root / "tm20" / "plugins"
    plugins.mkdir(parents=True)
    # A drop-in folder: no __init__.py (tm20.plugins extends its __path__ over sys.path).
    (plugins / "site_custom.py").write_text(CUSTOM_PLUGIN)
    return root


class BuiltinHandlersTests(SynchronousTestCase):
    def test_builtinsFound(self) -> None:
        handlers = Dispatcher.fromPlugins().handlers
        for name in ("reg", "sendlog", "senduser", "sendqrcode"):
            self.assertIn(name, handlers)
            verifyObject(ICommandHandler, handlers[name])

    def test_operatorHandlerWinsRegardlessOfOrder(self) -> None:
        builtin = Dispatcher.fromPlugins().handlers["sendqrcode"]

        class Custom:
            command = " SendQrCode "

        custom = Custom()
        self.assertTrue(isBuiltin(builtin))
        self.assertFalse(isBuiltin(custom))
        self.assertIs(chooseHandlers([builtin, custom])["sendqrcode"], custom)
        self.assertIs(chooseHandlers([custom, builtin])["sendqrcode"], custom)


class DropInPluginTests(SynchronousTestCase):
    def test_dropInFolderAddsAndOverrides(self) -> None:
        root = writePlugin(Path(self.mktemp()))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.getcwd()]))
        out = subprocess.run(
            [sys.executable, "-c", LIST_HANDLERS],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split("\n")
        self.assertIn("sendtemp tm20.plugins.site_custom", out)
        self.assertIn("sendqrcode tm20.plugins.site_custom", out)
        self.assertIn("sendlog builtin", out)
        self.assertIn("reg builtin", out)


README = Path(__file__).resolve().parents[1] / "README.md"
_EXAMPLE = re.compile(
    r"<!-- handler-plugin-example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)\n```", re.S
)

#: Runs in a subprocess with the example's folder on the path: a terminal on a real server
#: (in-memory socket, synchronous SQLite store) sends what the example handles.
RUN_EXAMPLE = textwrap.dedent(
    """
    import json, sys
    from twisted.internet import reactor
    from twisted.internet.task import Clock
    from tests.memoryws import MemoryTerminal
    from tests.syncstore import syncSQLiteStore
    from tm20.config import ServerConfig
    from tm20.dispatch import isBuiltin
    from tm20.service import buildServer

    clock = Clock()
    clock.advance(1_777_550_377)
    server = buildServer(ServerConfig(), reactor, syncSQLiteStore(sys.argv[1], clock), clock=clock)
    handlers = server.factory.dispatcher.handlers
    print(json.dumps({n: type(h).__module__ for n, h in handlers.items() if not isBuiltin(h)}))
    term = MemoryTerminal(server.factory)
    for frame in (
        {"cmd": "sendtemp", "sn": "QR1", "temp": 36.6},
        {"cmd": "reg", "sn": "QR1", "devinfo": {"modelname": "tfs30"}},
        {"cmd": "sendqrcode", "sn": "QR1", "record": "VISIT-42"},
        {"cmd": "sendqrcode", "sn": "QR1", "record": "NOBODY"},
        {"cmd": "sendtemp", "sn": "QR1", "temp": 36.6},
    ):
        term.send(frame)
        print(json.dumps(term.messages()))
    """
)


def readmeHandlerExample() -> tuple[str, str]:
    """The handler plugin example's path (under a site folder) and code, from README.md."""
    match = _EXAMPLE.search(README.read_text(encoding="utf-8"))
    assert match is not None, "the handler plugin example is missing from README.md"
    return match.group("path"), match.group("code") + "\n"


class ReadmeHandlerExampleTests(SynchronousTestCase):
    """README's "Writing a handler plugin" example, as written."""

    def writeExample(self) -> tuple[Path, Path]:
        relative, code = readmeHandlerExample()
        site = Path(self.mktemp()).resolve()
        path = site / relative
        path.parent.mkdir(parents=True)
        path.write_text(code, encoding="utf-8")
        return site, path

    def test_answersTerminals(self) -> None:
        site, _ = self.writeExample()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.getcwd()]))
        database = str(Path(self.mktemp()).resolve()) + ".sqlite3"
        lines = subprocess.run(
            [sys.executable, "-c", RUN_EXAMPLE, database],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.splitlines()
        self.assertEqual(
            json.loads(lines[0]),
            {"sendqrcode": "tm20.plugins.site_handlers", "sendtemp": "tm20.plugins.site_handlers"},
        )
        unregistered, registered, visitor, stranger, temperature = map(json.loads, lines[1:])
        self.assertEqual(unregistered, [{"ret": "sendtemp", "result": False, "reason": 1}])
        self.assertIs(registered[0]["result"], True)
        self.assertEqual(
            visitor, [{"ret": "sendqrcode", "result": True, "access": 1, "message": "welcome"}]
        )
        self.assertEqual(
            stranger, [{"ret": "sendqrcode", "result": True, "access": 0, "message": "denied"}]
        )
        self.assertEqual(temperature, [{"ret": "sendtemp", "result": True}])

    def test_typeChecks(self) -> None:
        """mypy (with mypy-zope, the project's settings) accepts the example as written."""
        _, path = self.writeExample()
        root = Path(__file__).resolve().parents[1]
        checked = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--config-file",
                str(root / "pyproject.toml"),
                "--no-error-summary",
                str(path),
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
        )
        self.assertEqual((checked.returncode, checked.stdout), (0, ""), checked.stderr)
