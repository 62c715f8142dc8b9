"""
Terminal identity: an approved terminal is bound to the hardware it first registered with; a
claim of its C{sn} with other hardware (or without its secret) is refused, flagged and logged,
and leaves the real terminal connected.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.securitysupport import connectWS, startServerOn
from tm20.model import Terminal
from tm20.protocol.messages import Register
from tm20.services.identity import (
    REASON_IDENTITY,
    REASON_SECRET,
    IdentityClaim,
    hashSecret,
    identityMismatch,
    normaliseMac,
    secretMatches,
)
from tm20.terminal.protocol import splitSecretPath

MAC = "00-01-F5-02-7D-5F"


def reg(sn: str, cpusn: str | None = None, mac: str | None = None, model: str = "tfs30") -> Any:
    devinfo: dict[str, Any] = {"modelname": model}
    if mac is not None:
        devinfo["mac"] = mac
    frame: dict[str, Any] = {"cmd": "reg", "sn": sn, "devinfo": devinfo}
    if cpusn is not None:
        frame["cpusn"] = cpusn
    return frame


class IdentityTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def setUp(self) -> Any:
        self.running = yield startServerOn(self)
        self.store = self.running.context.store
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    @inlineCallbacks
    def attempt(self, frame: Any, path: str = "/pub/chat") -> Any:
        """Connect, send C{frame}; return the client and the reply."""
        client = yield connectWS(self, self.running.port, path=path)
        reply = yield client.request(frame)
        return client, reply

    @inlineCallbacks
    def assertRefused(self, frame: Any, reason: str, path: str = "/pub/chat") -> Any:
        client, reply = yield self.attempt(frame, path)
        self.assertEqual(reply, {"ret": "reg", "result": False, "reason": reason})
        _, code, _ = yield client.closed
        self.assertEqual(code, 4003)

    @inlineCallbacks
    def test_impostorWithOtherCpusnRefusedFlaggedRealTerminalUndisturbed(self) -> Any:
        real, reply = yield self.attempt(reg("ID1", cpusn="CPU-A", mac=MAC))
        self.assertIs(reply["result"], True)
        terminal = yield self.store.getTerminal("ID1")
        self.assertEqual((terminal.boundCpusn, terminal.boundMac), ("CPU-A", MAC))
        self.assertIsNotNone(terminal.boundAt)
        self.assertFalse(terminal.flagged)
        session = self.running.context.registry.get("ID1")

        yield self.assertRefused(reg("ID1", cpusn="CPU-B", mac=MAC, model="evil"), REASON_IDENTITY)

        terminal = yield self.store.getTerminal("ID1")
        self.assertTrue(terminal.flagged)
        record = dict(terminal.identityMismatch)
        self.assertIsInstance(record.pop("at"), str)
        self.assertEqual(
            record,
            {
                "problem": "cpusn differs",
                "claimedCpusn": "CPU-B",
                "claimedMac": MAC,
                "peer": "127.0.0.1",
                "secretGiven": False,
            },
        )
        self.assertEqual(terminal.modelname, "tfs30")  # nothing the impostor sent was stored
        self.assertEqual(terminal.boundCpusn, "CPU-A")
        # The real terminal is still the one connected, and still served.
        self.assertIs(self.running.context.registry.get("ID1"), session)
        ack = yield real.request(
            {
                "cmd": "sendlog",
                "sn": "ID1",
                "record": [{"enrollid": 1, "time": "2024-01-15 10:00:00"}],
            }
        )
        self.assertIs(ack["result"], True)
        logged = [e for e in self.events if e.get("flagged") and e.get("sn") == "ID1"]
        self.assertEqual(len(logged), 1)
        self.assertIn("CPU-B", formatEvent(logged[0]))

    @inlineCallbacks
    def test_sameHardwareReconnects(self) -> Any:
        first, reply = yield self.attempt(reg("ID2", cpusn="CPU-A", mac=MAC))
        self.assertIs(reply["result"], True)
        second, reply = yield self.attempt(reg("ID2", cpusn="CPU-A", mac="00:01:f5:02:7d:5f"))
        self.assertIs(reply["result"], True)  # newest connection wins, as before
        _, code, _ = yield first.closed
        self.assertEqual(code, 4002)

    @inlineCallbacks
    def test_missingCpusnRefusedWhenBoundByCpusn(self) -> Any:
        _, reply = yield self.attempt(reg("ID3", cpusn="CPU-A", mac=MAC))
        self.assertIs(reply["result"], True)
        yield self.assertRefused(reg("ID3", mac=MAC), REASON_IDENTITY)
        terminal = yield self.store.getTerminal("ID3")
        self.assertEqual(terminal.identityMismatch["problem"], "cpusn missing")

    @inlineCallbacks
    def test_firmwareWithoutCpusnBoundByMac(self) -> Any:
        _, reply = yield self.attempt(reg("TH900", mac=MAC))
        self.assertIs(reply["result"], True)
        terminal = yield self.store.getTerminal("TH900")
        self.assertEqual((terminal.boundCpusn, terminal.boundMac), (None, MAC))
        _, reply = yield self.attempt(reg("TH900", mac="00:01:F5:02:7D:5F"))
        self.assertIs(reply["result"], True)
        yield self.assertRefused(reg("TH900", mac="00-01-F5-02-7D-60"), REASON_IDENTITY)
        yield self.assertRefused(reg("TH900"), REASON_IDENTITY)
        terminal = yield self.store.getTerminal("TH900")
        self.assertEqual(terminal.identityMismatch["problem"], "mac missing")

    @inlineCallbacks
    def test_resetLetsNewHardwareBind(self) -> Any:
        _, reply = yield self.attempt(reg("ID4", cpusn="OLD"))
        self.assertIs(reply["result"], True)
        yield self.assertRefused(reg("ID4", cpusn="NEW"), REASON_IDENTITY)
        terminal = yield self.store.resetTerminalIdentity("ID4")
        self.assertEqual(
            (terminal.boundCpusn, terminal.boundMac, terminal.flagged), (None, None, False)
        )
        _, reply = yield self.attempt(reg("ID4", cpusn="NEW"))
        self.assertIs(reply["result"], True)
        terminal = yield self.store.getTerminal("ID4")
        self.assertEqual(terminal.boundCpusn, "NEW")
        self.assertIsNone((yield self.store.resetTerminalIdentity("NO-SUCH")))

    @inlineCallbacks
    def test_secretRequiredOnceSet(self) -> Any:
        secret = "Xq7-secret-value"
        _, reply = yield self.attempt(reg("SEC1", cpusn="C"))
        self.assertIs(reply["result"], True)
        terminal = yield self.store.setTerminalSecret("SEC1", hashSecret(secret))
        self.assertEqual(terminal.secretHash, hashSecret(secret))
        yield self.assertRefused(reg("SEC1", cpusn="C"), REASON_SECRET)
        flagged = yield self.store.getTerminal("SEC1")
        self.assertEqual(
            (flagged.identityMismatch["problem"], flagged.identityMismatch["secretGiven"]),
            ("secret missing", False),
        )
        yield self.assertRefused(reg("SEC1", cpusn="C"), REASON_SECRET, path="/t/wrong")
        client, reply = yield self.attempt(reg("SEC1", cpusn="C"), path=f"/t/{secret}")
        self.assertIs(reply["result"], True)
        self.assertEqual(self.running.context.registry.get("SEC1").path, "/t/***")
        # The right secret does not excuse other hardware.
        yield self.assertRefused(reg("SEC1", cpusn="OTHER"), REASON_IDENTITY, path=f"/t/{secret}")
        # The secret is in no log event, whatever its level.
        for event in self.events:
            self.assertNotIn(secret, repr(event) + formatEvent(event))
        # Removing the secret opens the plain path again.
        yield self.store.setTerminalSecret("SEC1", None)
        _, reply = yield self.attempt(reg("SEC1", cpusn="C"))
        self.assertIs(reply["result"], True)

    @inlineCallbacks
    def test_retryingImpostorCostsNoWrites(self) -> Any:
        _, reply = yield self.attempt(reg("ID5", cpusn="CPU-A"))
        self.assertIs(reply["result"], True)
        writes: list[str] = []
        original = self.store.flagTerminal

        def counting(sn: str, mismatch: Any) -> Any:
            writes.append(sn)
            return original(sn, mismatch)

        self.store.flagTerminal = counting
        for _ in range(3):
            yield self.assertRefused(reg("ID5", cpusn="CPU-B"), REASON_IDENTITY)
        self.assertEqual(writes, ["ID5"])
        yield self.assertRefused(reg("ID5", cpusn="CPU-C"), REASON_IDENTITY)
        self.assertEqual(writes, ["ID5", "ID5"])

    @inlineCallbacks
    def test_pendingTerminalBoundWhenApproved(self) -> Any:
        yield self.running.service.stopService()
        self.running = yield startServerOn(self, requireWhitelist=True)
        self.store = self.running.context.store
        _, reply = yield self.attempt(reg("NEW", cpusn="FIRST"))
        self.assertIs(reply["result"], False)
        terminal = yield self.store.getTerminal("NEW")
        self.assertIsNone(terminal.boundCpusn)  # pending: not bound to whoever asked first
        yield self.store.updateTerminal("NEW", {"approved": True})
        _, reply = yield self.attempt(reg("NEW", cpusn="REAL"))
        self.assertIs(reply["result"], True)
        self.assertEqual((yield self.store.getTerminal("NEW")).boundCpusn, "REAL")

    @inlineCallbacks
    def test_concurrentFirstRegistrationsBindOnce(self) -> Any:
        a = yield connectWS(self, self.running.port)
        b = yield connectWS(self, self.running.port)
        replies = yield gatherResults(
            [a.request(reg("RACE", cpusn="A")), b.request(reg("RACE", cpusn="B"))]
        )
        results = sorted(r["result"] for r in replies)
        self.assertEqual(results, [False, True])
        terminal = yield self.store.getTerminal("RACE")
        winner = "A" if replies[0]["result"] else "B"
        self.assertEqual(terminal.boundCpusn, winner)


class PureIdentityTests(SynchronousTestCase):
    def test_secretHashing(self) -> None:
        h = hashSecret("s3cret")
        self.assertEqual(len(h), 64)
        self.assertTrue(secretMatches(h, "s3cret"))
        self.assertTrue(secretMatches(h.upper(), "s3cret"))
        self.assertFalse(secretMatches(h, "s3cre"))
        self.assertFalse(secretMatches(h, None))
        self.assertTrue(secretMatches(None, None))
        self.assertTrue(secretMatches(None, "anything"))

    def test_macNormalised(self) -> None:
        self.assertEqual(normaliseMac("00-01-f5-02-7d-5f"), "0001F5027D5F")
        self.assertEqual(normaliseMac("0001.F502.7D5F"), "0001F5027D5F")
        self.assertIsNone(normaliseMac(" "))
        self.assertIsNone(normaliseMac(None))

    def test_mismatch(self) -> None:
        byCpu = Terminal(sn="S", boundCpusn="A", boundMac=MAC)
        self.assertIsNone(identityMismatch(byCpu, IdentityClaim("A", MAC.replace("-", ":"))))
        # A replayed cpusn with another mac is other hardware.
        self.assertEqual(identityMismatch(byCpu, IdentityClaim("A", "other mac")), "mac differs")
        self.assertEqual(identityMismatch(byCpu, IdentityClaim("A", None)), "mac missing")
        cpuOnly = Terminal(sn="S", boundCpusn="A")
        self.assertIsNone(identityMismatch(cpuOnly, IdentityClaim("A", "any mac")))
        self.assertEqual(identityMismatch(byCpu, IdentityClaim("B", MAC)), "cpusn differs")
        self.assertEqual(identityMismatch(byCpu, IdentityClaim(None, MAC)), "cpusn missing")
        byMac = Terminal(sn="S", boundMac=MAC)
        self.assertIsNone(identityMismatch(byMac, IdentityClaim("new cpusn", MAC.lower())))
        self.assertEqual(identityMismatch(byMac, IdentityClaim(None, "x")), "mac differs")
        self.assertIsNone(identityMismatch(Terminal(sn="S"), IdentityClaim("any", None)))

    def test_claimFromRegister(self) -> None:
        claim = IdentityClaim.fromRegister(Register("S", " C1 ", {"mac": " AA-BB "}))
        self.assertEqual(claim, IdentityClaim("C1", "AA-BB"))
        self.assertTrue(IdentityClaim.fromRegister(Register("S", "", {"mac": ""})).empty)

    def test_secretPath(self) -> None:
        self.assertEqual(splitSecretPath("/t/abc"), ("/t/***", "abc"))
        self.assertEqual(splitSecretPath("/t/abc/"), ("/t/***", "abc"))
        self.assertEqual(splitSecretPath("/t/abc?x=1"), ("/t/***", "abc"))
        self.assertEqual(splitSecretPath("/pub/chat"), ("/pub/chat", None))
        self.assertEqual(splitSecretPath("/t/"), ("/t/", None))
        # not a secret path, but what follows /t/ may be a secret: not shown
        self.assertEqual(splitSecretPath("/t/a/b"), ("/t/***", None))
