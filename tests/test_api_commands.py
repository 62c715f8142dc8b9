"""
Commands that are safe to queue, and the original README's requests as written.

  - Every command expires (C{expiresIn}, defaults by kind); an expired one is never delivered,
    and reads show it C{expired} even when the terminal never comes back.  Time is an injected
    C{Clock} shared by the server and its store.
  - C{DELETE /api/commands/{id}} cancels a queued command; 409 once sent; 404 unknown.
  - Paged commands posted to C{/command/}, and pulls, page to the end whatever the terminal's
    page size (10, 40, 50) and its C{count}/C{to} conventions.
  - The curl examples and JSON messages of the original (French) README work as written, with a
    token added.

A real server on loopback, real HTTP, simulated terminals over real WebSockets; SQLite here and
PostgreSQL in the subclass at the end.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock

from tests.serverfixture import RunningServer, connectRaw, registeredClient
from tests.test_api_support import ADMIN, READER, WRITER, ApiTestCase, simulated
from tm20.config import ServerConfig
from tm20.interfaces import IStore
from tm20.service import TM20Service, buildServer
from tm20.store.sqlite import SQLiteStore

SEED_SN = "ZX0006827500"

#: The curl examples of the original README (seed-README.fr.md, "Exemples d'utilisation"),
#: verbatim.  Each runs as written, with C{Authorization: Bearer} added.
SEED_CURL_EXAMPLES = r"""
# Lister les terminaux
curl http://localhost:7788/api/terminals/

# Ouvrir la porte
curl -X POST http://localhost:7788/api/terminals/ZX0006827500/command/ \
  -H "Content-Type: application/json" \
  -d '{"command": "opendoor", "params": {"door": 1, "delay": 5}}'

# Synchroniser l'heure
curl -X POST http://localhost:7788/api/terminals/ZX0006827500/command/ \
  -H "Content-Type: application/json" \
  -d '{"command": "settime"}'

