"""
The road of one C{sendlog}: which of our files and functions run between the frame's arrival on
the socket and its acknowledgement being written, measured, not read from the code.

    .venv/bin/python -m bench.roadtrace            # SQLite and PostgreSQL (a private cluster)
    .venv/bin/python -m bench.roadtrace sqlite
    .venv/bin/python -m bench.roadtrace command [sqlite|postgresql]   # a REST command's road

A terminal (the in-memory WebSocket of C{tests/memoryws.py}) registers on a server built by
C{tm20.service.buildServer} over a real store; then a profiler records every call into a module
of C{tm20} from the moment the C{sendlog} frame is handed to the protocol until the ack frame is
written (the write of its bytes turns the profiler off), while the real reactor runs the store's
commit.  Printed: the files (in the order first entered), the number of distinct functions, and
the stations of issue 10's road they belong to (L{STATIONS}; any other file is a station of its
own).  Used for the before/after figures of docs/restructuring.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = str(ROOT / "tm20") + "/"

REG = {
    "cmd": "reg",
    "sn": "ROAD0001",
    "cpusn": "CPU-ROAD",
    "devinfo": {"modelname": "AiFace", "firmware": "ai806_f32v_2.73"},
}
SENDLOG = {
    "cmd": "sendlog",
    "sn": "ROAD0001",
    "count": 2,
    "logindex": 7,
    "record": [
        {"enrollid": 1, "time": "2026-11-30 08:00:01", "mode": 1, "inout": 0, "event": 0},
        {"enrollid": 2, "time": "2026-11-30 08:00:02", "mode": 1, "inout": 0, "event": 0},
    ],
}


#: The stations of issue 10's road, by file; the pure leaves of C{tm20/protocol/} (parsing,
#: formatting) are the work of the station that calls them and are not counted apart.
STATIONS = {
    "tm20/terminal/protocol.py": "session",
    "tm20/terminal/keepalive.py": "session",
    "tm20/terminal/monotonic.py": "session",
    "tm20/dispatch.py": "dispatcher",
    "tm20/handlers/sendlog.py": "handler",
    "tm20/handlers/_fields.py": "handler",
    "tm20/services/ingest.py": "ingest service",
    "tm20/services/groupcommit.py": "ingest service",
    "tm20/services/outage.py": "ingest service",
}


def station(filename: str) -> str | None:
    """The station a file of the road belongs to (C{None}: a leaf of C{tm20/protocol/})."""
    if filename.startswith("tm20/protocol/"):
        return None
    if filename.startswith("tm20/store/"):
        return "store"
    return STATIONS.get(filename, filename)


#: What validates a command to a terminal: the frame built from its parameters.
VALIDATIONS = {("tm20/protocol/commands.py", "buildCommand")}


class Road:
    """
    A profiler hook that keeps the C{tm20} functions called, in order; it also counts the
    store's round trips (calls from outside C{tm20/store/} into a public function or method
    of C{tm20/store/}: one transaction each) and the calls of L{VALIDATIONS}.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        self.storeCalls: list[str] = []
        self.validations = 0

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        filename = frame.f_code.co_filename
        if not filename.startswith(PACKAGE):
            return
        key = (filename[len(PACKAGE) - len("tm20/") :], frame.f_code.co_qualname)
        if key in VALIDATIONS:
            self.validations += 1
        if (
            key[0].startswith("tm20/store/")
            and not frame.f_code.co_name.startswith("_")
            and "." in key[1]
            and "<locals>" not in key[1]
        ):
            caller = frame.f_back
            if caller is not None and not caller.f_code.co_filename.startswith(PACKAGE + "store/"):
                self.storeCalls.append(frame.f_code.co_qualname)
        if key not in self._seen:
            self._seen.add(key)
            self.calls.append(key)

    def files(self) -> list[str]:
        ordered: list[str] = []
        for filename, _ in self.calls:
            if filename not in ordered:
                ordered.append(filename)
        return ordered


def until(check: Any, what: str, seconds: float = 20.0) -> Deferred[None]:
    """Poll the real reactor (a measuring tool, not a test) until C{check()} is true."""
    started = reactor.seconds()  # type: ignore[attr-defined]

    def poll() -> Any:
        if check():
            return None
        if reactor.seconds() - started > seconds:  # type: ignore[attr-defined]
            raise RuntimeError(f"never happened: {what}")
        return task.deferLater(reactor, 0.001, poll)  # type: ignore[arg-type]

    return task.deferLater(reactor, 0, poll)  # type: ignore[arg-type]


