"""Log observers: text or JSON lines, filtered by level, autobahn's chatter kept down."""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.python.components import Componentized

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

#: Libraries whose debug output is huge (every frame, ping and handshake).
_NOISY_NAMESPACES = ("autobahn", "txaio", "txpostgres")


def makeObserver(
    logFormat: str = "text", logLevel: str = "info", stream: IO[str] | None = None
) -> ILogObserver:
    """
    An observer writing to C{stream} (stderr by default): C{text} lines, or C{json} with one
    JSON object per line (structured fields kept).  Events below C{logLevel} are dropped, and the
    noisy libraries are held at C{info} or above even when C{logLevel} is C{debug}.

    txaio's global log level (autobahn's loggers) is set to the same floor, so that autobahn's
    per-frame C{log.debug(...)} calls are no-ops instead of events built and then dropped.
    """
    out = sys.stderr if stream is None else stream
    level = LogLevel.levelWithName(logLevel)
    inner: ILogObserver
    if logFormat == "json":
        inner = jsonFileLogObserver(out, recordSeparator="")
    elif logFormat == "text":
        inner = textFileLogObserver(out)
    else:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {logFormat!r}")
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    noisy = max(level, LogLevel.info, key=_order)
    for namespace in _NOISY_NAMESPACES:
        predicate.setLogLevelForNamespace(namespace, noisy)
    _quietTxaio(noisy)
    return FilteringLogObserver(inner, [predicate])


def installObserver(parent: Any, observer: ILogObserver | None) -> None:
    """
    Give twistd's application our observer, unless it already has one.  twistd builds the
    Application after C{makeService()} and starts logging after the service joins it, so a
    service calls this from C{setServiceParent}: C{--log-format}/C{--log-level} then apply.
    """
    if observer is not None and isinstance(parent, Componentized):
        if parent.getComponent(ILogObserver, None) is None:
            parent.setComponent(ILogObserver, observer)


def _quietTxaio(level: LogLevel) -> None:
    """Set txaio's global log level (idempotent; a logger with its own level keeps it)."""
    try:
        import txaio
    except ImportError:  # pragma: no cover - autobahn depends on it
        return
    txaio.use_twisted()  # what autobahn.twisted does on import; idempotent
    txaio.set_global_log_level(level.name)  # type: ignore[attr-defined]


def _order(level: LogLevel) -> int:
    return list(LogLevel.iterconstants()).index(level)
