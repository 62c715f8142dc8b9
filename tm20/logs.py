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


def twistdLogFile(twistdOptions: Any) -> str | None:
    """
    Where twistd itself would write its log, from its options (the C{parent} of ours):
    C{--logfile}, else C{twistd.log} when it daemonizes; C{None} for the standard streams
    (C{-n} without C{--logfile}, C{--logfile -}), for C{--syslog}/C{--logger} (see
    L{usesTwistdObserver}), and for any other runner (C{twist}, a C{.tac}).
    """
    if twistdOptions is None or "nodaemon" not in twistdOptions:
        return None
    if usesTwistdObserver(twistdOptions):
        return None
    logfile = twistdOptions.get("logfile") or ""
    if logfile == "-" or (not logfile and twistdOptions.get("nodaemon")):
        return None
    return str(logfile or "twistd.log")


def usesTwistdObserver(twistdOptions: Any) -> bool:
    """C{True} when twistd was asked for its own observer (C{--syslog}, C{--logger}): keep it."""
    return twistdOptions is not None and bool(
        twistdOptions.get("syslog") or twistdOptions.get("logger")
    )


def openLogFile(path: str) -> IO[str]:
    """
    The log file twistd would open at C{path} (rotated at 1 MB, and on C{SIGUSR1} like
    twistd's).
    """
    from twisted.python.logfile import LogFile

    logFile = LogFile.fromFullPath(path)
    try:
        import signal

        if not signal.getsignal(signal.SIGUSR1):

            def rotate(signum: int, frame: Any) -> None:
                from twisted.internet import reactor
                from twisted.internet.interfaces import IReactorFromThreads

                IReactorFromThreads(reactor).callFromThread(logFile.rotate)

            signal.signal(signal.SIGUSR1, rotate)
    except (ImportError, ValueError, AttributeError):  # pragma: no cover - not on POSIX
        pass
    return logFile


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
    # txaio binds its API functions at run time (use_twisted), so mypy cannot see them.
    txaio.set_global_log_level(level.name)  # type: ignore[attr-defined]


def _order(level: LogLevel) -> int:
    return list(LogLevel.iterconstants()).index(level)
