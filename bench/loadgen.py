"""
The load-generator process: C{python -m bench.loadgen}, launched several times by the driver.

It holds a share of the simulated terminals (lean WebSocket clients, L{bench.wsclient}) and is
driven over stdio with one JSON object per line; it answers each with one JSON line:

  - C{{"op":"connect", "host", "port", "prefix", "first", "count", "source", ...}}: connect and
    register C{count} terminals (sn C{prefix + first..}), all at once, from the source address
    C{source}; failed attempts are retried (C{maxAttempts}, C{retryDelay}), as terminals do.
  - C{{"op":"storm"}}: drop every connection at once and reconnect them all.
  - C{{"op":"ingest", "seconds", "batch"}}: every terminal sends C{sendlog} batches of C{batch}
    records, each after the previous one's ack, for C{seconds}.
  - C{{"op":"soak", "seconds", "interval"}}: every terminal sends one record every C{interval}.
  - C{{"op":"hold", "sn", "logs", ...}}: one terminal (the project's L{SimulatedTerminal})
    holding C{logs} stored logs connects and answers the server's C{getalllog} paging.
  - C{{"op":"push", "batch"}}: that terminal pushes its logs as C{sendlog} batches.
  - C{{"op":"cpu"}}, C{{"op":"quit"}}.

Every terminal answers the server's commands (C{opendoor}, the C{gettime} probe, anything else
with C{result:true}).  Every wait is bounded by the op's C{timeout}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet import stdio
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from bench.procinfo import raiseOpenFilesLimit
from bench.wsclient import LeanWebSocket

reactor: Any = _reactor

_BASE = datetime(2025, 1, 6, 7, 0, 0)
_times: dict[int, str] = {}


def logTime(second: int) -> str:
    """C{YYYY-MM-DD HH:MM:SS} of C{_BASE} plus C{second} seconds (cached)."""
    text = _times.get(second)
    if text is None:
        text = (_BASE + timedelta(seconds=second)).strftime("%Y-%m-%d %H:%M:%S")
        _times[second] = text
    return text


def regFrame(sn: str) -> bytes:
    """A C{reg} frame with the C{devinfo} a TH900 sends."""
    devinfo = {
        "modelname": "tfs30",
        "usersize": 3000,
        "fpsize": 3000,
        "cardsize": 3000,
        "pwdsize": 3000,
        "logsize": 100000,
        "useduser": 0,
        "usedfp": 0,
        "usedcard": 0,
        "usedpwd": 0,
        "usedlog": 0,
        "usednewlog": 0,
        "fpalgo": "thbio3.0",
        "firmware": "TH900_click V5.0",
        "time": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "mac": "00-01-" + "-".join(f"{b:02X}" for b in sn.encode()[-4:].rjust(4, b"0")),
    }
    return json.dumps({"cmd": "reg", "sn": sn, "devinfo": devinfo}).encode()


def sendlogFrame(sn: str, first: int, count: int) -> bytes:
    """A C{sendlog} batch of C{count} records numbered from C{first} (each unique per sn)."""
    records = ",".join(
        f'{{"enrollid":{n % 1000 + 1},"time":"{logTime(n // 1000)}","mode":1,'
        f'"inout":{n & 1},"event":0}}'
        for n in range(first, first + count)
    )
    return (
        f'{{"cmd":"sendlog","sn":"{sn}","count":{count},"logindex":{first},"record":[{records}]}}'
    ).encode()


class _Factory(ClientFactory):
    """One connection attempt of one terminal; callbacks of a stale attempt are ignored."""

    def __init__(self, term: Term, attempt: int) -> None:
        self.term = term
        self.attempt = attempt

    def buildProtocol(self, addr: Any) -> LeanWebSocket:
        term = self.term
        attempt = self.attempt

        def opened() -> None:
            if term.attempt == attempt:
                term.opened()
            else:
                ws.abort()

        def closed(reason: str) -> None:
            if term.attempt == attempt:
                term.closed(reason)

        ws = LeanWebSocket(
            f"{term.worker.host}:{term.worker.port}", "/", opened, term.received, closed
        )
        if term.attempt == attempt:
            term.ws = ws
        return ws

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if self.term.attempt == self.attempt:
            self.term.closed(f"connect failed: {reason.getErrorMessage()}")


class Term:
    """One simulated terminal of the load generator."""

    def __init__(self, worker: Worker, sn: str, sim: Any = None, source: str = "") -> None:
        self.worker = worker
        self.sn = sn
        self.source = source
        self.sim = sim
        self.ws: LeanWebSocket | None = None
        self.registered = False
        self.connecting = False
        self.attempts = 0
        self.attempt = 0
        self.failures = 0
        self.attemptStart = 0.0
        self.registeredAt = 0.0
        self.regTimer: IDelayedCall | None = None
        self.retryTimer: IDelayedCall | None = None
        self.counter = 0
        self.sentAt = 0.0
        self.inFlight = 0
        self.mode = "idle"
        self.onAck: Callable[[Term, dict[str, Any]], None] | None = None
        self.commands = 0

    # connection lifecycle

    def connect(self) -> None:
        self.retryTimer = None
        self.connecting = True
        self.attempts += 1
        self.attempt += 1
        self.attemptStart = time.monotonic()
        w = self.worker
        self.regTimer = reactor.callLater(w.regTimeout, self._regTimedOut)
        bind = (self.source, 0) if self.source else None
        reactor.connectTCP(
            w.host, w.port, _Factory(self, self.attempt), timeout=w.regTimeout, bindAddress=bind
        )

    def opened(self) -> None:
        frame = self.sim.registerFrame() if self.sim is not None else None
        assert self.ws is not None
        self.ws.send(json.dumps(frame).encode() if frame is not None else regFrame(self.sn))

    def received(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if "ret" in message:
            ret = str(message["ret"]).strip()
            if ret == "reg":
                if message.get("result") is True:
                    self._registered()
                else:
                    self.worker.note(f"reg refused: {message.get('reason')}")
                    if self.ws is not None:
                        self.ws.abort()
            elif self.onAck is not None:
                self.onAck(self, message)
            return
        if "cmd" in message:
            self.commands += 1
            self.worker.commands += 1
            if self.sim is not None:
                reply = self.sim.handleCommand(message)
            else:
                name = str(message["cmd"]).strip()
                reply = {"ret": name, "sn": self.sn, "result": True}
                if name == "gettime":
                    reply["time"] = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            if reply is not None and self.ws is not None:
                self.ws.send(json.dumps(reply).encode())

    def _registered(self) -> None:
        if self.registered:
            return
        self.registered = True
        self.connecting = False
        self.registeredAt = time.monotonic()
        if self.regTimer is not None and self.regTimer.active():
            self.regTimer.cancel()
        self.regTimer = None
        self.worker.termRegistered(self)

    def _regTimedOut(self) -> None:
        self.regTimer = None
        if not self.registered:
            self.worker.note("no reg ack in time")
            if self.ws is not None and self.ws.transport is not None:
                self.ws.abort()
            else:
                self.closed("reg timeout")

    def closed(self, reason: str) -> None:
        wasRegistered = self.registered
        self.registered = False
        self.ws = None
        self.inFlight = 0
        if self.regTimer is not None and self.regTimer.active():
            self.regTimer.cancel()
        self.regTimer = None
        if self.worker.dropping:
            return
        if wasRegistered:
            self.worker.note(f"registered connection lost: {reason}")
        if not self.connecting:
            return
        self.failures += 1
        self.worker.failed(self, reason)

    def abort(self) -> None:
        for timer in (self.regTimer, self.retryTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self.regTimer = self.retryTimer = None
        self.connecting = False
        self.attempt += 1  # whatever the old socket reports from now on is ignored
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.abort()
        self.registered = False
        self.inFlight = 0

    def send(self, payload: bytes) -> bool:
        return self.ws is not None and self.ws.send(payload)


class Worker:
    """The terminals of this process and the op in progress."""

    def __init__(self, out: Callable[[dict[str, Any]], None]) -> None:
        self.out = out
        self.terms: list[Term] = []
        self.host = "127.0.0.1"
        self.port = 7788
        self.source = ""
        self.regTimeout = 20.0
        self.retryDelay = 1.0
        self.maxAttempts = 5
        self.dropping = False
        self.commands = 0
        self.notes: dict[str, int] = {}
        self._op: dict[str, Any] | None = None
        self._opDeadline: IDelayedCall | None = None
        self._opEnd: Callable[[bool], None] | None = None
        self._regWaiting = 0
        self._regFailures = 0
        self._regGaveUp = 0
        self._regTimes: list[float] = []
        self._opStart = 0.0
        self._holder: Term | None = None

    def note(self, what: str) -> None:
        key = what[:120]
        self.notes[key] = self.notes.get(key, 0) + 1

    # -- ops -------------------------------------------------------------------------------------

    def handle(self, op: dict[str, Any]) -> None:
        name = op.get("op")
        if self._op is not None and name not in ("cpu", "quit", "registered"):
            self.out({"op": name, "error": f"busy with {self._op.get('op')}"})
            return
        handler = getattr(self, f"op_{name}", None)
        if handler is None:
            self.out({"op": name, "error": "unknown op"})
            return
        handler(op)

    def _begin(self, op: dict[str, Any], end: Callable[[bool], None]) -> None:
        self._op = op
        self._opStart = time.monotonic()
        self._opEnd = end
        self._opDeadline = reactor.callLater(float(op.get("timeout", 60.0)), end, True)

    def _finish(self, reply: dict[str, Any]) -> None:
        if self._opDeadline is not None and self._opDeadline.active():
            self._opDeadline.cancel()
        self._opDeadline = None
        self._op = None
        self._opEnd = None
        reply["notes"] = self.notes
        self.notes = {}
        self.out(reply)

    def op_cpu(self, op: dict[str, Any]) -> None:
        t = os.times()
        self.out({"op": "cpu", "cpu": t.user + t.system, "pid": os.getpid()})

    def op_registered(self, op: dict[str, Any]) -> None:
        self.out({"op": "registered", "sns": [t.sn for t in self.terms if t.registered]})

    def op_quit(self, op: dict[str, Any]) -> None:
        self.dropping = True
        for term in self.terms:
            term.abort()
        self.out({"op": "quit"})
        reactor.callLater(0.2, reactor.stop)

    def op_connect(self, op: dict[str, Any]) -> None:
        self.host = op.get("host", self.host)
        self.port = int(op.get("port", self.port))
        self.source = op.get("source", "")
        self.regTimeout = float(op.get("regTimeout", self.regTimeout))
        self.retryDelay = float(op.get("retryDelay", self.retryDelay))
        self.maxAttempts = int(op.get("maxAttempts", self.maxAttempts))
        prefix = op["prefix"]
        first = int(op.get("first", 0))
        count = int(op["count"])
        # terminals behind one address: at most perAddress (a site's NAT), spread over
        # 127.B.x.y, so that a per-address connection limit sees what a real fleet looks like
        base = op.get("sourceBase")
        perAddress = max(1, int(op.get("perAddress", 100)))

        def source(i: int) -> str:
            if not base:
                return self.source
            a = (i - first) // perAddress
            return f"{base}.{a // 250}.{a % 250 + 1}"

        self.terms = [
            Term(self, f"{prefix}{i:06d}", source=source(i)) for i in range(first, first + count)
        ]
        self._startRegistration(op, "connect", self.terms)

    def op_storm(self, op: dict[str, Any]) -> None:
        terms = self.terms
        self.dropping = True
        for term in terms:
            term.abort()
        self.dropping = False
        # the reconnections start in the next reactor turn, after every abort was handled
        reactor.callLater(0, self._startRegistration, op, "storm", terms)

    def _startRegistration(self, op: dict[str, Any], name: str, terms: list[Term]) -> None:
        self._regWaiting = len(terms)
        self._regFailures = 0
        self._regGaveUp = 0
        self._regTimes = []
        start = time.monotonic()

        def end(timedOut: bool) -> None:
            last = max((t.registeredAt for t in terms if t.registered), default=0.0)
            self._finish(
                {
                    "op": name,
                    "start": start,
                    "registered": sum(1 for t in terms if t.registered),
                    "count": len(terms),
                    "failures": self._regFailures,
                    "gaveUp": self._regGaveUp,
                    "timedOut": timedOut,
                    "last": last,
                    "regTimes": [round(x, 4) for x in self._regTimes],
                }
            )

        self._begin(op, end)
        for term in terms:
            term.attempts = 0
            term.connect()
        if not terms:
            end(False)

    def termRegistered(self, term: Term) -> None:
        if self._op is None or self._op.get("op") not in ("connect", "storm", "hold"):
            return
        self._regTimes.append(term.registeredAt - self._opStart)
        self._regWaiting -= 1
        self._checkRegistrationDone()

    def failed(self, term: Term, reason: str) -> None:
        self._regFailures += 1
        self.note(reason)
        if term.attempts >= self.maxAttempts:
            term.connecting = False
            self._regGaveUp += 1
            self._regWaiting -= 1
            self._checkRegistrationDone()
            return
        term.retryTimer = reactor.callLater(self.retryDelay, term.connect)

    def _checkRegistrationDone(self) -> None:
        if self._regWaiting <= 0 and self._opEnd is not None:
            self._opEnd(False)

    def op_ingest(self, op: dict[str, Any]) -> None:
        seconds = float(op["seconds"])
        batch = int(op.get("batch", 10))
        terms = [t for t in self.terms if t.registered]
        latencies: list[float] = []
        counts = {"acked": 0, "batches": 0, "nacked": 0, "sent": 0}
        state = {"stopping": False, "first": 0.0, "last": 0.0}
        clock = time.perf_counter

        def sendNext(term: Term) -> None:
            first = term.counter
            term.counter += batch
            term.sentAt = clock()
            term.inFlight = batch
            counts["sent"] += 1
            if not term.send(sendlogFrame(term.sn, first, batch)):
                term.inFlight = 0

        def onAck(term: Term, message: dict[str, Any]) -> None:
            if message.get("ret") != "sendlog" or not term.inFlight:
                return
            now = clock()
            latencies.append((now - term.sentAt) * 1000.0)
            if message.get("result") is True:
                counts["acked"] += term.inFlight
                counts["batches"] += 1
                state["last"] = now
            else:
                counts["nacked"] += 1
                term.counter -= term.inFlight  # resend the same records
            term.inFlight = 0
            if not state["stopping"]:
                sendNext(term)
            elif not any(t.inFlight for t in terms):
                end(False)

        def stop() -> None:
            state["stopping"] = True
            if not any(t.inFlight for t in terms):
                end(False)

        def end(timedOut: bool) -> None:
            if self._op is None:
                return
            for term in terms:
                term.onAck = None
            if stopTimer.active():
                stopTimer.cancel()
            self._finish(
                {
                    "op": "ingest",
                    "terminals": len(terms),
                    "start": state["first"],
                    "last": state["last"],
                    "timedOut": timedOut,
                    "inFlight": sum(t.inFlight for t in terms),
                    "latencies": [round(x, 3) for x in latencies],
                    "clock": "perf_counter",
                    **counts,
                }
            )

        self._begin({**op, "timeout": seconds + float(op.get("drain", 15.0))}, end)
        stopTimer = reactor.callLater(seconds, stop)
        state["first"] = clock()
        state["last"] = state["first"]
        for term in terms:
            term.onAck = onAck
            sendNext(term)

    def op_soak(self, op: dict[str, Any]) -> None:
        seconds = float(op["seconds"])
        interval = float(op.get("interval", 10.0))
        terms = [t for t in self.terms if t.registered]
        latencies: list[float] = []
        counts = {"acked": 0, "nacked": 0, "sent": 0, "skipped": 0}
        timers: list[IDelayedCall] = []
        clock = time.perf_counter
        stopAt = time.monotonic() + seconds

        def tick(term: Term) -> None:
            if time.monotonic() >= stopAt:
                return
            if term.inFlight:
                counts["skipped"] += 1
            else:
                first = term.counter
                term.counter += 1
                term.sentAt = clock()
                term.inFlight = 1
                counts["sent"] += 1
                if not term.send(sendlogFrame(term.sn, first, 1)):
                    term.inFlight = 0
            timers.append(reactor.callLater(interval, tick, term))

        def onAck(term: Term, message: dict[str, Any]) -> None:
            if message.get("ret") != "sendlog" or not term.inFlight:
                return
            latencies.append((clock() - term.sentAt) * 1000.0)
            if message.get("result") is True:
                counts["acked"] += term.inFlight
            else:
                counts["nacked"] += 1
            term.inFlight = 0

        def end(timedOut: bool) -> None:
            for term in terms:
                term.onAck = None
            self._finish(
                {
                    "op": "soak",
                    "terminals": len(terms),
                    "timedOut": False,
                    "latencies": [round(x, 2) for x in latencies],
                    "connected": sum(1 for t in terms if t.registered),
                    **counts,
                }
            )

        self._begin({**op, "timeout": seconds + interval + 5.0}, end)
        for i, term in enumerate(terms):
            term.onAck = onAck
            # spread the terminals evenly over the interval
            reactor.callLater(interval * i / max(len(terms), 1), tick, term)

    def op_hold(self, op: dict[str, Any]) -> None:
        from tm20.simulator.device import SimulatedTerminal

        self.host = op.get("host", self.host)
        self.port = int(op.get("port", self.port))
        self.source = op.get("source", "")
        sim = SimulatedTerminal(
            op["sn"], logs=int(op["logs"]), seed=int(op.get("seed", 1)), logsize=int(op["logs"])
        )
        term = Term(self, op["sn"], sim=sim, source=self.source)
        self._holder = term
        self.terms = [term]
        self._startRegistration({**op, "op": "hold"}, "hold", [term])

    def op_push(self, op: dict[str, Any]) -> None:
        term = self._holder
        if term is None or term.sim is None or not term.registered:
            self.out({"op": "push", "error": "no registered holder"})
            return
        sim = term.sim
        batch = int(op.get("batch", 100))
        counts = {"acked": 0, "batches": 0, "nacked": 0}
        start = time.monotonic()

        def sendNext() -> None:
            frame = sim.nextLogBatch(batch)
            if frame is None:
                end(False)
                return
            term.send(json.dumps(frame).encode())

        def onAck(t: Term, message: dict[str, Any]) -> None:
            if message.get("ret") != "sendlog":
                return
            acked = sim.ackLogs(message)
            if message.get("result") is True:
                counts["acked"] += acked
                counts["batches"] += 1
            else:
                counts["nacked"] += 1
            sendNext()

        def end(timedOut: bool) -> None:
            if self._op is None:
                return
            term.onAck = None
            self._finish(
                {
                    "op": "push",
                    "start": start,
                    "last": time.monotonic(),
                    "timedOut": timedOut,
                    "pending": sim.pendingLogCount(),
                    **counts,
                }
            )

        self._begin(op, end)
        term.onAck = onAck
        sendNext()


class Control(LineReceiver):
    """The driver's commands on stdin, the replies on stdout."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 24

    def __init__(self) -> None:
        self.worker = Worker(self.reply)

    def reply(self, message: dict[str, Any]) -> None:
        self.transport.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def lineReceived(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            op = json.loads(line)
        except ValueError:
            self.reply({"op": None, "error": "bad json"})
            return
        try:
            self.worker.handle(op)
        except Exception as e:  # report, never die silently
            self.reply({"op": op.get("op"), "error": f"{type(e).__name__}: {e}"})

    def connectionLost(self, reason: Failure | None = None) -> None:
        if reactor.running:
            reactor.stop()


def main() -> None:
    raiseOpenFilesLimit()
    stdio.StandardIO(Control())
    reactor.run()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
