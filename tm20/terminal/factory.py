"""The WebSocket factory for terminals: limits, clock, dispatcher, registry."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from tm20.config import ServerConfig
from tm20.dispatch import Dispatcher
from tm20.protocol.parser import DEFAULT_MAX_VALUES
from tm20.terminal.admission import Admission
from tm20.terminal.limits import NetworkList
from tm20.terminal.monotonic import monotonicClock
from tm20.terminal.protocol import (
    QuietRedactingLogger,
    RedactingLogger,
    TerminalProtocol,
    quietAutobahnDebug,
)

#: Accepting new connections pauses while this many times C{--max-registering} upgrades are
#: held (L{Admission.crowdFactor}): at 1, the clients behind the paused listener fell into
#: their own slow TCP retries and a reconnect storm of 2 000 took 1-2 s longer.
ACCEPT_PAUSE_FACTOR = 4.0

#: How long an upgrade may be held when C{--reg-timeout} is 0 (see L{Admission}).
_HOLD_SECONDS = 60.0


class _ClockTimer:
    """
    Stands in for autobahn's batched timer (its handshake and close timeouts), so that they run
    on the injected clock; autobahn otherwise uses txaio's global reactor.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock

    def call_later(self, delay: float, func: Callable[..., Any], *a: Any, **kw: Any) -> _Call:
        return _Call(self._clock.callLater(delay, func, *a, **kw))


class _Call:
    def __init__(self, call: IDelayedCall) -> None:
        self._call = call

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


class TerminalFactory(WebSocketServerFactory):
    """
    Builds one L{TerminalProtocol} per terminal.

    Limits: message size (oversize closes with 1009, C{failByDrop=False}), opening-handshake
    timeout and size, JSON nesting depth, array length and value count, no compression (a
    C{permessage-deflate} offer is declined), no web status page, no WebSocket pings
    (terminals ignore them; the keep-alive is at application level).  Terminals may be
    restricted to source networks (C{403} at the upgrade).

    @ivar clock: the reactor (or a C{Clock}): wall time and the other timers.
    @ivar monotonic: the keep-alive's clock (L{tm20.terminal.monotonic.monotonicClock} of
        C{clock} unless given).
    @ivar terminalNetworks: where terminals may connect from (empty: anywhere).
    @ivar trustedProxies: reverse proxies whose C{X-Forwarded-For} is believed.
    @ivar admission: the connections registering now, and the upgrades held (L{Admission}).
    """

    # autobahn declares C{protocol} as its base protocol class's exact type (not a subclass).
    protocol = TerminalProtocol  # type: ignore[assignment]

    #: JSON limits applied by the parser (nesting depth, longest array).
    maxJSONDepth = 16
    maxJSONArrayLength = 100_000
    #: Most JSON values in one frame (counted before decoding, see
    #: L{tm20.protocol.parser.countJSONValues}); well above any real terminal's batch.
    maxJSONValues = DEFAULT_MAX_VALUES

    def __init__(
        self,
        context: Any,
        dispatcher: Dispatcher,
        config: ServerConfig,
        clock: IReactorTime,
        url: str | None = None,
        monotonic: IReactorTime | None = None,
    ) -> None:
        quietAutobahnDebug()
        super().__init__(url=url)
        self.context = context
        self.dispatcher = dispatcher
        self.config = config
        self.clock = clock
        #: The keep-alive's clock: monotonic time, immune to steps of the wall clock.
        self.monotonic = monotonicClock(clock) if monotonic is None else monotonic
        self.registry = context.registry
        self._batched_timer = _ClockTimer(clock)
        self.terminalNetworks = NetworkList(config.terminalNetworks)
        self.trustedProxies = NetworkList(config.trustedProxies)
        #: At most C{--max-registering} connections registering at once (the others wait).
        self.admission = Admission(
            config.maxRegistering,
            self.monotonic,
            slotSeconds=config.handshakeTimeout,
            holdSeconds=config.regTimeout or _HOLD_SECONDS,
            onHeld=self._upgradeHeld,
            onRefused=self._upgradeRefused,
            crowdFactor=ACCEPT_PAUSE_FACTOR,
        )
        self.setProtocolOptions(
            maxMessagePayloadSize=config.maxMessageSize,
            maxFramePayloadSize=config.maxMessageSize,
            failByDrop=False,
            openHandshakeTimeout=config.handshakeTimeout,
            closeHandshakeTimeout=config.closeTimeout,
            webStatus=False,
            autoPingInterval=0,
            tcpNoDelay=True,
            perMessageCompressionAccept=lambda offers: None,
        )

    def _upgradeHeld(self) -> None:
        metrics = getattr(self.context, "metrics", None)
        if metrics is not None:
            metrics.upgradesHeld.inc()

    def _upgradeRefused(self) -> None:
        metrics = getattr(self.context, "metrics", None)
        if metrics is not None:
            metrics.refused("busy")

    # autobahn's signature names each of its 30 options; this one passes them all through.
    def setProtocolOptions(self, **options: Any) -> None:  # type: ignore[override]
        super().setProtocolOptions(**options)
        if hasattr(self, "config"):
            self.protocol = self._configuredProtocol(self.protocol)

    def _configuredProtocol(self, protocol: type[Any]) -> type[Any]:
        """
        A subclass of C{protocol}, built once per factory, whose class attributes are this
        factory's protocol options and whose logger drops debug events unless the server logs at
        debug level.  autobahn copies every option it does not find on the protocol into each
        new connection (29 instance attributes, and a C{pformat} of them for a debug line): with
        the options on the class it copies nothing, and every connection shares them; its
        C{CONFIG_ATTRS} is emptied so that it does not even look.
        """
        base = protocol.__dict__.get("_tm20ConfiguredFrom", protocol)
        attrs: dict[str, Any] = {"_tm20ConfiguredFrom": base, "__module__": base.__module__}
        for name in getattr(base, "CONFIG_ATTRS", ()):
            value = getattr(self, name)
            if isinstance(value, types.FunctionType):
                value = staticmethod(value)
            attrs[name] = value
        # Every option is now on the class: autobahn's copy loop at each connection
        # (C{hasattr}, C{getattr} and a log entry per option, 29 of them) would find them all.
        attrs["CONFIG_ATTRS"] = ()
        if issubclass(base, TerminalProtocol):
            debug = str(getattr(self.config, "logLevel", "info")).lower() == "debug"
            attrs["log"] = (RedactingLogger if debug else QuietRedactingLogger)()
        return type(base.__name__, (base,), attrs)
