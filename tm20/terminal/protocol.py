"""
One WebSocket per terminal.

Frames are parsed by the pure L{tm20.protocol.parser}; terminal commands are handled one at a
time, in order, by the L{tm20.dispatch.Dispatcher}; replies (C{ret}) to server commands go to the
connection's L{CommandChannel}.  When a terminal sends faster than its commands are handled, the
socket stops being read (backpressure) instead of buffering without bound.
"""

from __future__ import annotations

import pprint
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import autobahn.twisted.websocket as _ab_twisted
import autobahn.util as _ab_util
import autobahn.websocket.protocol as _ab_protocol
from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from tm20.config import ServerConfig
from tm20.dispatch import Dispatcher
from tm20.interfaces import IServerContext, ITerminalRegistry, ITerminalSession
from tm20.model import Terminal
from tm20.protocol import replies
from tm20.protocol.codes import CloseCode
from tm20.protocol.messages import CommandReply, ProtocolError, TerminalMessage
from tm20.protocol.parser import parseFrame
from tm20.redact import redactText, redactValue
from tm20.terminal.admission import RETRY_AFTER, Admission
from tm20.terminal.channel import CommandChannel
from tm20.terminal.keepalive import KeepAlive
from tm20.terminal.limits import NetworkList, forwardedClient, hostOf

#: The application-level liveness probe (TM20 firmware ignores WebSocket pings).
PROBE = {"cmd": "gettime"}

#: Why a socket is not read (see L{TerminalProtocol.pauseReading}): its own inbox is full...
PAUSE_INBOX = "inbox full"
#: ... or the store's log queue is (set and cleared for every socket by the server's wiring).
PAUSE_STORE = "store queue full"

_NOT_PAUSED: frozenset[str] = frozenset()

#: The path prefix that carries a terminal's secret: C{ws://host:7788/t/<secret>}.
SECRET_PATH_PREFIX = "/t/"


def splitSecretPath(path: str) -> tuple[str, str | None]:
    """
    Split a request path into what may be logged and the terminal secret it carries.

    @return: C{(path, secret)}: C{("/t/***", "s3cret")} for C{/t/s3cret} (a trailing slash
        or query is ignored), C{(path, None)} for any other path.
    """
    if not path.startswith(SECRET_PATH_PREFIX):
        return redactText(path), None
    secret = path[len(SECRET_PATH_PREFIX) :].split("?", 1)[0].strip("/")
    if not secret or "/" in secret:
        return redactText(path), None
    return SECRET_PATH_PREFIX + "***", secret


class RedactingLogger(Logger):
    """
    A L{Logger} that masks C{/t/<secret>} in every field of an event.  autobahn logs the raw
    opening handshake (at debug level) through the protocol's C{log}: with it, a terminal's
    path secret never reaches a log, whatever the level.
    """

    _name = "log"

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        # Logger.__get__'s result (namespace: the owning class's name; source: the instance, or
        # the class), built without its __init__ and list, and kept in the instance's
        # dictionary (this is a non-data descriptor): autobahn reads self.log some 17 times per
        # connection and several times per message, for debug events that are mostly dropped.
        assert owner is not None
        bound = object.__new__(type(self))
        bound.namespace = f"{owner.__module__}.{owner.__name__}"
        bound.source = owner if instance is None else instance
        bound.observer = self.observer
        if instance is not None:
            instance.__dict__[self._name] = bound
        return bound

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        # any spelling of the path: /t//SECRET, /T/SECRET, /%74/SECRET (see tm20.redact)
        for key, value in kwargs.items():
            if isinstance(value, LazyText):
                value = str(value)
            kwargs[key] = redactValue(value)
        super().emit(level, redactText(format) if format else format, **kwargs)


class _DemotingLogger(RedactingLogger):
    """
    A L{RedactingLogger} that logs warnings and errors at debug level (see its use), or not at
    all when C{quiet} (the server does not log at debug level).
    """

    quiet = False

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if level in (LogLevel.warn, LogLevel.error):
            level = LogLevel.debug
        if level == LogLevel.debug and self.quiet:
            return
        super().emit(level, format, **kwargs)


class QuietRedactingLogger(RedactingLogger):
    """
    A L{RedactingLogger} that drops debug events at once, for a server not logging at debug
    level: autobahn logs several debug events per connection and per read, each otherwise built,
    redacted and published only for the observer to drop it.
    """

    def debug(self, format: str | None = None, **kwargs: object) -> None:
        pass


