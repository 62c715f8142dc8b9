"""
C{tm20-simulator} / C{python -m tm20.simulator}: run simulated terminals against a server.

Each terminal connects to C{--url}, registers, uploads its C{--logs} stored logs in C{sendlog}
batches of C{--batch-size} (one in flight, waiting for each ack), answers server commands and,
with C{--punch-interval}, produces a new log periodically.  At exit a summary is logged
(terminals registered, logs acknowledged, resends, reconnects).

Serial numbers: C{--sn} is the first one.  With C{--count N} the trailing number of C{--sn} is
incremented, keeping its zero-padded width: C{--sn SIM000001 --count 3} gives C{SIM000001},
C{SIM000002}, C{SIM000003}; C{--sn ZX0990 --count 2} gives C{ZX0990}, C{ZX0991}.  An C{--sn}
without a trailing number gets one appended (C{--sn LAB --count 2}: C{LAB000001}, C{LAB000002}).

Terminal I{i} (0-based) uses the seed C{--seed + i}, so runs are reproducible.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.internet.task import LoopingCall, deferLater, react
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal

log = Logger(namespace="tm20.simulator")

DEFAULT_URL = "ws://127.0.0.1:7788/pub/chat"
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def serialNumbers(first: str, count: int) -> list[str]:
    """
    The serial numbers of C{count} terminals, starting at C{first} (see the module docstring).

    @raise ValueError: if C{count} is not positive.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    match = re.fullmatch(r"(.*?)(\d+)", first)
    if match is None:
        prefix, start, width = first, 1, 6
    else:
        prefix, digits = match.groups()
        start, width = int(digits), len(digits)
    return [f"{prefix}{start + i:0{width}d}" for i in range(count)]