# Récupérer les logs
curl "http://localhost:7788/api/terminals/ZX0006827500/logs/?limit=50"
"""

#: The "Messages Serveur → Terminal" of the original README, verbatim.
SEED_SERVER_MESSAGES = (
    {
        "cmd": "setuserinfo",
        "enrollid": 1,
        "name": "John Doe",
        "backupnum": 0,
        "admin": 0,
        "record": "base64_fingerprint_data",
    },
    {"cmd": "deleteuser", "enrollid": 1, "backupnum": 13},
    {"cmd": "opendoor", "door": 1, "delay": 5},
    {"cmd": "settime", "cloudtime": "2024-01-15 10:30:00"},
)


def _curlCommands(text: str) -> list[list[str]]:
    """The curl command lines of C{text} (backslash continuations joined), as argv lists."""
    joined = text.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip().startswith("curl ")]


def _parseCurl(argv: list[str]) -> tuple[str, str, dict[str, str], bytes | None]:
    """C{(method, url, headers, body)} of a curl argv using -X, -H and -d only."""
    assert argv[0] == "curl"
    method, url, headers, data = "GET", "", {}, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(args).encode("utf-8")
            if method == "GET":
                method = "POST"
        else:
            assert not arg.startswith("-"), arg
            url = arg
    return method, url, headers, data


class CommandSafetyTests(ApiTestCase):
    """On SQLite (PostgreSQL in the subclass)."""

    clock: Clock

    def makeClockedStore(self, clock: Clock) -> IStore:
        return SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor, clock=clock)

    @inlineCallbacks
    def startClocked(self) -> Any:
        """A server (and store) whose time is C{self.clock}, set to the wall clock's now."""
        self.clock = Clock()
        self.clock.advance(reactor.seconds())
        store = self.makeClockedStore(self.clock)
        # no commands of the server's own (the automatic fetch of missing logs) in the queue's way
        config = ServerConfig(
            ports=("tcp:0:interface=127.0.0.1",),
            apiTokens=(f"admin:{ADMIN}",),
            fetchMissingLogs=False,
        )
        service = TM20Service(buildServer(config, reactor, store, clock=self.clock))
        service.startService()
        ports = yield service.ready
        self.addCleanup(service.stopService)
        self.running = RunningServer(service, ports[0].getHost().port)
        from tm20.api._auth import hashToken

        yield store.addApiToken("reader", hashToken(READER), ("read",))
        yield store.addApiToken("writer", hashToken(WRITER), ("write",))
        return self.running

    @inlineCallbacks
    def post(self, sn: str, body: dict[str, Any], **kw: Any) -> Any:
        r = yield self.call("POST", f"/api/terminals/{sn}/command/", body, **kw)
        return r

    @inlineCallbacks
    def auditOf(self, action: str) -> Any:
        r = yield self.call("GET", "/api/audit/?limit=1000")
        self.assertEqual(r.status, 200)
        return [e for e in r.json["items"] if e["action"] == action]

    def at(self, iso: str) -> datetime:
        return datetime.fromisoformat(iso)

    # -- expiry --------------------------------------------------------------------------------

    @inlineCallbacks
    def test_expiredCommandIsNeverDelivered(self) -> Any:
        """
        An opendoor queued for an offline terminal expires after 60 s: when the terminal
        reconnects later, the door stays shut; the week-long setdevinfo and a gettime with its
        own longer expiresIn are still delivered.
        """
        yield self.startClocked()
        yield self.call("POST", "/api/terminals/", {"sn": "SIM1"})
        door = yield self.post("SIM1", {"command": "opendoor", "params": {"doornum": 1}})
        self.assertEqual((door.status, door.json["status"]), (202, "queued"))
        created = self.at(door.json["createdAt"])
        self.assertEqual(self.at(door.json["expiresAt"]) - created, timedelta(seconds=60))
        settings = yield self.post("SIM1", {"command": "setdevinfo", "params": {"volume": 3}})
        self.assertEqual(
            self.at(settings.json["expiresAt"]) - self.at(settings.json["createdAt"]),
            timedelta(days=7),
        )
        probe = yield self.post("SIM1", {"command": "gettime", "expiresIn": 600})
        self.assertEqual(
            self.at(probe.json["expiresAt"]) - self.at(probe.json["createdAt"]),
            timedelta(seconds=600),
        )
        wipe = yield self.post("SIM1", {"command": "cleanlog", "confirm": True})
        self.assertEqual(
            self.at(wipe.json["expiresAt"]) - self.at(wipe.json["createdAt"]),
            timedelta(hours=1),
        )

        # one left "sent" by a server that stopped mid-delivery expires as well
        leftover = yield self.post("SIM1", {"command": "opendoor", "params": {"doornum": 2}})
        store = self.running.context.store
        yield store.updateCommand(leftover.json["id"], "sent", None, True)

        self.clock.advance(61)
        connection = yield self.connect(simulated("SIM1", doors=4, logs=5))
        for command in (settings, probe, wipe):
            yield self.until(
                lambda i=command.json["id"]: self.commandStatus(i).addCallback(
                    lambda s: s == "succeeded"
                ),
                f"command {command.json['id']} delivered",
            )
        self.assertEqual(connection.terminal.doorOpens, [])
        self.assertEqual(connection.terminal.devinfo["volume"], 3)
        r = yield self.call("GET", f"/api/commands/{door.json['id']}")
        self.assertEqual(r.json["status"], "expired")
        self.assertEqual((r.json["attempts"], r.json["sentAt"]), (0, None))
        self.assertEqual(r.json["finishedAt"], r.json["expiresAt"])
        # the leftover comes after the three delivered ones in the queue: wait for its turn
        # (settled, then audited)
        yield self.until(
            lambda: self.auditOf("command.expire").addCallback(lambda e: len(e) == 2),
            "the leftover settled",
        )
        r = yield self.call("GET", f"/api/commands/{leftover.json['id']}")
        self.assertEqual((r.json["status"], r.json["attempts"]), ("expired", 1))
        expired = yield self.auditOf("command.expire")
        self.assertEqual(
            sorted((e["actor"], e["target"], e["detail"]["id"]) for e in expired),
            [("tm20", "SIM1", door.json["id"]), ("tm20", "SIM1", leftover.json["id"])],
        )

    @inlineCallbacks
    def test_expiryShowsWithoutTheTerminal(self) -> Any:
        """The terminal never comes back: reads still show the command expired, once audited."""
        yield self.startClocked()
        yield self.call("POST", "/api/terminals/", {"sn": "SIM1"})
        door = yield self.post("SIM1", {"command": "opendoor", "params": {"doornum": 2}})
        r = yield self.call("GET", "/api/terminals/SIM1/commands/")
        self.assertEqual([c["id"] for c in r.json["items"]], [door.json["id"]])
        self.clock.advance(59)
        r = yield self.call("GET", f"/api/commands/{door.json['id']}")
        self.assertEqual(r.json["status"], "queued")
        self.clock.advance(1)
        r = yield self.call("GET", "/api/terminals/SIM1/commands/")
        self.assertEqual(r.json["items"], [])
        for _ in range(2):
            r = yield self.call("GET", f"/api/commands/{door.json['id']}")
            self.assertEqual(r.json["status"], "expired")
        self.assertEqual(len((yield self.auditOf("command.expire"))), 1)
        # and an expired command cannot be cancelled any more
        r = yield self.call("DELETE", f"/api/commands/{door.json['id']}")
        self.assertEqual((r.status, r.json["error"]), (409, "not_cancellable"))
        self.assertEqual(r.json["command"]["status"], "expired")

    @inlineCallbacks
    def test_commandQueuedBeforeTheUpgradeExpires(self) -> Any:
        """A queued opendoor stored without expires_at (before 0004) expires 60 s after creation."""
        yield self.startClocked()
        yield self.call("POST", "/api/terminals/", {"sn": "SIM1"})
        store = self.running.context.store
        legacy = yield store.enqueueCommand(
            "SIM1", "opendoor", {"cmd": "opendoor", "doornum": 1}, "ops", 3
        )
        r = yield self.call("GET", f"/api/commands/{legacy.id}")
        self.assertEqual(r.json["status"], "queued")
        self.assertEqual(
            self.at(r.json["expiresAt"]) - self.at(r.json["createdAt"]), timedelta(seconds=60)
        )
        self.clock.advance(60)
        connection = yield self.connect(simulated("SIM1", doors=4))
        yield self.until(
            lambda: self.commandStatus(legacy.id).addCallback(lambda s: s == "expired"),
            "the legacy command expired",
        )
        self.assertEqual(connection.terminal.doorOpens, [])

    @inlineCallbacks
    def test_expiresInIsValidated(self) -> Any:
        yield self.startClocked()
        yield self.call("POST", "/api/terminals/", {"sn": "SIM1"})
        for value in (0, -5, 31 * 86400, "60", 1.5):
            r = yield self.post("SIM1", {"command": "gettime", "expiresIn": value})
            self.assertEqual((r.status, r.json.get("field")), (400, "expiresIn"), value)

    # -- the terminal's record ---------------------------------------------------------------------

    @inlineCallbacks
    def test_connectedTerminalIsNotReadAgain(self) -> Any:
        """
        A command for a terminal connected here takes the terminal's record from its
        connection (no store read); once the terminal is deleted (its connection closing), a
        command for it is a 404 again.
        """
        yield self.startClocked()
        yield self.call("POST", "/api/terminals/", {"sn": "SIM1"})
        connection = yield self.connect(simulated("SIM1", doors=4))
        store = self.running.context.store
        reads: list[str] = []
        getTerminal = store.getTerminal

        def counting(sn: str) -> Any:
            reads.append(sn)
            return getTerminal(sn)

        self.patch(store, "getTerminal", counting)
        r = yield self.post("SIM1", {"command": "opendoor", "params": {"doornum": 1}})
        self.assertEqual((r.status, r.json["status"]), (200, "succeeded"))
        self.assertEqual([doors for _, doors in connection.terminal.doorOpens], [[1]])
        self.assertEqual(reads, [])
        r = yield self.call("DELETE", "/api/terminals/SIM1/")
        self.assertEqual(r.status, 204)
        del reads[:]
        r = yield self.post("SIM1", {"command": "opendoor", "params": {"doornum": 1}})
        self.assertEqual((r.status, r.json["error"]), (404, "not_found"))
        self.assertEqual(reads, ["SIM1"])
        self.assertEqual(len(connection.terminal.doorOpens), 1)

    # -- cancellation ----------------------------------------------------------------------------

    @inlineCallbacks
    def test_cancelAQueuedCommand(self) -> Any:
        yield self.startClocked()
        yield self.call("POST", "/api/terminals/", {"sn": "SIM1"})
        door = yield self.post("SIM1", {"command": "opendoor", "params": {"doornum": 1}})
        commandId = door.json["id"]
        r = yield self.call("DELETE", f"/api/commands/{commandId}", token=READER)
        self.assertEqual(r.status, 403)
        r = yield self.call("DELETE", f"/api/commands/{commandId}", token=WRITER)
        self.assertEqual((r.status, r.json["status"]), (200, "cancelled"))
        self.assertIsNotNone(r.json["finishedAt"])
        r = yield self.call("DELETE", f"/api/commands/{commandId}")
        self.assertEqual((r.status, r.json["error"]), (409, "not_cancellable"))
        self.assertIn("already cancelled", r.json["detail"])
        r = yield self.call("DELETE", "/api/commands/999999")
        self.assertEqual((r.status, r.json["error"]), (404, "not_found"))
        cancelled = yield self.auditOf("command.cancel")
        self.assertEqual(
            [(e["actor"], e["target"], e["detail"]["id"]) for e in cancelled],
            [("writer", "SIM1", commandId)],
        )
        # the terminal comes back: the next command is delivered, the cancelled one never
        connection = yield self.connect(simulated("SIM1", doors=4))
        probe = yield self.post("SIM1", {"command": "gettime"})
        self.assertEqual((probe.status, probe.json["status"]), (200, "succeeded"))
        self.assertEqual(connection.terminal.doorOpens, [])
        r = yield self.call("GET", f"/api/commands/{commandId}")
        self.assertEqual((r.json["status"], r.json["attempts"]), ("cancelled", 0))

    @inlineCallbacks
    def test_cannotCancelOnceSent(self) -> Any:
        yield self.startClocked()
        client = yield registeredClient(self, self.running, sn="RAW1")
        r = yield self.post("RAW1", {"command": "getdevinfo", "wait": False})
        commandId = r.json["id"]
        frame = yield client.next()
        self.assertEqual(frame["cmd"], "getdevinfo")
        yield self.until(
            lambda: self.commandStatus(commandId).addCallback(lambda s: s == "sent"), "sent"
        )
        r = yield self.call("DELETE", f"/api/commands/{commandId}")
        self.assertEqual((r.status, r.json["error"]), (409, "not_cancellable"))
        self.assertIn("already sent", r.json["detail"])
        self.assertEqual((r.json["commandId"], r.json["command"]["status"]), (commandId, "sent"))
        client.send({"ret": "getdevinfo", "sn": "RAW1", "result": True, "volume": 6})
        yield self.until(
            lambda: self.commandStatus(commandId).addCallback(lambda s: s == "succeeded"),
            "answered",
        )
        r = yield self.call("DELETE", f"/api/commands/{commandId}")
        self.assertEqual(r.status, 409)
        self.assertEqual((yield self.auditOf("command.cancel")), [])

    # -- the original README's parameters ----------------------------------------------------------

    @inlineCallbacks
    def test_opendoorDoorAndDelay(self) -> Any:
        """
        C{door} is C{doornum} (door 1 only, no confirmation needed); C{delay} is validated, not
        sent, and the answer says so.
        """
        yield self.startClocked()
        connection = yield self.connect(simulated("SIM1", doors=4))
        r = yield self.post("SIM1", {"command": "opendoor", "params": {"door": 1, "delay": 5}})
        self.assertEqual((r.status, r.json["status"]), (200, "succeeded"))
        self.assertEqual(r.json["payload"], {"cmd": "opendoor", "doornum": 1})
        self.assertEqual(connection.terminal.doorOpens[-1][1], [1])
        self.assertEqual([w["field"] for w in r.json["warnings"]], ["params.delay"])
        self.assertIn("opendelay", r.json["warnings"][0]["detail"])
        again = yield self.call("GET", f"/api/commands/{r.json['id']}")
        self.assertEqual(again.json["warnings"], r.json["warnings"])
        plain = yield self.post("SIM1", {"command": "opendoor", "params": {"doornum": 2}})
        self.assertEqual(plain.json["warnings"], [])
        for params, field in (
            ({"door": 1, "doornum": 1}, "params.doornum"),
            ({"door": 5}, "params.door"),
            ({"door": 1, "delay": "5"}, "params.delay"),
            ({"door": 1, "delay": 1000}, "params.delay"),
            ({"delay": 5}, "confirm"),  # no door: every door, so it needs "confirm"
        ):
            r = yield self.post("SIM1", {"command": "opendoor", "params": params})
            self.assertEqual((r.status, r.json["field"]), (400, field), params)
        self.assertEqual(len(connection.terminal.doorOpens), 2)

    # -- paging ----------------------------------------------------------------------------------

    @inlineCallbacks
    def test_pagedCommandsAndPullsReadEverything(self) -> Any:
        """
        Terminals paging 10, 40 or 50 at a time, C{count} the page size or the total, C{to}
        inclusive or exclusive: a paged command through C{/command/} answers every record (and
        stores the logs), and pulls read everything.
        """
        yield self.start()
        combos = [
            (size, countIsTotal, exclusiveTo)
            for size in (10, 40, 50)
            for countIsTotal, exclusiveTo in ((False, False), (True, True), (True, False))
        ] + [(10, False, True)]
        for i, (size, countIsTotal, exclusiveTo) in enumerate(combos):
            sn = f"PAGE{i}"
            terminal = simulated(
                sn,
                users=23,
                logs=137,
                seed=i,
                pageSize=size,
                countIsTotal=countIsTotal,
                exclusiveTo=exclusiveTo,
            )
            slots = sum(len(u.credentials) for u in terminal.users.values())
            for entry in terminal.logs[:30]:
                entry.new = True  # 30 logs not yet read by getnewlog (already pushed)
            what = f"{size} a page, count total={countIsTotal}, exclusive to={exclusiveTo}"
            yield self.connect(terminal)
            r = yield self.post(sn, {"command": "getnewlog"})
            self.assertEqual((r.status, r.json["status"]), (200, "succeeded"), what)
            reply = r.json["reply"]
            self.assertEqual((reply["count"], len(reply["record"])), (30, 30), what)
            self.assertEqual(reply["stored"]["inserted"], 30, what)
            r = yield self.post(sn, {"command": "getalllog"})
            reply = r.json["reply"]
            self.assertEqual((reply["count"], len(reply["record"])), (137, 137), what)
            self.assertEqual(reply["stored"], {"inserted": 107, "duplicates": 30, "invalid": 0})
            self.assertGreater(reply["pages"], 1, what)
            r = yield self.post(sn, {"command": "getuserlist"})
            self.assertEqual(r.json["reply"]["count"], slots, what)
            r = yield self.call("POST", f"/api/terminals/{sn}/logs/pull", {"source": "all"})
            self.assertEqual((r.status, r.json["received"]), (200, 137), what)
            r = yield self.call("POST", f"/api/terminals/{sn}/users/pull")
            self.assertEqual((r.status, r.json["listed"], r.json["stored"]), (200, slots, slots))
        r = yield self.call("GET", "/api/terminals/PAGE0/logs/?limit=1000")
        self.assertEqual(len(r.json["items"]), 137)

    @inlineCallbacks
    def test_pageCapAllowsSmallPages(self) -> Any:
        """
        A full terminal (300 logs, logsize 300) paging 10 at a time: the cap, from its capacity,
        counts records, not pages of 50, so nothing is cut.
        """
        yield self.start()
        terminal = simulated("FULL1", logs=300, logsize=300, pageSize=10, countIsTotal=True)
        yield self.connect(terminal)
        r = yield self.call("POST", "/api/terminals/FULL1/logs/pull", {"source": "all"})
        self.assertEqual((r.status, r.json["received"], r.json["inserted"]), (200, 300, 300))
        r = yield self.post("FULL1", {"command": "getalllog"})
        self.assertEqual((r.json["reply"]["count"], r.json["reply"]["pages"]), (300, 30))

    @inlineCallbacks
    def test_paginationsOfOneTerminalDoNotInterleave(self) -> Any:
        """
        A log pull and a getalllog command at the same time: stn:false carries no id, so they
        run one after the other, and each reads every log.
        """
        yield self.start()
        yield self.connect(simulated("BOTH1", logs=137, pageSize=10))
        pull = self.call("POST", "/api/terminals/BOTH1/logs/pull", {"source": "all"})
        command = self.post("BOTH1", {"command": "getalllog"})
        pulled = yield pull
        commanded = yield command
        self.assertEqual((pulled.status, pulled.json["received"]), (200, 137))
        self.assertEqual(commanded.json["reply"]["count"], 137)
        self.assertEqual(
            len({json.dumps(r, sort_keys=True) for r in commanded.json["reply"]["record"]}), 137
        )

    @inlineCallbacks
    def test_pagedCommandResultFalse(self) -> Any:
        """A terminal refusing the first page: the command failed, with its reason."""
        yield self.start()
        client = yield registeredClient(self, self.running, sn="RAW1")
        d = self.post("RAW1", {"command": "getuserlist"})
        frame = yield client.next()
        self.assertEqual((frame["cmd"], frame["stn"]), ("getuserlist", True))
        client.send({"ret": "getuserlist", "sn": "RAW1", "result": False, "reason": 1})
        r = yield d
        self.assertEqual((r.status, r.json["status"]), (200, "failed"))
        self.assertEqual(r.json["reply"]["reason"], 1)
        self.assertEqual(r.json["reply"]["record"], [])

    # -- the original README, as written ------------------------------------------------------------

    @inlineCallbacks
    def test_seedReadmeCurlExamplesAsWritten(self) -> Any:
        yield self.start()
        terminal = simulated(SEED_SN, doors=4, logs=3)
        connection = yield self.connect(terminal)
        examples = _curlCommands(SEED_CURL_EXAMPLES)
        self.assertEqual(len(examples), 4)
        answers = []
        for argv in examples:
            method, url, headers, data = _parseCurl(argv)
            path = url.removeprefix("http://localhost:7788")
            self.assertNotEqual(path, url)
            r = yield self.call(method, path, token=ADMIN, headers=headers, raw=data)
            answers.append(r)
        listing, door, clock, logs = answers
        self.assertEqual(listing.status, 200)
        self.assertIn(SEED_SN, [t["sn"] for t in listing.json["items"]])
        self.assertEqual((door.status, door.json["status"]), (200, "succeeded"))
        self.assertEqual(connection.terminal.doorOpens[-1][1], [1])  # door 1 only
        self.assertEqual([w["field"] for w in door.json["warnings"]], ["params.delay"])
        self.assertEqual((clock.status, clock.json["status"]), (200, "succeeded"))
        self.assertEqual(logs.status, 200)
        self.assertIn("items", logs.json)

    @inlineCallbacks
    def test_seedReadmeEndpointsAndMessages(self) -> Any:
        """Every endpoint of its table answers, and its server→terminal messages are accepted."""
        yield self.start()
        connection = yield self.connect(simulated(SEED_SN, doors=4))
        base = f"/api/terminals/{SEED_SN}"
        for method, path, body in (
            ("GET", "/api/terminals/", None),
            ("GET", f"{base}/", None),
            ("PATCH", f"{base}/", {"name": "Entrée"}),
            ("GET", f"{base}/users/", None),
            ("GET", f"{base}/logs/", None),
            ("GET", "/api/connected/", None),
        ):
            r = yield self.call(method, path, body)
            self.assertEqual(r.status, 200, (method, path, r.text))
        self.assertEqual([t["sn"] for t in r.json["items"]], [SEED_SN])
        # its Terminal model's field names are accepted too
        r = yield self.call("PATCH", f"{base}/", {"is_whitelisted": True, "is_active": True})
        self.assertEqual((r.status, r.json["approved"], r.json["active"]), (200, True, True))
        r = yield self.call("PATCH", f"{base}/", {"is_active": True, "active": False})
        self.assertEqual((r.status, r.json["field"]), (400, "is_active"))
        for message in SEED_SERVER_MESSAGES:
            params = {k: v for k, v in message.items() if k != "cmd"}
            r = yield self.post(SEED_SN, {"command": message["cmd"], "params": params})
            self.assertEqual((r.status, r.json["status"]), (200, "succeeded"), message)
        self.assertEqual(connection.terminal.doorOpens[-1][1], [1])
        self.assertEqual(connection.terminal.now().year, 2024)

    @inlineCallbacks
    def test_seedReadmeTerminalPathAndReg(self) -> Any:
        """Its websocat test: C{reg} on C{ws://server:7788/ws/tm20/} is answered."""
        yield self.start()
        client = yield connectRaw(self, self.running, "/ws/tm20/")
        reply = yield client.request(
            json.loads('{"cmd":"reg","sn":"TEST001","devinfo":{"modelname":"test"}}')
        )
        self.assertEqual((reply["ret"], reply["result"]), ("reg", True))


class CommandSafetyPostgresTests(CommandSafetyTests):
    """The same on PostgreSQL."""

    def _pgURL(self) -> str:
        from tests import pgharness

        url = pgharness.createDatabase("tm20_cmds")
        self.addCleanup(pgharness.dropDatabase, url)
        return url

    def makeStore(self) -> IStore:
        from tm20.store.postgres import PostgresStore

        store: IStore = PostgresStore.fromURL(self._pgURL(), reactor)
        return store

    def makeClockedStore(self, clock: Clock) -> IStore:
        from tm20.store.postgres import PostgresStore

        store: IStore = PostgresStore.fromURL(self._pgURL(), reactor, clock=clock)
        return store
