"""The WebSocket factory for terminals: limits, clock, dispatcher, registry."""

from __future__ import annotations

import pprint
import types
from collections.abc import Callable
from typing import Any

import autobahn.twisted.websocket as _ab_twisted
import autobahn.util as _ab_util
import autobahn.websocket.protocol as _ab_protocol
from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from tm20.config import ServerConfig
from tm20.dispatch import Dispatcher
from tm20.terminal.limits import NetworkList
from tm20.terminal.monotonic import monotonicClock
from tm20.terminal.protocol import (
    LazyText,
    QuietRedactingLogger,
    RedactingLogger,
    TerminalProtocol,
)


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
    # Replacing another package's module globals: mypy knows them as functions of another type,
    # or not at all (imported names), hence the three ignores below.
    for module in (_ab_protocol, _ab_twisted):
        if getattr(module, "hltype", None) is _ab_util.hltype:
            module.hltype = _lazyHltype  # type: ignore[attr-defined]
        if getattr(module, "hlval", None) is _ab_util.hlval:
            module.hlval = _lazyHlval  # type: ignore[attr-defined]
    if _ab_protocol.pformat is pprint.pformat:
        _ab_protocol.pformat = _lazyPformat  # type: ignore[assignment]


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
    """

    # autobahn declares C{protocol} as its base protocol class's exact type (not a subclass).
    protocol = TerminalProtocol  # type: ignore[assignment]

    #: JSON limits applied by the parser (nesting depth, longest array).
    maxJSONDepth = 16
    maxJSONArrayLength = 100_000
    #: Most JSON values in one frame (counted before decoding, see
    #: L{tm20.terminal.limits.countJSONValues}); well above any real terminal's batch.
    maxJSONValues = 250_000

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
        the options on the class it copies nothing, and every connection shares them.
        """
        base = protocol.__dict__.get("_tm20ConfiguredFrom", protocol)
        attrs: dict[str, Any] = {"_tm20ConfiguredFrom": base, "__module__": base.__module__}
        for name in getattr(base, "CONFIG_ATTRS", ()):
            value = getattr(self, name)
            if isinstance(value, types.FunctionType):
                value = staticmethod(value)
            attrs[name] = value
        if issubclass(base, TerminalProtocol):
            debug = str(getattr(self.config, "logLevel", "info")).lower() == "debug"
            attrs["log"] = (RedactingLogger if debug else QuietRedactingLogger)()
        return type(base.__name__, (base,), attrs)
