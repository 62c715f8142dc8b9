"""
The simulated terminal on the network: an autobahn WebSocket client and its reconnecting driver.

L{TerminalConnection} behaves like the firmware as far as the protocol notes know it:

  1. connect to the URL (C{ws://} or C{wss://}, any path; the firmware asks for C{/pub/chat});
  2. send C{reg}; re-send it every C{regRetry} seconds (20 by default) until it is answered,
     staying connected;
  3. once registered, upload the stored logs in C{sendlog} batches of C{batchSize}, B{one batch in
     flight}: the next batch goes only after the ack of the previous one.  An unacknowledged batch
     is sent again, identical (same C{logindex}, same records), after C{ackTimeout} seconds or
     after a reconnect;
  4. push queued C{senduser} frames the same way (one in flight, resent after C{userAckTimeout});
  5. answer every server command through L{SimulatedTerminal.handleCommand}; on C{reboot} drop
     the socket without replying and reconnect after C{rebootDelay};
  6. optionally re-send C{reg} every C{heartbeat} seconds;
  7. reconnect with exponential backoff whenever the connection drops, until L{disconnect}.

Like the real TM20 firmware it does B{not} answer WebSocket pings (C{answerPings=False}).

All timers, including autobahn's own handshake timers, run on the injected reactor, so a test
that closes its connections leaves a clean reactor.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from tm20.simulator.device import LogEntry, SimulatedTerminal

__all__ = [
    "ConnectionStats",
    "ReactorTimer",
    "SimulatorClientProtocol",
    "TerminalConnection",
    "endpointForURL",
]

log = Logger(namespace="tm20.simulator")

Frame = dict[str, Any]


class _SafeCall:
    """
    A delayed call whose C{cancel} may be called after it ran (autobahn does that).
    """

    def __init__(self, call: IDelayedCall) -> None:
        self._call = call

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


class ReactorTimer:
    """
    A stand-in for autobahn's C{factory._batched_timer} that schedules on a given reactor.

    autobahn schedules its handshake and ping timers on txaio's global reactor, in 200 ms buckets;
    this puts them on the injected reactor (a L{twisted.internet.task.Clock} in tests) as plain
    delayed calls, cancelled with the connection.
    """

    def __init__(self, reactor: Any) -> None:
        """
        @param reactor: an C{IReactorTime} provider.
        """
        self._reactor = reactor

    def call_later(
        self, delay: float, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> _SafeCall:
        """
        txaio's C{IBatchedTimer.call_later}.
        """
        return _SafeCall(self._reactor.callLater(delay, func, *args, **kwargs))


@dataclass
class ConnectionStats:
    """
    Counters of one L{TerminalConnection}, for tests and benchmarks.

    @ivar connections: WebSocket sessions opened.
    @ivar reconnects: sessions opened after the first.
    @ivar connectFailures: TCP or handshake attempts that failed.
    @ivar regsSent: C{reg} frames sent (first, retries and heartbeats).
    @ivar regResends: C{reg} frames sent because the previous one was not answered in time.
    @ivar regAcks: positive C{reg} replies.
    @ivar batchesSent: C{sendlog} frames sent, resends included.
    @ivar resends: C{sendlog} frames that repeated an unacknowledged batch.
    @ivar acksReceived: positive, matching C{sendlog} replies.
    @ivar logsAcknowledged: log records those acks covered.
    @ivar ackLatencies: seconds from sending a batch to its ack, one per ack.
    @ivar usersSent: C{senduser} frames sent, resends included.
    @ivar userAcks: positive C{senduser} replies.
    @ivar commandsAnswered: server commands handled (C{reboot} included).
    @ivar reboots: C{reboot} commands obeyed.
    @ivar pingsIgnored: WebSocket pings left unanswered.
    @ivar drops: connections dropped on purpose (C{dropNextAck}, C{reboot}, ack timeout).
    """

    connections: int = 0
    reconnects: int = 0
    connectFailures: int = 0
    regsSent: int = 0
    regResends: int = 0
    regAcks: int = 0
    batchesSent: int = 0
    resends: int = 0
    acksReceived: int = 0
    logsAcknowledged: int = 0
    ackLatencies: list[float] = field(default_factory=list)
    usersSent: int = 0
    userAcks: int = 0
    commandsAnswered: int = 0
    reboots: int = 0
    pingsIgnored: int = 0
    drops: int = 0


class SimulatorClientProtocol(WebSocketClientProtocol):
    """
    One WebSocket connection of a simulated terminal.  It only frames and forwards: every decision
    is taken by its L{TerminalConnection}.

    @ivar connection: the driver, set by the factory.
    """

    connection: TerminalConnection | None = None
    _dropping = False

    def onOpen(self) -> None:
        """
        The opening handshake completed.
        """
        if self.connection is not None:
            self.connection._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Forward a complete message to the driver, unless the connection is being dropped.
        """
        if self._dropping or self.connection is None:
            return
        self.connection._received(self, payload)

    def onPing(self, payload: bytes) -> None:
        """
        Real TM20 firmware ignores WebSocket pings; answer only when C{answerPings} is set.
        """
        if self.connection is not None and self.connection.answerPings:
            super().onPing(payload)
        elif self.connection is not None:
            self.connection.stats.pingsIgnored += 1

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The TCP connection ended (after a close handshake or not).
        """
        super().connectionLost(reason)
        if self.connection is not None:
            self.connection._lost(self)

    def sendJSON(self, frame: Frame) -> bool:
        """
        Send one JSON text frame.

        @return: whether it was sent (the connection must be open).
        """
        if self._dropping or self.state != self.STATE_OPEN:
            return False
        data = json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.sendMessage(data, isBinary=False)
        return True

    def simulateDrop(self) -> None:
        """
        Close the TCP connection without a WebSocket close handshake, after flushing what was
        written (so the peer receives the last frame but nothing more is read from it).
        """
        self._dropping = True
        if self.transport is not None:
            self.transport.loseConnection()


class _SimulatorClientFactory(WebSocketClientFactory):
    protocol = SimulatorClientProtocol
    noisy = False

    def __init__(self, connection: TerminalConnection, url: str, reactor: Any) -> None:
        super().__init__(url=url, reactor=reactor, useragent=None)
        self.connection = connection
        self._batched_timer = ReactorTimer(reactor)

    def buildProtocol(self, addr: Any) -> SimulatorClientProtocol:
        proto = cast(SimulatorClientProtocol, super().buildProtocol(addr))
        proto.connection = self.connection
        return proto


def endpointForURL(
    reactor: Any,
    url: str,
    tlsOptions: IOpenSSLClientConnectionCreator | None = None,
    timeout: float = 30.0,
) -> IStreamClientEndpoint:
    """
    The client endpoint a terminal configured with C{url} connects to.

    @param reactor: an C{IReactorTCP} and C{IReactorTime} provider.
    @param url: C{ws://host[:port]/path} or C{wss://...} (default ports 80 and 443).
    @param tlsOptions: TLS client options for C{wss}; by default
        C{optionsForClientTLS(host)} (platform trust store, hostname checked).
    @param timeout: TCP connect timeout in seconds.
    @raise ValueError: for another scheme or a URL without a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname
    port = parts.port or (443 if secure else 80)
    endpoint: IStreamClientEndpoint
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    else:
        if address.version == 4:
            endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
        else:
            endpoint = TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    if secure:
        if tlsOptions is None:
            from twisted.internet.ssl import optionsForClientTLS

            tlsOptions = optionsForClientTLS(host)
        endpoint = wrapClientTLS(tlsOptions, endpoint)
    return endpoint


class TerminalConnection:
    """
    Drives one L{SimulatedTerminal} over a WebSocket connection, reconnecting until told to stop.

    @ivar terminal: the simulated terminal.
    @ivar stats: the counters (L{ConnectionStats}).
    @ivar dropNextAck: how many upcoming C{sendlog} batches are followed at once by a dropped
        connection, so that the server receives the batch but the terminal never sees its ack
        ("the connection dropped before the ack arrived").  Decremented at each use.
    @ivar answerPings: answer WebSocket pings (the real firmware does not).
    """

    def __init__(
        self,
        terminal: SimulatedTerminal,
        url: str = "ws://127.0.0.1:7788/pub/chat",
        *,
        reactor: Any = None,
        batchSize: int = 10,
        regRetry: float = 20.0,
        ackTimeout: float = 20.0,
        userAckTimeout: float = 5.0,
        heartbeat: float = 0.0,
        rebootDelay: float = 5.0,
        reconnectOnAckTimeout: bool = False,
        answerPings: bool = False,
        pushLogs: bool = True,
        retryPolicy: Callable[[int], float] | None = None,
        endpoint: IStreamClientEndpoint | None = None,
        tlsOptions: IOpenSSLClientConnectionCreator | None = None,
        maxMessagePayloadSize: int = 16 * 1024 * 1024,
        openHandshakeTimeout: float = 10.0,
        closeTimeout: float = 5.0,
    ) -> None:
        """
        @param terminal: the state machine to put on the network.
        @param url: where to connect; the path is sent as is.
        @param reactor: the reactor (C{IReactorTCP} + C{IReactorTime}); the global one if
            C{None}.
        @param batchSize: largest number of records per C{sendlog}.
        @param regRetry: seconds before an unanswered C{reg} is sent again.
        @param ackTimeout: seconds before an unacknowledged C{sendlog} batch is sent again.
        @param userAckTimeout: seconds before an unacknowledged C{senduser} is sent again.
        @param heartbeat: if positive, re-send C{reg} every so many seconds once registered.
        @param rebootDelay: seconds between a C{reboot} command and the reconnection.
        @param reconnectOnAckTimeout: on ack timeout, drop the connection and resend after the
            reconnect (what TopData readers do) instead of resending on the same socket.
        @param answerPings: answer WebSocket pings (C{False}, like the firmware).
        @param pushLogs: push stored logs with C{sendlog} (C{False}: a firmware whose log upload
            is off, or stuck; its logs only leave through C{getnewlog}/C{getalllog}).
        @param retryPolicy: attempt number (0-based) -> seconds before reconnecting; by default
            exponential backoff from 1 s to 30 s with up to 1 s of jitter.
        @param endpoint: connect there instead of the endpoint derived from C{url} (the URL still
            gives the C{Host} header and the path).
        @param tlsOptions: TLS client options for C{wss://}.
        @param maxMessagePayloadSize: largest message accepted from the server (bytes).
        @param openHandshakeTimeout: seconds allowed for the WebSocket opening handshake.
        @param closeTimeout: seconds L{disconnect} waits for the close handshake before aborting.
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor  # noqa: N812

            reactor = globalReactor
        self.terminal = terminal
        self.url = url
        self.batchSize = batchSize
        self.regRetry = regRetry
        self.ackTimeout = ackTimeout
        self.userAckTimeout = userAckTimeout
        self.heartbeat = heartbeat
        self.rebootDelay = rebootDelay
        self.reconnectOnAckTimeout = reconnectOnAckTimeout
        self.answerPings = answerPings
        self.pushLogs = pushLogs
        self.closeTimeout = closeTimeout
        self.dropNextAck = 0
        self.stats = ConnectionStats()
        self._reactor = reactor
        self._retryPolicy = retryPolicy or backoffPolicy(initialDelay=1.0, maxDelay=30.0)
        self._endpoint = endpoint or endpointForURL(reactor, url, tlsOptions)
        self._factory = _SimulatorClientFactory(self, url, reactor)
        self._factory.setProtocolOptions(
            maxFramePayloadSize=maxMessagePayloadSize,
            maxMessagePayloadSize=maxMessagePayloadSize,
            openHandshakeTimeout=openHandshakeTimeout,
            closeHandshakeTimeout=1,
            autoPingInterval=0,
        )

        self._running = False
        self._attempt = 0
        self._rebooting = False
        self._connecting: Deferred[Any] | None = None
        self._proto: SimulatorClientProtocol | None = None
        self._open = False
        self._registered = False

        self._reconnectCall: IDelayedCall | None = None
        self._regCall: IDelayedCall | None = None
        self._heartbeatCall: IDelayedCall | None = None
        self._ackCall: IDelayedCall | None = None
        self._userAckCall: IDelayedCall | None = None

        self._batchInFlight = False
        self._batchSentAt = 0.0
        self._unackedLogindex: int | None = None
        self._userInFlight = False
        self._unackedUser: Frame | None = None

        self._codeWaiters: dict[str, list[Deferred[Frame]]] = {}
        self._registeredWaiters: list[Deferred[None]] = []
        self._allAckedWaiters: list[Deferred[None]] = []
        self._closedWaiters: list[Deferred[None]] = []

    # -- public API ---------------------------------------------------------------------------

    @property
    def sn(self) -> str:
        """
        The terminal's serial number.
        """
        return self.terminal.sn

    @property
    def registered(self) -> bool:
        """
        Whether the current connection's C{reg} has been acknowledged.
        """
        return self._registered

    @property
    def connected(self) -> bool:
        """
        Whether a WebSocket session is open.
        """
        return self._open

    def start(self) -> None:
        """
        Start connecting (and reconnecting) to the server.
        """
        if self._running:
            return
        self._running = True
        self._connect()

    def disconnect(self) -> Deferred[None]:
        """
        Stop for good: no more reconnects; close the current connection with a WebSocket close
        handshake (aborted after C{closeTimeout}).

        @return: a Deferred that fires once the connection is closed.
        """
        self._running = False
        self._cancel("_reconnectCall")
        if self._connecting is not None:
            self._connecting.cancel()
        proto = self._proto
        if proto is None:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._closedWaiters.append(done)
        abort = self._reactor.callLater(self.closeTimeout, self._abort, proto)

        def cancelAbort(result: None) -> None:
            if abort.active():
                abort.cancel()

        done.addCallback(cancelAbort)
        if self._open and proto.state == proto.STATE_OPEN:
            proto.sendClose(1000)
        elif proto.transport is not None:
            proto.transport.loseConnection()
        return done

    def whenRegistered(self) -> Deferred[None]:
        """
        @return: a Deferred that fires when the current connection is registered (at once if it
            already is).
        """
        if self._registered:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._registeredWaiters.append(waiter)
        return waiter

    def whenAllLogsAcknowledged(self) -> Deferred[None]:
        """
        @return: a Deferred that fires once every stored log has been acknowledged by the server
            (at once if none is pending).
        """
        if self.terminal.pendingLogCount() == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._allAckedWaiters.append(waiter)
        return waiter

    def punch(
        self,
        enrollid: int,
        time: str | None = None,
        mode: int = 1,
        inout: int = 0,
        event: int = 0,
    ) -> LogEntry | None:
        """
        Record a new log on the terminal (see L{SimulatedTerminal.punch}) and upload it when the
        uploader is idle.
        """
        entry = self.terminal.punch(enrollid, time=time, mode=mode, inout=inout, event=event)
        self._pump()
        return entry

    def scanQrCode(self, code: str) -> Deferred[Frame]:
        """Show C{code} to the reader (C{sendqrcode}); fires with the server's reply."""
        return self._askCode(self.terminal.scanQrCode(code))

    def enterPin(self, pin: str) -> Deferred[Frame]:
        """Type C{pin} on the keypad (C{sendpin}); fires with the server's reply."""
        return self._askCode(self.terminal.enterPin(pin))

    def _askCode(self, frame: Frame) -> Deferred[Frame]:
        waiter: Deferred[Frame] = Deferred()
        self._codeWaiters.setdefault(frame["cmd"], []).append(waiter)
        if not self._send(frame):
            self._codeWaiters[frame["cmd"]].remove(waiter)
            waiter.errback(ConnectionError(f"{self.sn}: not connected"))
        return waiter

    def enrollUser(
        self,
        enrollid: int,
        name: str = "",
        backupnum: int = 0,
        record: str | int | None = None,
        admin: int = 0,
    ) -> Frame:
        """
        Enrol a credential on the keypad (see L{SimulatedTerminal.enrollUser}) and push the
        C{senduser} frame.
        """
        frame = self.terminal.enrollUser(
            enrollid, name=name, backupnum=backupnum, record=record, admin=admin
        )
        self._pump()
        return frame

    # -- connection life cycle ----------------------------------------------------------------

    def _cancel(self, attribute: str) -> None:
        call: IDelayedCall | None = getattr(self, attribute)
        if call is not None and call.active():
            call.cancel()
        setattr(self, attribute, None)

    def _connect(self) -> None:
        self._reconnectCall = None
        if not self._running:
            return
        log.debug("{sn}: connecting to {url}", sn=self.sn, url=self.url)
        connecting = self._endpoint.connect(self._factory)
        self._connecting = connecting
        connecting.addCallbacks(self._tcpConnected, self._connectFailed)

    def _tcpConnected(self, proto: SimulatorClientProtocol) -> None:
        self._connecting = None
        self._proto = proto

    def _connectFailed(self, failure: Failure) -> None:
        self._connecting = None
        if not self._running:
            return
        self.stats.connectFailures += 1
        emit = log.info if self._attempt == 0 else log.debug
        emit(
            "{sn}: cannot connect to {url}: {error}",
            sn=self.sn,
            url=self.url,
            error=failure.getErrorMessage(),
        )
        self._scheduleReconnect()

    def _scheduleReconnect(self) -> None:
        if not self._running or self._reconnectCall is not None:
            return
        if self._rebooting:
            delay = self.rebootDelay
            self._rebooting = False
        else:
            delay = self._retryPolicy(self._attempt)
            self._attempt += 1
        log.debug("{sn}: reconnecting in {delay:.2f}s", sn=self.sn, delay=delay)
        self._reconnectCall = self._reactor.callLater(delay, self._connect)

    def _abort(self, proto: SimulatorClientProtocol) -> None:
        transport = cast(ITCPTransport | None, proto.transport)
        if transport is not None:
            transport.abortConnection()

    def _opened(self, proto: SimulatorClientProtocol) -> None:
        if not self._running:
            proto.sendClose(1000)
            return
        self._proto = proto
        self._open = True
        self._attempt = 0
        self.stats.connections += 1
        if self.stats.connections > 1:
            self.stats.reconnects += 1
        log.info("{sn}: connected to {url}", sn=self.sn, url=self.url)
        self._sendReg()

    def _lost(self, proto: SimulatorClientProtocol) -> None:
        if proto is not self._proto:
            return
        wasOpen = self._open
        self._proto = None
        self._open = False
        self._registered = False
        self._batchInFlight = False
        self._userInFlight = False
        for name in ("_regCall", "_heartbeatCall", "_ackCall", "_userAckCall"):
            self._cancel(name)
        if wasOpen:
            log.info("{sn}: connection closed", sn=self.sn)
        else:
            self.stats.connectFailures += 1
        waiters, self._closedWaiters = self._closedWaiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._scheduleReconnect()

    def _drop(self, proto: SimulatorClientProtocol) -> None:
        self.stats.drops += 1
        proto.simulateDrop()

    # -- registration -------------------------------------------------------------------------

    def _send(self, frame: Frame) -> bool:
        proto = self._proto
        return proto is not None and self._open and proto.sendJSON(frame)

    def _sendReg(self) -> None:
        if not self._send(self.terminal.registerFrame()):
            return
        self.stats.regsSent += 1
        if not self._registered:
            self._cancel("_regCall")
            self._regCall = self._reactor.callLater(self.regRetry, self._regTimedOut)

    def _regTimedOut(self) -> None:
        self._regCall = None
        if self._open and not self._registered:
            self.stats.regResends += 1
            log.info("{sn}: reg not answered, sending it again", sn=self.sn)
            self._sendReg()

    def _sendHeartbeat(self) -> None:
        self._heartbeatCall = None
        if self._open:
            self._sendReg()
            self._heartbeatCall = self._reactor.callLater(self.heartbeat, self._sendHeartbeat)

    # -- incoming frames ----------------------------------------------------------------------

    def _received(self, proto: SimulatorClientProtocol, payload: bytes) -> None:
        if proto is not self._proto:
            return
        try:
            message = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            log.warn(
                "{sn}: ignoring a frame that is not JSON: {payload!r}",
                sn=self.sn,
                payload=payload[:200],
            )
            return
        if not isinstance(message, dict):
            log.warn("{sn}: ignoring a frame that is not an object", sn=self.sn)
            return
        if "ret" in message:
            self._onReply(message)
        elif "cmd" in message:
            self._onCommand(proto, message)
        else:
            log.warn("{sn}: ignoring a frame with neither cmd nor ret", sn=self.sn)

    def _onReply(self, reply: Frame) -> None:
        ret = str(reply.get("ret", "")).strip()
        if ret == "reg":
            if not self.terminal.handleReply(reply):
                log.warn(
                    "{sn}: registration refused: {reason}", sn=self.sn, reason=reply.get("reason")
                )
                return
            self.stats.regAcks += 1
            if not self._registered:
                self._registered = True
                self._cancel("_regCall")
                log.info("{sn}: registered", sn=self.sn)
                if self.heartbeat > 0:
                    self._heartbeatCall = self._reactor.callLater(
                        self.heartbeat, self._sendHeartbeat
                    )
                waiters, self._registeredWaiters = self._registeredWaiters, []
                for waiter in waiters:
                    waiter.callback(None)
            self._pump()
        elif ret == "sendlog":
            if not self._batchInFlight:
                log.debug("{sn}: ignoring a sendlog reply with no batch in flight", sn=self.sn)
                return
            acknowledged = self.terminal.ackLogs(reply)
            if acknowledged == 0:
                log.info(
                    "{sn}: sendlog batch {logindex} not acknowledged ({reply}); resending later",
                    sn=self.sn,
                    logindex=self._unackedLogindex,
                    reply=reply,
                )
                return
            self.stats.acksReceived += 1
            self.stats.logsAcknowledged += acknowledged
            self.stats.ackLatencies.append(self._reactor.seconds() - self._batchSentAt)
            self._cancel("_ackCall")
            self._batchInFlight = False
            self._unackedLogindex = None
            self._pump()
        elif ret == "senduser":
            if self._userInFlight and self.terminal.ackUser(reply):
                self.stats.userAcks += 1
                self._cancel("_userAckCall")
                self._userInFlight = False
                self._unackedUser = None
                self._pump()
        elif ret in ("sendqrcode", "sendpin"):
            self.terminal.handleReply(reply)
            pending = self._codeWaiters.get(ret)
            if pending:
                pending.pop(0).callback(reply)
        else:
            log.debug("{sn}: ignoring unexpected reply {ret}", sn=self.sn, ret=ret)

    def _onCommand(self, proto: SimulatorClientProtocol, command: Frame) -> None:
        name = str(command.get("cmd", "")).strip()
        self.stats.commandsAnswered += 1
        reply: Frame | None
        try:
            reply = self.terminal.handleCommand(command)
        except Exception:
            log.failure("{sn}: error handling {cmd}", sn=self.sn, cmd=name)
            reply = {"ret": name, "sn": self.sn, "result": False, "reason": 1}
        if reply is None:
            self.stats.reboots += 1
            self._rebooting = True
            log.info("{sn}: rebooting on server command", sn=self.sn)
            self._drop(proto)
            return
        log.debug("{sn}: answered {cmd}", sn=self.sn, cmd=name)
        self._send(reply)
        self._pump()

    # -- uploads ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """
        Send what is due: the next C{sendlog} batch and the next C{senduser}, one of each in
        flight at most; fire L{whenAllLogsAcknowledged} waiters when nothing is left.
        """
        if self._batchInFlight and self.terminal.pendingBatchIndex() is None:
            # the pending batch vanished (cleanlog, initsys): nothing to wait for
            self._cancel("_ackCall")
            self._batchInFlight = False
            self._unackedLogindex = None
        if self._open and self._registered:
            if not self._batchInFlight and self.pushLogs:
                batch = self.terminal.nextLogBatch(self.batchSize)
                if batch is not None:
                    self._sendBatch(batch)
            if not self._userInFlight:
                user = self.terminal.nextSendUser()
                if user is not None:
                    self._sendUser(user)
        if self.terminal.pendingLogCount() == 0 and self._allAckedWaiters:
            waiters, self._allAckedWaiters = self._allAckedWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _sendBatch(self, batch: Frame) -> None:
        proto = self._proto
        if proto is None or not self._send(batch):
            return
        if batch["logindex"] == self._unackedLogindex:
            self.stats.resends += 1
        self._unackedLogindex = batch["logindex"]
        self._batchInFlight = True
        self._batchSentAt = self._reactor.seconds()
        self.stats.batchesSent += 1
        self._cancel("_ackCall")
        self._ackCall = self._reactor.callLater(self.ackTimeout, self._ackTimedOut)
        if self.dropNextAck > 0:
            self.dropNextAck -= 1
            log.info(
                "{sn}: dropping the connection before the ack of batch {logindex}",
                sn=self.sn,
                logindex=batch["logindex"],
            )
            self._drop(proto)

    def _ackTimedOut(self) -> None:
        self._ackCall = None
        proto = self._proto
        if proto is None or not self._open:
            return
        log.info(
            "{sn}: no ack for sendlog batch {logindex} after {timeout}s",
            sn=self.sn,
            logindex=self._unackedLogindex,
            timeout=self.ackTimeout,
        )
        if self.reconnectOnAckTimeout:
            self._drop(proto)
            return
        self._batchInFlight = False
        self._pump()

    def _sendUser(self, frame: Frame) -> None:
        if not self._send(frame):
            return
        self._unackedUser = frame
        self._userInFlight = True
        self.stats.usersSent += 1
        self._cancel("_userAckCall")
        self._userAckCall = self._reactor.callLater(self.userAckTimeout, self._userAckTimedOut)

    def _userAckTimedOut(self) -> None:
        self._userAckCall = None
        self._userInFlight = False
        self._pump()