class LazyText:
    """
    Text computed only when a log event is rendered: stands in for autobahn's C{hltype},
    C{hlval} and C{pformat} in its debug calls (see L{quietAutobahnDebug}).
    """

    __slots__ = ("_args", "_function")

    def __init__(self, function: Callable[..., str], *args: Any) -> None:
        self._function = function
        self._args = args

    def __str__(self) -> str:
        return str(self._function(*self._args))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return repr(str(self))


def _lazyHltype(obj: Any) -> LazyText:
    return LazyText(_ab_util.hltype, obj)


def _lazyHlval(val: Any, color: str = "white", bold: bool = True) -> LazyText:
    return LazyText(_ab_util.hlval, val, color, bold)


def _lazyPformat(obj: Any, *args: Any, **kwargs: Any) -> Any:
    # Only the per-connection debug line (a list of config attributes) is made lazy; anything
    # else (Timings.__str__ must return a str) gets the real text.
    if type(obj) is list and not args and not kwargs:
        return LazyText(pprint.pformat, obj)
    return pprint.pformat(obj, *args, **kwargs)


def quietAutobahnDebug() -> None:
    """
    Make the arguments of autobahn's debug log calls lazy.

    autobahn formats them eagerly, whatever the log level: for every connection it
    C{pformat}s its 29 configuration attributes (~100 us), and for every read, connection and
    disconnection it colours names with C{hltype}/C{hlval} (C{inspect} and C{click}).  These
    module globals are replaced by functions returning L{LazyText}, rendered only if an event is
    actually logged (text and JSON logs are unchanged).  Idempotent.
    """
    for module in (_ab_protocol, _ab_twisted):
        if getattr(module, "hltype", None) is _ab_util.hltype:
            module.hltype = _lazyHltype  # type: ignore[attr-defined]
        if getattr(module, "hlval", None) is _ab_util.hlval:
            module.hlval = _lazyHlval  # type: ignore[attr-defined]
    if _ab_protocol.pformat is pprint.pformat:
        _ab_protocol.pformat = _lazyPformat  # type: ignore[assignment]


class TerminalSide(Protocol):
    """
    What a L{TerminalProtocol} uses of its factory (L{tm20.terminal.factory.TerminalFactory},
    which imports this module: the factory depends on the protocol, never the reverse).
    """

    config: ServerConfig
    context: IServerContext
    dispatcher: Dispatcher
    registry: ITerminalRegistry
    clock: IReactorTime
    monotonic: IReactorTime
    terminalNetworks: NetworkList
    trustedProxies: NetworkList
    maxJSONDepth: int
    maxJSONArrayLength: int
    maxJSONValues: int
    admission: Admission