@inlineCallbacks
def trace(backend: str) -> Any:
    from tests.memoryws import MemoryTerminal
    from tm20.config import ServerConfig
    from tm20.service import buildServer
    from tm20.store import storeFromURL

    if backend == "sqlite":
        url = "sqlite:" + str(Path(tempfile.mkdtemp()) / "road.sqlite3")
    else:
        from tests import pgharness

        url = pgharness.createDatabase("tm20_road")
    store = storeFromURL(url, reactor)
    yield store.start()
    try:
        server = buildServer(ServerConfig(), reactor, store)
        term = MemoryTerminal(server.factory)
        got: list[Any] = []

        def replied() -> bool:
            got.extend(term.messages())
            return bool(got)

        term.send(REG)
        yield until(replied, "the reg reply")
        assert got[0].get("result") is True, got
        got.clear()
        # what the registration sets going (queued commands, the reconciler's pass) ends first:
        # only the sendlog's own road is traced
        yield task.deferLater(reactor, 1.0, lambda: None)  # type: ignore[arg-type]
        term.messages()
        road = Road()
        written = term.transport.write

        def write(data: bytes) -> None:
            # the ack's bytes reach the socket: the road ends here (what runs after the ack, in
            # the same turn or later, is not on its way)
            sys.setprofile(None)
            written(data)

        term.transport.write = write  # type: ignore[method-assign]
        sys.setprofile(road)
        try:
            term.send(SENDLOG)
            yield until(replied, "the sendlog ack")
        finally:
            sys.setprofile(None)
            term.transport.write = written  # type: ignore[method-assign]
        assert got[0].get("ret") == "sendlog" and got[0].get("result") is True, got
        files = road.files()
        stations = sorted({station(f) for f in files} - {None})  # type: ignore[type-var]
        print(
            json.dumps(
                {
                    "backend": backend,
                    "files": len(files),
                    "functions": len(road.calls),
                    "stations": len(stations),
                    "road": files,
                    "stationNames": stations,
                }
            )
        )
        for filename in files:
            names = [name for f, name in road.calls if f == filename]
            print(f"  {filename}: {', '.join(names)}")
        term.protocol.dropConnection(abort=True)
    finally:
        yield store.stop()
        if backend != "sqlite":
            from tests import pgharness

            pgharness.dropDatabase(url)


TOKEN = "road:" + "r" * 40


@inlineCallbacks
def traceCommand(backend: str) -> Any:
    """
    The road of C{POST /api/terminals/{sn}/command/} (C{wait:true}, C{opendoor}): from the
    request handed to the site until its response is written, the terminal answering the
    command as soon as it is sent.  Printed as for C{sendlog}, with the store's round trips and
    the command's validations.
    """
    from treq.testing import StubTreq

    from tests.memoryws import MemoryTerminal
    from tm20.config import ServerConfig
    from tm20.service import buildServer
    from tm20.store import storeFromURL

    if backend == "sqlite":
        url = "sqlite:" + str(Path(tempfile.mkdtemp()) / "road.sqlite3")
    else:
        from tests import pgharness

        url = pgharness.createDatabase("tm20_road")
    store = storeFromURL(url, reactor)
    yield store.start()
    try:
        server = buildServer(ServerConfig(apiTokens=(TOKEN,)), reactor, store)
        term = MemoryTerminal(server.factory)
        got: list[Any] = []

        def replied() -> bool:
            got.extend(term.messages())
            return bool(got)

        term.send(REG)
        yield until(replied, "the reg reply")
        yield task.deferLater(reactor, 1.0, lambda: None)  # type: ignore[arg-type]
        term.messages()
        http = StubTreq(server.site.resource)
        responses: list[Any] = []
        road = Road()

        def answered() -> bool:
            # the terminal answers what it is sent; the site is pumped
            for message in term.messages():
                if "cmd" in message:
                    term.send({"ret": message["cmd"], "sn": REG["sn"], "result": True})
            http.flush()
            return bool(responses)

        from twisted.web.server import Request

        finish = Request.finish

        def finished(request: Request) -> None:
            # the response is complete: the road ends here
            sys.setprofile(None)
            finish(request)

        Request.finish = finished  # type: ignore[method-assign]
        sys.setprofile(road)
        try:
            d = http.post(
                f"http://localhost/api/terminals/{REG['sn']}/command/",
                json={"command": "opendoor", "params": {"doornum": 1}, "wait": True},
                headers={"Authorization": f"Bearer {TOKEN.split(':', 1)[1]}"},
            )
            d.addCallback(responses.append)
            yield until(answered, "the command's response")
        finally:
            sys.setprofile(None)
            Request.finish = finish  # type: ignore[method-assign]
        response = responses[0]
        body = yield response.json()
        assert response.code == 200 and body.get("status") == "succeeded", (response.code, body)
        files = road.files()
        stations = sorted({f for f in files if not f.startswith("tm20/protocol/")})
        print(
            json.dumps(
                {
                    "backend": backend,
                    "road": "command",
                    "files": len(files),
                    "functions": len(road.calls),
                    "ourFilesOutsideProtocol": len(stations),
                    "validations": road.validations,
                    "storeRoundTrips": len(road.storeCalls),
                    "storeCalls": road.storeCalls,
                    "files_": files,
                }
            )
        )
        term.protocol.dropConnection(abort=True)
    finally:
        yield store.stop()
        if backend != "sqlite":
            from tests import pgharness

            pgharness.dropDatabase(url)


def main(argv: list[str]) -> None:
    args = argv[1:]
    command = "command" in args
    backends = [a for a in args if a != "command"] or ["sqlite", "postgresql"]

    @inlineCallbacks
    def run(_: Any) -> Any:
        for backend in backends:
            yield traceCommand(backend) if command else trace(backend)

    task.react(run)


if __name__ == "__main__":
    main(sys.argv)
