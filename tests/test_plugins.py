"""
Handlers are twisted.plugin plugins: the built-ins are found, and an operator's module dropped into
a tm20/plugins/ folder on the Python path adds a command or overrides a built-in one.
"""

from __future__ import annotations

import os
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
