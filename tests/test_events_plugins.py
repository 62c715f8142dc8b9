"""
The sink plugin example of README.md ("Writing a sink plugin"), run as written: dropped into a
C{tm20/plugins/} folder on the Python path of a real C{twistd tm20}, fed by the sink runner while
a simulated terminal punches, posting to a fake ERPNext on loopback that fails once, then
accepts: every punch arrives, in order.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.test_twistd import TWISTD, freePort, waitForPort
from tests.webhookreceiver import Receiver
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal

README = Path(__file__).resolve().parents[1] / "README.md"
_EXAMPLE = re.compile(
    r"<!-- sink-plugin-example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)\n```", re.S
)


def readmeExample() -> tuple[str, str]:
    """The example's file path (under a site folder) and its code, from README.md."""
    match = _EXAMPLE.search(README.read_text(encoding="utf-8"))
    assert match is not None, "the sink plugin example is missing from README.md"
    return match.group("path"), match.group("code") + "\n"


class FakeERPNext(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.checkins: list[dict[str, str]] = []
        self.authorizations: list[str] = []
        self.failNext = 1

    def render_POST(self, request: Any) -> bytes:
        self.authorizations.append(request.getHeader(b"authorization").decode())
        if self.failNext:
            self.failNext -= 1
            request.setResponseCode(500)
            return b'{"exc": "the database is busy"}'
        self.checkins.append({k.decode(): v[-1].decode() for k, v in request.args.items()})
        return b'{"message": {"name": "EMP-CKIN-0001"}}'


class SinkPluginExampleTests(TestCase):
    timeout = 120

    @inlineCallbacks
    def test_readmeExampleDeliversEveryPunch(self) -> Any:
        relative, code = readmeExample()
        site = Path(self.mktemp()).resolve()
        path = site / relative
        path.parent.mkdir(parents=True)
        path.write_text(code, encoding="utf-8")

        erp = FakeERPNext()
        listening = reactor.listenTCP(0, Site(erp), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        erpURL = f"http://127.0.0.1:{listening.getHost().port}"

        port = freePort()
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(site), os.getcwd()]),
            ERPNEXT_URL=erpURL,
            ERPNEXT_API_TOKEN="key:secret",
            TM20_WEBHOOK_RETRY_SCHEDULE="0.1s,0.1s,0.1s",
        )
        log = (workdir / "twistd.log").open("ab")
        proc = subprocess.Popen(
            [
                TWISTD,
                "-n",
                "--pidfile=",
                "tm20",
                "--port",
                f"tcp:{port}:interface=127.0.0.1",
                "--database",
                "sqlite:" + str(workdir / "tm20.sqlite3"),
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        yield threads.deferToThread(waitForPort, port, proc)

        terminal = SimulatedTerminal("ERP0000001", users=3, logs=0)
        connection = TerminalConnection(
            terminal, f"ws://127.0.0.1:{port}/pub/chat", reactor=reactor
        )
        connection.start()
        self.addCleanup(connection.disconnect)
        yield connection.whenRegistered()
        punches = [(1, "2026-04-30 08:00:00", 0), (2, "2026-04-30 08:01:00", 0)]
        punches.append((1, "2026-04-30 17:30:00", 1))
        for enrollid, time, inout in punches:
            connection.punch(enrollid, time, inout=inout)
        yield connection.whenAllLogsAcknowledged()
        waiter = Receiver("whsec_" + "A" * 32)  # only for its polling helper
        yield waiter.until(lambda: len(erp.checkins) >= 3, "three check-ins", 60)
        self.assertEqual(
            erp.checkins,
            [
                {
                    "employee_field_value": str(enrollid),
                    "timestamp": time,
                    "device_id": "ERP0000001",
                    "log_type": "OUT" if inout else "IN",
                }
                for enrollid, time, inout in punches
            ],
        )
        self.assertTrue(all(a == "token key:secret" for a in erp.authorizations))
        self.assertGreaterEqual(len(erp.authorizations), 4)  # the refused first attempt
        proc.terminate()
        yield threads.deferToThread(proc.wait, 30)
        output = (workdir / "twistd.log").read_text()
        self.assertNotIn("Traceback", output)