@implementer(ITerminalSession)
class TerminalProtocol(WebSocketServerProtocol):
    """A connected terminal; see L{ITerminalSession}."""

    log = RedactingLogger()
    factory: TerminalSide

    def __init__(self) -> None:
        super().__init__()
        self.sn: str | None = None
        self.terminal: Terminal | None = None
        self.registered = False
        self.lastRecorded = 0.0
        self.peer = "?"
        self.peerHost = "?"
        self.path = "/"
        self.pathSecret: str | None = None
        self.channel: CommandChannel | None = None
        self.keepAlive: KeepAlive | None = None
        self._regTimer: IDelayedCall | None = None
        #: messages waiting for their handler, with when each arrived (C{factory.clock})
        self._inbox: deque[tuple[TerminalMessage, float]] = deque()
        self._busy = False
        self._draining = False
        #: Why the socket is not read now (empty: it is read).  Shared and immutable while
        #: empty, as for nearly every connection: no set allocated per socket.
        self.pausedFor: frozenset[str] = _NOT_PAUSED
        self._overflowed = False
        self._failureLogged = False

    # -- autobahn callbacks --------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        # Before the opening handshake completes, autobahn buffers what arrives until it finds
        # the end of the request head: cap that buffer (the HTTP side caps it too, see
        # tm20.web; this also covers a factory served without it).
        if self._overflowed:
            return
        if (
            self.state == self.STATE_CONNECTING
            and len(self.data) + len(data) > self.factory.config.maxHandshakeBytes
        ):
            self._overflowed = True
            self.log.info(
                "dropping {peer}: opening handshake over {limit} bytes",
                peer=self.transport.getPeer() if self.transport is not None else "?",
                limit=self.factory.config.maxHandshakeBytes,
            )
            self.dropConnection(abort=True)
            return
        super().dataReceived(data)

    def onConnect(self, request: ConnectionRequest) -> Any:  # None, or a held upgrade's Deferred
        self._limitMessages(self.factory.config.maxPreRegMessageSize)
        # Any path: firmwares dial /ws/tm20/, /pub/chat, / ...  A path /t/<secret> carries the
        # terminal's secret (see tm20.services.identity); it is never logged.
        self.peer = str(request.peer)
        self.path, self.pathSecret = splitSecretPath(str(request.path))
        # What is logged comes from the request line as sent: "//t/SECRET" is parsed as host
        # "t" and path "/SECRET", yet it was meant as a secret path.
        raw = str(getattr(self, "http_request_uri", "") or "").split("?", 1)[0]
        if raw and redactText(raw) != raw:
            self.path = redactText(raw)
        factory = self.factory
        # The site's connection wrapper has already worked out the TCP peer's address.
        tcpHost = getattr(self.transport, "tcpHost", None)
        if not isinstance(tcpHost, str):
            tcpHost = hostOf(self.transport.getPeer()) if self.transport is not None else "local"
        if factory.trustedProxies.networks:
            self.peerHost = forwardedClient(
                tcpHost, request.headers.get("x-forwarded-for"), factory.trustedProxies
            )
        else:
            self.peerHost = tcpHost  # no proxy is trusted: X-Forwarded-For is ignored
        if self.peerHost != tcpHost:
            self.peer = f"{self.peerHost} via {self.peer}"
        if not factory.terminalNetworks.allows(self.peerHost):
            self.log.warn(
                "refused a terminal connection from {peer}: not in the terminal networks",
                peer=self.peerHost,
                path=self.path,
            )
            metrics = getattr(factory.context, "metrics", None)
            if metrics is not None:
                metrics.refused("network")
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "not allowed from this network")
        held = factory.admission.admit(self)
        if held is not None and self.openHandshakeTimeoutCall is not None:
            # the terminal has done its part of the handshake: the wait is the server's
            self.openHandshakeTimeoutCall.cancel()
            self.openHandshakeTimeoutCall = None
        return held

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        if code == ConnectionDeny.SERVICE_UNAVAILABLE and not responseHeaders:
            responseHeaders = [("Retry-After", str(RETRY_AFTER))]
        super().failHandshake(reason, code, responseHeaders)

    def onOpen(self) -> None:
        # The opening handshake is over: keep nothing of it for the life of the connection.
        self.http_request_data = b""
        self.http_response_data = ""
        self.http_headers = {}
        release = getattr(self.transport, "releaseUpgrade", None)
        if release is not None:
            release()
        factory = self.factory
        config = factory.config
        clock = factory.clock
        self.channel = CommandChannel(clock, self.sendCommand, config.commandTimeout)
        self.keepAlive = KeepAlive(
            factory.monotonic,
            config.heartbeatInterval,
            config.connectionTimeout,
            probe=self._probe,
            expire=self._expire,
        )
        self.keepAlive.start()
        if config.regTimeout > 0:
            self._regTimer = factory.monotonic.callLater(config.regTimeout, self._regTimedOut)
        factory.registry.track(self)
        ingest = getattr(factory.context, "ingest", None)
        if ingest is not None and ingest.full:
            self.pauseReading(PAUSE_STORE)
        self.log.debug("connection from {peer} on {path}", peer=self.peer, path=self.path)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.keepAlive is not None:
            self.keepAlive.touch()
        factory = self.factory
        try:
            message = parseFrame(
                payload,
                maxDepth=factory.maxJSONDepth,
                maxArrayLength=factory.maxJSONArrayLength,
                maxValues=factory.maxJSONValues,
            )
        except ProtocolError as e:
            self.log.warn(
                "bad frame from {sn} ({peer}): {problem}",
                sn=self.sn,
                peer=self.peer,
                problem=str(e),
                cmd=e.cmd,
                field=e.field,
            )
            if e.cmd is None and (e.ret is not None or b'"ret' in payload):
                return  # never answer a reply (even one whose "ret" is unreadable)
            if e.cmd == "reg":
                # A refused reg says why on the terminal's screen; the connection stays
                # as it was (registered or not).
                self.sendReply(replies.regInvalid(str(e)))
            else:
                self.sendReply(replies.failure(e.cmd or "unknown"))
            return
        if isinstance(message, CommandReply):
            if message.ret == "gettime" and self.registered:
                watch = getattr(factory.context, "watch", None)
                if watch is not None and self.terminal is not None:
                    watch.clockReply(self.sn, self.terminal.timezone, message.fields.get("time"))
            if self.channel is not None and not self.channel.replyReceived(message):
                self.log.debug("unsolicited {ret} from {sn}", ret=message.ret, sn=self.sn)
            return
        self._inbox.append((message, factory.clock.seconds()))
        if len(self._inbox) >= factory.config.maxPendingMessages:
            self.pauseReading(PAUSE_INBOX)
        self._drain()

    def _fail_connection(
        self,
        code: int = WebSocketServerProtocol.CLOSE_STATUS_CODE_GOING_AWAY,
        reason: str = "going away",
    ) -> None:
        # A frame autobahn refuses (invalid UTF-8, unmasked, reserved bits or opcode, too big):
        # one line here; autobahn's own warnings about it (repeated for each frame read after
        # the first failure, and on the drop that follows) go to debug.
        if self.state != self.STATE_CLOSED and not self._failureLogged:
            self._failureLogged = True
            self.log.warn(
                "closing the connection of {sn} ({peer}): {reason} (WebSocket code {code})",
                sn=self.sn,
                peer=self.peer,
                reason=reason,
                code=code,
            )
        with self._autobahnWarningsDemoted():
            super()._fail_connection(code, reason)

    def dropConnection(self, abort: bool = False) -> None:
        with self._autobahnWarningsDemoted():
            super().dropConnection(abort)

    @contextmanager
    def _autobahnWarningsDemoted(self) -> Iterator[None]:
        saved = self.__dict__.get("log")
        current = self.log
        demoted = _DemotingLogger(
            namespace=current.namespace, source=self, observer=current.observer
        )
        demoted.quiet = isinstance(current, QuietRedactingLogger)
        self.log = demoted
        try:
            yield
        finally:
            if saved is None:
                self.__dict__.pop("log", None)
            else:
                self.log = saved

    def onPing(self, payload: bytes) -> None:
        if self.keepAlive is not None:
            self.keepAlive.touch()
        super().onPing(payload)

    def onPong(self, payload: bytes) -> None:
        if self.keepAlive is not None:
            self.keepAlive.touch()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.admission.done(self)
        if self._regTimer is not None and self._regTimer.active():
            self._regTimer.cancel()
        self._regTimer = None
        if self.keepAlive is not None:
            self.keepAlive.stop()
        if self.channel is not None:
            self.channel.close()
        self._inbox.clear()
        registry = self.factory.registry
        registry.untrack(self)
        if self.sn is not None and self.registered:
            registry.unbind(self.sn, self)
            if not self._failureLogged:  # else the failure's line said it
                self.log.info(
                    "terminal {sn} disconnected (code {code}, {reason})",
                    sn=self.sn,
                    code=code,
                    reason=reason,
                )

    # -- ITerminalSession ------------------------------------------------------------------------------

    def sendCommand(self, payload: Mapping[str, Any]) -> None:
        self._sendJSON(payload)

    def sendReply(self, payload: Mapping[str, Any]) -> None:
        self._sendJSON(payload)

    def close(self, code: int, reason: str) -> None:
        if self.state == self.STATE_OPEN:
            self.sendClose(int(code), reason)  # autobahn wants an int, not an IntEnum
        elif self.state in (self.STATE_CONNECTING, self.STATE_PROXY_CONNECTING):
            self.dropConnection(abort=True)

    def executeCommand(self, payload: Mapping[str, Any], timeout: float | None = None) -> Any:
        assert self.channel is not None, "executeCommand before the connection opened"
        return self.channel.execute(payload, timeout)

    @property
    def gone(self) -> bool:
        """The connection is closed (a registration still queued for it need not be written)."""
        return bool(self.state == self.STATE_CLOSED)

    @property
    def isOpen(self) -> bool:
        """The WebSocket is open: neither closing nor closed."""
        return bool(self.state == self.STATE_OPEN)

    def markRegistered(self, terminal: Terminal, now: float) -> None:
        """Called by the registration service once C{reg} is accepted."""
        self.sn = terminal.sn
        self.terminal = terminal
        self.registered = True
        self.lastRecorded = now
        if self._regTimer is not None and self._regTimer.active():
            self._regTimer.cancel()
        self._regTimer = None
        self._limitMessages(self.factory.config.maxMessageSize)
        self.factory.admission.done(self)

    # -- internals ---------------------------------------------------------------------------------------

    def _limitMessages(self, size: int) -> None:
        """
        Accept messages (and frames) of at most C{size} bytes from now on (never more than
        C{--max-message-size}): autobahn checks a frame's declared length as soon as its header
        arrives, and closes with 1009 before reading the payload.  Until a C{reg} is accepted,
        the limit is C{maxPreRegMessageSize}: an unregistered socket cannot make the server
        buffer and parse megabytes.
        """
        limit = self.factory.config.maxMessageSize
        if 0 < size < limit:
            limit = size
        self.maxMessagePayloadSize = limit
        self.maxFramePayloadSize = limit

    def _sendJSON(self, payload: Mapping[str, Any]) -> None:
        if self.state == self.STATE_OPEN:
            self.sendMessage(replies.encodeFrame(payload), isBinary=False)

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while not self._busy and self._inbox and self.state == self.STATE_OPEN:
                message, arrived = self._inbox.popleft()
                self._busy = True
                d = self.factory.dispatcher.dispatch(self.factory.context, self, message)
                d.addCallback(self._handled, message, arrived)
        finally:
            self._draining = False

    def _handled(
        self, reply: dict[str, Any] | None, message: TerminalMessage, arrived: float
    ) -> None:
        if reply is not None:
            self.sendReply(reply)
            if "access" in reply:
                # an access decision's latency: from the request's arrival to its reply written
                metrics = getattr(self.factory.context, "metrics", None)
                if metrics is not None:
                    metrics.accessAnswered(message.cmd, self.factory.clock.seconds() - arrived)
        # after the answer, not on its way: the watch hears of every command of a registered
        # terminal (one call)
        watch = self.factory.context.watch
        if watch is not None and self.registered and self.sn is not None:
            watch.answered(self.sn, message, reply)
        self._busy = False
        if len(self._inbox) <= self.factory.config.maxPendingMessages // 2:
            self.resumeReading(PAUSE_INBOX)
        self._drain()

    def pauseReading(self, reason: str) -> None:
        """
        Stop reading the socket for C{reason} (L{PAUSE_INBOX}, L{PAUSE_STORE}, ...): it is read
        again once every reason given has been withdrawn by L{resumeReading}.  This is the only
        code that pauses the transport.
        """
        if reason in self.pausedFor:
            return
        self.pausedFor = self.pausedFor | {reason}
        if len(self.pausedFor) == 1:
            self.log.debug(
                "pausing reads from {sn}: {reason} ({n} messages pending)",
                sn=self.sn,
                reason=reason,
                n=len(self._inbox),
            )
            producer = IPushProducer(self.transport, None)
            if producer is not None:
                producer.pauseProducing()

    def resumeReading(self, reason: str) -> None:
        """
        Withdraw C{reason} to pause (see L{pauseReading}); the socket is read again when no
        other reason remains.
        """
        if reason not in self.pausedFor:
            return
        self.pausedFor = self.pausedFor - {reason} or _NOT_PAUSED
        if not self.pausedFor and self.state != self.STATE_CLOSED:
            producer = IPushProducer(self.transport, None)
            if producer is not None:
                producer.resumeProducing()

    def _probe(self) -> None:
        # Before reg the terminal is unknown: it is not probed (the reg deadline applies).
        if self.registered and self.channel is not None and not self.channel.busy:
            self.sendCommand(PROBE)

    def _expire(self) -> None:
        self.log.info(
            "terminal {sn} ({peer}) silent for {timeout}s: disconnecting",
            sn=self.sn,
            peer=self.peer,
            timeout=self.factory.config.connectionTimeout,
        )
        self.close(CloseCode.TIMEOUT, "connection timeout")

    def _regTimedOut(self) -> None:
        self._regTimer = None
        if not self.registered:
            self.log.info("no reg from {peer} in time: disconnecting", peer=self.peer)
            self.close(CloseCode.NO_REG, "reg expected")