def _positiveInt(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _nonNegativeInt(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _nonNegativeFloat(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def buildParser() -> argparse.ArgumentParser:
    """
    @return: the command-line parser.
    """
    parser = argparse.ArgumentParser(
        prog="tm20-simulator",
        description="Run simulated TM20 terminals (WebSocket clients) against a tm20 server.",
        epilog=(
            "With --count N the serial numbers continue the trailing number of --sn, keeping "
            "its width: SIM000001, SIM000002, ... An --sn without a trailing number gets one "
            "appended (LAB -> LAB000001...)."
        ),
    )
    add = parser.add_argument
    add("--url", default=DEFAULT_URL, help="server URL, ws:// or wss:// (default: %(default)s)")
    add(
        "--sn",
        default="SIM000001",
        help="serial number of the first terminal (default: %(default)s)",
    )
    add("--count", type=_positiveInt, default=1, help="number of terminals (default: %(default)s)")
    add(
        "--users",
        type=_nonNegativeInt,
        default=10,
        help="users per terminal (default: %(default)s)",
    )
    add(
        "--logs",
        type=_nonNegativeInt,
        default=100,
        help="stored logs per terminal (default: %(default)s)",
    )
    add(
        "--batch-size",
        type=_positiveInt,
        default=10,
        help="records per sendlog (default: %(default)s)",
    )
    add(
        "--seed",
        type=int,
        default=0,
        help="random seed; terminal i uses seed+i (default: %(default)s)",
    )
    add(
        "--clock-offset",
        type=float,
        default=0.0,
        help="seconds the terminals' clocks are off, e.g. 600 = ten minutes ahead"
        " (default: %(default)s)",
    )
    add(
        "--ignore-cloudtime",
        action="store_true",
        help="do not set the clock from the server's cloudtime (only settime sets it)",
    )
    add(
        "--punch-interval",
        type=_nonNegativeFloat,
        default=0.0,
        help="seconds between new punches per terminal, 0 = never (default: %(default)s)",
    )
    add(
        "--duration",
        type=_nonNegativeFloat,
        default=0.0,
        help="exit after this many seconds, 0 = run until Ctrl-C (default: %(default)s)",
    )
    add(
        "--until-uploaded",
        action="store_true",
        help="exit once every terminal's stored logs are acknowledged (exit 1 if --duration ends first)",
    )
    add(
        "--paging-style",
        choices=("doc", "th900"),
        default="doc",
        help="paging convention (default: %(default)s)",
    )
    add(
        "--page-size",
        type=_positiveInt,
        default=None,
        help="records per page of paged reads (default: 40 users, 50 logs)",
    )
    add(
        "--reg-retry",
        type=_nonNegativeFloat,
        default=20.0,
        help="seconds before re-sending an unanswered reg (default: %(default)s)",
    )
    add(
        "--ack-timeout",
        type=_nonNegativeFloat,
        default=20.0,
        help="seconds before re-sending an unacknowledged batch (default: %(default)s)",
    )
    add(
        "--heartbeat",
        type=_nonNegativeFloat,
        default=0.0,
        help="re-send reg every N seconds, 0 = never (default: %(default)s)",
    )
    add(
        "--answer-pings",
        action="store_true",
        help="answer WebSocket pings (real TM20 firmware does not)",
    )
    add("--model", default="tfs30", help="devinfo.modelname (default: %(default)s)")
    add("--firmware", default="TH900_click V5.0", help="devinfo.firmware (default: %(default)s)")
    add(
        "--ca-cert",
        default=None,
        help="PEM CA certificate to trust for wss:// (default: the system store)",
    )
    add("--log-level", choices=LOG_LEVELS, default="info", help="log level (default: %(default)s)")
    return parser


def parseArgs(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """
    Parse the command line (C{sys.argv[1:]} when C{argv} is C{None}).
    """
    options = buildParser().parse_args(argv)
    if options.reg_retry <= 0 or options.ack_timeout <= 0:
        buildParser().error("--reg-retry and --ack-timeout must be positive")
    return options


def _startLogging(level: str) -> None:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    if level != "debug":
        # autobahn is very talkative below warn
        predicate.setLogLevelForNamespace("autobahn", LogLevel.warn)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _tlsOptions(options: argparse.Namespace) -> Any:
    if options.ca_cert is None or not options.url.startswith("wss:"):
        return None
    from urllib.parse import urlsplit

    from twisted.internet.ssl import Certificate, optionsForClientTLS

    with open(options.ca_cert, "rb") as pem:
        authority = Certificate.loadPEM(pem.read())
    return optionsForClientTLS(urlsplit(options.url).hostname or "", trustRoot=authority)


def summarize(connections: Sequence[TerminalConnection]) -> dict[str, int]:
    """
    @return: the totals logged at exit.
    """
    return {
        "terminals": len(connections),
        "registered": sum(1 for c in connections if c.stats.regAcks > 0),
        "logsAcknowledged": sum(c.stats.logsAcknowledged for c in connections),
        "logsPending": sum(c.terminal.pendingLogCount() for c in connections),
        "acks": sum(c.stats.acksReceived for c in connections),
        "resends": sum(c.stats.resends for c in connections),
        "reconnects": sum(c.stats.reconnects for c in connections),
        "commands": sum(c.stats.commandsAnswered for c in connections),
    }


def run(reactor: Any, options: argparse.Namespace) -> Deferred[None]:
    """
    Run the terminals described by C{options} until C{--duration}, C{--until-uploaded} or the
    reactor stops.

    @return: a Deferred that fires when the run is over, failing with C{SystemExit(1)} if a
        terminal never registered or C{--until-uploaded} was not met.
    """
    tlsOptions = _tlsOptions(options)
    connections: list[TerminalConnection] = []
    loops: list[LoopingCall] = []
    for index, sn in enumerate(serialNumbers(options.sn, options.count)):
        terminal = SimulatedTerminal(
            sn,
            users=options.users,
            logs=options.logs,
            seed=options.seed + index,
            modelname=options.model,
            firmware=options.firmware,
            pagingStyle=options.paging_style,
            pageSize=options.page_size,
            clockOffset=options.clock_offset,
            followCloudTime=not options.ignore_cloudtime,
        )
        connection = TerminalConnection(
            terminal,
            options.url,
            reactor=reactor,
            batchSize=options.batch_size,
            regRetry=options.reg_retry,
            ackTimeout=options.ack_timeout,
            heartbeat=options.heartbeat,
            answerPings=options.answer_pings,
            tlsOptions=tlsOptions,
        )
        connections.append(connection)
        if options.punch_interval > 0:
            rng = random.Random(options.seed * 1_000_003 + index)

            def punchOnce(
                connection: TerminalConnection = connection, rng: random.Random = rng
            ) -> None:
                userIds = sorted(connection.terminal.users) or [1]
                connection.punch(rng.choice(userIds), mode=1, inout=rng.choice((0, 1)))

            loop = LoopingCall(punchOnce)
            loop.clock = reactor
            loops.append(loop)

    log.info(
        "starting {count} terminal(s) against {url}: {users} users and {logs} stored logs each",
        count=len(connections),
        url=options.url,
        users=options.users,
        logs=options.logs,
    )
    for connection in connections:
        connection.start()
    for loop in loops:
        loop.start(options.punch_interval, now=False).addErrback(
            lambda failure: log.failure("punch loop failed", failure)
        )

    finished = False

    def shutdown() -> Deferred[None]:
        nonlocal finished
        if finished:
            return succeed(None)
        finished = True
        for loop in loops:
            if loop.running:
                loop.stop()
        closing = gatherResults([c.disconnect() for c in connections], consumeErrors=True)

        def report(_: object) -> None:
            totals = summarize(connections)
            log.info(
                "summary: {registered}/{terminals} registered, {logsAcknowledged} logs acknowledged "
                "in {acks} acks ({logsPending} pending), {resends} resends, {reconnects} reconnects, "
                "{commands} commands answered",
                **totals,
            )

        return closing.addCallback(report)

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)

    endings: list[Deferred[Any]] = []
    if options.duration > 0:
        endings.append(deferLater(reactor, options.duration, lambda: "duration"))
    if options.until_uploaded:
        uploaded = gatherResults(
            [c.whenAllLogsAcknowledged() for c in connections], consumeErrors=True
        )
        endings.append(uploaded.addCallback(lambda _: "uploaded"))
    if not endings:
        return Deferred()  # until the reactor is stopped (Ctrl-C)

    def finish(first: tuple[str, int]) -> Deferred[None]:
        reason = first[0]
        log.info("run over ({reason})", reason=reason)
        for ending in endings:
            ending.cancel()

        def exitCode(_: None) -> None:
            registered = all(c.stats.regAcks > 0 for c in connections)
            if not registered or (options.until_uploaded and reason != "uploaded"):
                raise SystemExit(1)

        return shutdown().addCallback(exitCode)

    return DeferredList(endings, fireOnOneCallback=True, consumeErrors=True).addCallback(finish)


def main(argv: Sequence[str] | None = None) -> int:
    """
    The C{tm20-simulator} entry point.

    @param argv: the arguments (C{sys.argv[1:]} when C{None}).
    @return: the exit status: 0, or 1 when a terminal never registered or C{--until-uploaded} was
        not met before C{--duration}.
    """
    options = parseArgs(argv)
    _startLogging(options.log_level)
    try:
        react(run, (options,))
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
