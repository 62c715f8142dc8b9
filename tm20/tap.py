"""
C{twistd tm20}: options and service.

Every option has an environment variable; precedence is command line > environment > default.
The environment is read when the options are parsed (injectable for tests), never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from twisted.python import usage

from tm20.config import OPTIONS, ServerConfig
from tm20.options import Option, resolve


class Options(usage.Options):
    """
    Options of C{twistd tm20} (and of C{tm20.tac}, from the environment alone), made from the
    declarations of L{tm20.config.ServerConfig} (see L{tm20.options}).
    """

    synopsis = "[options]"
    longdesc = (
        "Serve TM20-WIFI / AiFace terminals (WebSocket+JSON) and the REST API on one port. "
        "Every option can also be set by the environment variable named in its help."
    )

    optFlags = [[o.name, o.short, o.helpText()] for o in OPTIONS if o.kind == "flag"]
    optParameters = [[o.name, o.short, None, o.helpText()] for o in OPTIONS if o.kind == "value"]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._environ = os.environ if environ is None else environ
        for declared in OPTIONS:
            if declared.kind == "list":
                self[declared.key] = []

    def postOptions(self) -> None:
        env = self._environ
        values = resolve(OPTIONS, self, env)
        # --debug lowers the log level unless a level is given (on the command line, in any
        # spelling, or in the environment)
        levelGiven = self["log-level"] is not None or env.get("TM20_LOG_LEVEL") not in (None, "")
        if values["debug"] and not levelGiven:
            values["logLevel"] = "debug"
        self._config = ServerConfig(**values)
        _checkWorkers(self._config)
        for declared in OPTIONS:
            value = values[declared.field]
            if declared.kind == "list":
                value = list(value)
            elif declared.invert:
                value = not value
            self[declared.key] = value

    def toConfig(self) -> ServerConfig:
        """The validated settings as a L{ServerConfig}."""
        return self._config


def _checkWorkers(config: ServerConfig) -> None:
    """C{--workers} above 1 needs PostgreSQL and ports that worker processes can adopt."""
    if config.workers <= 1:
        return
    if config.database.startswith("sqlite:"):
        raise usage.UsageError(
            f"--workers {config.workers} needs PostgreSQL: a SQLite database is one file"
            " written by one process (several would wait on its lock and could not route"
            " commands between them); use --workers 1, or --database postgresql://..."
        )
    from tm20.cluster.workers import endpointFamily
    from tm20.service import listenSpec

    for port in config.ports:
        try:
            endpointFamily(listenSpec(port, 1))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None


def _listOption(declared: Option) -> Any:
    def opt(self: Options, value: str) -> None:
        self[declared.key].append(value)

    opt.__doc__ = declared.helpText() + "  Repeatable."
    return opt


for _declared in OPTIONS:
    if _declared.kind == "list":
        _method = _listOption(_declared)
        setattr(Options, "opt_" + _declared.name.replace("-", "_"), _method)
        if _declared.short:
            setattr(Options, "opt_" + _declared.short, _method)
del _declared, _method


def makeService(options: Options, reactor: Any = None) -> Any:
    """The C{tm20} service for twistd (and C{tm20.tac})."""
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from tm20.service import TM20Service, buildServer, collectorFor
    from tm20.startup import processExit
    from tm20.store import storeFromURL

    config = options.toConfig()
    try:
        store = storeFromURL(config.database, reactor, poolSize=config.poolSize)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None
    if config.migrateOnly:
        from tm20.store.migrate import MigrateOnlyService

        return MigrateOnlyService(store, reactor, _observer(options, config))

    processExit.install()

    def stopOnFailure(_: Any) -> None:
        # twistd would exit 0 (or keep running): exit non-zero, after its clean-up
        processExit.fail(reactor)

    if config.workers > 1:
        from tm20.cluster.workers import WorkersService
        from tm20.logs import twistdLogFile, usesTwistdObserver

        parent = options.parent
        logFile = None if usesTwistdObserver(parent) else twistdLogFile(parent)
        return WorkersService(config, reactor, _observer(options, config), logFile=logFile)
    server = buildServer(config, reactor, store)
    # a daemonizing twistd's parent exits with the status reported before the reactor runs
    twistd = options.parent
    daemon = twistd is not None and "nodaemon" in twistd and not twistd["nodaemon"]
    return TM20Service(
        server,
        _observer(options, config),
        onStartFailure=stopOnFailure,
        preflight=daemon,
        collector=collectorFor(server),
    )


def twistdOptionsFromArgv(argv: list[str] | None = None) -> Any:
    """
    twistd's own options, read again from its command line (for C{tm20.tac}, which twistd does
    not hand them to): whether it daemonizes and where it logs.  C{None} when they cannot be
    read (not run by twistd).
    """
    import sys

    try:
        from twisted.scripts.twistd import ServerOptions
    except ImportError:  # pragma: no cover - not on POSIX
        return None

    class _Again(ServerOptions):
        subCommands: list[Any] = []  # noqa: RUF012 - no plugin lookup

        def opt_reactor(self, shortName: str) -> None:
            pass  # twistd has installed it already

    twistd = _Again()
    try:
        twistd.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except (usage.UsageError, SystemExit):
        return None
    return twistd


def _observer(options: Options, config: ServerConfig) -> Any:
    """
    Our log observer (C{--log-format}, C{--log-level}) writing where twistd would: the standard
    error stream in the foreground, C{--logfile} or C{twistd.log} when daemonized.  C{None}
    (twistd's own observer) for C{--syslog} and C{--logger}.
    """
    from tm20.logs import makeObserver, openLogFile, twistdLogFile, usesTwistdObserver

    twistd = options.parent
    if usesTwistdObserver(twistd):
        return None
    path = twistdLogFile(twistd)
    stream = openLogFile(path) if path is not None else None
    return makeObserver(config.logFormat, config.logLevel, stream=stream)
