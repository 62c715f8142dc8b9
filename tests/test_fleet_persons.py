"""
Fleet persons and groups end to end: the REST API, the reconciler and simulated terminals over
real loopback WebSockets, on SQLite (L{FleetPersonsTests}) and PostgreSQL
(L{FleetPersonsPostgresTests}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.test_api_support import ApiTestCase, simulated
from tm20.events.model import EventQuery
from tm20.interfaces import IStore
from tm20.services.reconciler import ACTOR

FP = "0a1b(20)ff3c(7)9e"
FACE = "ZmFjZS10ZW1wbGF0ZQ=="


def _holds(terminal: Any, enrollid: int, **expected: Any) -> bool:
    """The simulated terminal holds the user with these fields (credentials: slot -> record)."""
    user = terminal.users.get(enrollid)
    if user is None:
        return False
    for key, value in expected.items():
        if getattr(user, key) != value:
            return False
    return True


class FleetPersonsTests(ApiTestCase):
    timeout = 120

    @inlineCallbacks
    def sync(self, enrollid: int) -> Any:
        r = yield self.call("GET", f"/api/persons/{enrollid}/sync/")
        self.assertEqual(r.status, 200, r.text)
        return {entry["sn"]: entry for entry in r.json["terminals"]}

    @inlineCallbacks
    def syncState(self, enrollid: int, sn: str) -> Any:
        states = yield self.sync(enrollid)
        return states[sn]["state"]

    @inlineCallbacks
    def test_groupOfThreeIncludingOneOffline(self) -> Any:
        """
        A person assigned to a group of three terminals reaches all three, the third when it
        first registers; a change reaches all; removal deletes it from all.
        """
        yield self.start()
        terminals = {sn: simulated(sn) for sn in ("SITE1", "SITE2", "SITE3")}
        yield self.connect(terminals["SITE1"])
        yield self.connect(terminals["SITE2"])
        r = yield self.call("POST", "/api/terminals/", {"sn": "SITE3"})
        self.assertEqual(r.status, 201, r.text)
        r = yield self.call(
            "POST", "/api/groups/", {"name": "site", "terminals": ["SITE1", "SITE2", "SITE3"]}
        )
        self.assertEqual(r.status, 201, r.text)
        credentials = [
            {"backupnum": 0, "record": FP},
            {"backupnum": 11, "record": 12345678},
            {"backupnum": 20, "record": FACE},
        ]
        r = yield self.call(
            "POST",
            "/api/persons/",
            {"enrollid": 100, "name": "Ann", "credentials": credentials, "groups": ["site"]},
        )
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.json["groups"], ["site"])
        wanted = {0: FP, 11: 12345678, 20: FACE}
        for sn in ("SITE1", "SITE2"):
            yield self.until(
                lambda sn=sn: _holds(terminals[sn], 100, name="Ann", credentials=wanted),
                f"Ann on {sn}",
            )
            yield self.until(
                lambda sn=sn: self.syncState(100, sn).addCallback(lambda s: s == "synced"),
                f"synced on {sn}",
            )
        offline = (yield self.sync(100))["SITE3"]
        self.assertEqual(offline["state"], "pending")
        self.assertEqual(offline["detail"], {"waiting": "terminal offline"})
        yield self.connect(terminals["SITE3"])
        yield self.until(
            lambda: _holds(terminals["SITE3"], 100, name="Ann", credentials=wanted), "Ann on 3"
        )
        yield self.until(
            lambda: self.syncState(100, "SITE3").addCallback(lambda s: s == "synced"), "synced 3"
        )
        # one person.synced event per terminal, in the event log
        synced = yield self.running.context.store.listEvents(
            EventQuery(types=("person.synced",), limit=100)
        )
        self.assertEqual(sorted(e.sn for e in synced), ["SITE1", "SITE2", "SITE3"])
        self.assertEqual({e.payload["enrollid"] for e in synced}, {100})
        # the server knows what each terminal holds, verbatim
        user = yield self.running.context.store.getUser("SITE3", 100)
        self.assertEqual({c.backupnum: c.record for c in user.credentials}, wanted)

        # a change reaches all
        changed = [{"backupnum": 0, "record": FP}, {"backupnum": 11, "record": 999}]
        r = yield self.call(
            "PATCH",
            "/api/persons/100/",
            {"name": "Ann B", "credentials": changed, "enabled": False},
        )
        self.assertEqual(r.status, 200, r.text)
        for sn, terminal in terminals.items():
            yield self.until(
                lambda t=terminal: _holds(
                    t, 100, name="Ann B", credentials={0: FP, 11: 999}, enabled=False
                ),
                f"change on {sn}",
            )
        r = yield self.call("GET", "/api/terminals/SITE2/persons/")
        yield self.until(
            lambda: self.call("GET", "/api/terminals/SITE2/persons/").addCallback(
                lambda r: r.json["synced"] == 1 and r.json["pending"] == 0
            ),
            "counts",
        )

        # removal deletes it from all
        r = yield self.call("DELETE", "/api/persons/100/")
        self.assertEqual(r.status, 204, r.text)
        for sn, terminal in terminals.items():
            yield self.until(lambda t=terminal: 100 not in t.users, f"gone from {sn}")
        store = self.running.context.store
        yield self.until(
            lambda: store.listPersonSync(None, 100).addCallback(lambda rows: not rows),
            "sync rows cleaned up",
        )
        r = yield self.call("GET", "/api/persons/100/sync/")
        self.assertEqual(r.status, 404)
        # every command went through the durable queue, as the reconciler
        for sn in terminals:
            pending = yield store.pendingCommands(sn)
            self.assertEqual(pending, [])

    @inlineCallbacks
    def test_keypadDriftIsDetectedAndCorrected(self) -> Any:
        """
        A person deleted at one terminal's keypad, or given a credential there, is seen by the
        periodic check (or the terminal's senduser) and put back as desired.
        """
        yield self.start()
        t1, t2 = simulated("DRIFT1"), simulated("DRIFT2")
        yield self.connect(t1)
        conn2 = yield self.connect(t2)
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 7,
                "name": "Eve",
                "credentials": [{"backupnum": 10, "record": 4321}],
                "terminals": ["DRIFT1", "DRIFT2"],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        for t in (t1, t2):
            yield self.until(lambda t=t: _holds(t, 7, credentials={10: 4321}), "Eve")
        yield self.until(
            lambda: self.syncState(7, "DRIFT1").addCallback(lambda s: s == "synced"), "synced"
        )
        # keypad: the user is deleted on DRIFT1 (nothing is pushed by the terminal)
        del t1.users[7]
        reconciler = self.running.context.reconciler
        yield reconciler.checkTerminal("DRIFT1")
        yield self.until(lambda: _holds(t1, 7, credentials={10: 4321}), "Eve restored")
        # keypad: a fingerprint enrolled for Eve on DRIFT2, pushed by senduser: drift, undone
        conn2.enrollUser(7, name="Eve", backupnum=3, record=FP)
        yield self.until(lambda: _holds(t2, 7, credentials={10: 4321}), "finger removed")
        yield self.until(
            lambda: self.syncState(7, "DRIFT2").addCallback(lambda s: s == "synced"), "synced 2"
        )
        person = yield self.call("GET", "/api/persons/7/")
        self.assertEqual(
            person.json["credentials"],
            [
                {
                    "backupnum": 10,
                    "record": 4321,
                    "updatedAt": person.json["credentials"][0]["updatedAt"],
                }
            ],
        )

    @inlineCallbacks
    def test_conflictIsReportedNeverOverwritten(self) -> Any:
        """The same enrollid held by someone else is a conflict until an operator claims it."""
        yield self.start()
        terminal = simulated("CONF1")
        terminal.enrollUser(5, name="Bob", backupnum=11, record=111)
        connection = yield self.connect(terminal)
        store = self.running.context.store
        yield self.until(lambda: store.getUser("CONF1", 5), "Bob pushed by the terminal")
        self.assertIsNotNone(connection)
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 5,
                "name": "Carol",
                "credentials": [{"backupnum": 11, "record": 222}],
                "terminals": ["CONF1"],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        yield self.until(
            lambda: self.syncState(5, "CONF1").addCallback(lambda s: s == "conflict"),
            "conflict",
        )
        entry = (yield self.sync(5))["CONF1"]
        self.assertEqual(entry["detail"]["terminalName"], "Bob")
        self.assertEqual(entry["detail"]["differentSlots"], [11])
        self.assertFalse(entry["owned"])
        self.assertTrue(_holds(terminal, 5, name="Bob", credentials={11: 111}))
        # a pass later still does not overwrite
        yield self.running.context.reconciler.reconcileTerminal("CONF1")
        self.assertTrue(_holds(terminal, 5, name="Bob", credentials={11: 111}))
        # the operator claims it: now it is overwritten
        r = yield self.call("POST", "/api/persons/5/sync/CONF1/claim/")
        self.assertEqual(r.status, 200, r.text)
        yield self.until(lambda: _holds(terminal, 5, name="Carol", credentials={11: 222}), "Carol")
        r = yield self.call("POST", "/api/persons/5/sync/NOPE/claim/")
        self.assertEqual(r.status, 404)
        # claiming where the person is not assigned would delete someone else's user: refused
        yield self.call("POST", "/api/terminals/", {"sn": "CONF2"})
        other = (yield self.sync(5))["CONF2"]
        self.assertEqual((other["state"], other["assigned"]), ("not_assigned", False))
        r = yield self.call("POST", "/api/persons/5/sync/CONF2/claim/")
        self.assertEqual((r.status, r.json["error"], r.json["field"]), (409, "not_assigned", "sn"))

    @inlineCallbacks
    def test_capacityIsCheckedBeforePushing(self) -> Any:
        """A terminal that is full gets nothing; the person is failed there, with the reason."""
        yield self.start()
        terminal = simulated("FULL1", users=2, usersize=2)
        yield self.connect(terminal)
        r = yield self.call(
            "POST",
            "/api/persons/",
            {"enrollid": 50, "name": "Fay", "terminals": ["FULL1"]},
        )
        self.assertEqual(r.status, 201, r.text)
        yield self.until(
            lambda: self.syncState(50, "FULL1").addCallback(lambda s: s == "failed"), "failed"
        )
        entry = (yield self.sync(50))["FULL1"]
        self.assertEqual(
            entry["detail"], {"reason": "capacity", "capacity": "usersize", "size": 2, "used": 2}
        )
        self.assertNotIn(50, terminal.users)
        pending = yield self.running.context.store.pendingCommands("FULL1")
        self.assertEqual(pending, [])

    @inlineCallbacks
    def test_failedCommandIsReportedWithTheReply(self) -> Any:
        """A command the terminal refuses marks the person failed, with the terminal's reply."""
        yield self.start()
        terminal = simulated("REF1")
        yield self.connect(terminal)
        # a password slot the simulator refuses (it takes numbers only; the protocol allows text)
        original = terminal.handleCommand

        def refuse(command: Any) -> Any:
            if command.get("cmd") == "setuserinfo":
                return {"ret": "setuserinfo", "result": False, "reason": 9}
            return original(command)

        terminal.handleCommand = refuse  # type: ignore[method-assign]
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 60,
                "name": "Gus",
                "credentials": [{"backupnum": 50, "record": "cGhvdG8="}],
                "terminals": ["REF1"],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        yield self.until(
            lambda: self.syncState(60, "REF1").addCallback(lambda s: s == "failed"), "failed"
        )
        entry = (yield self.sync(60))["REF1"]
        self.assertEqual(entry["detail"]["command"], "setuserinfo")
        self.assertEqual(entry["detail"]["reply"]["reason"], 9)
        self.assertIs(entry["detail"]["reply"]["result"], False)
        (event,) = yield self.running.context.store.listEvents(
            EventQuery(types=("person.sync_failed",), limit=100)
        )
        self.assertEqual((event.sn, event.payload["enrollid"]), ("REF1", 60))
        self.assertEqual(event.payload["detail"]["reply"], {"result": False, "reason": 9})

    @inlineCallbacks
    def test_pendingShowsTheQueuedCommands(self) -> Any:
        """While a terminal has not answered, the person is pending with its queued commands."""
        yield self.start(commandTimeout=30.0)
        terminal = simulated("SLOW1")
        yield self.connect(terminal)
        # it answers something else: commands stay queued (None would drop the connection)
        terminal.handleCommand = lambda command: {"ret": "other", "result": True}  # type: ignore[method-assign]
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 61,
                "credentials": [{"backupnum": 11, "record": 5}, {"backupnum": 10, "record": 6}],
                "terminals": ["SLOW1"],
            },
        )
        self.assertEqual(r.status, 201, r.text)

        def queued() -> Any:
            return self.sync(61).addCallback(lambda s: len(s["SLOW1"]["commands"]) == 2)

        yield self.until(queued, "two queued commands")
        entry = (yield self.sync(61))["SLOW1"]
        self.assertEqual(entry["state"], "pending")
        self.assertEqual(sorted(c["payload"]["backupnum"] for c in entry["commands"]), [10, 11])
        self.assertEqual({c["actor"] for c in entry["commands"]}, {ACTOR})

    @inlineCallbacks
    def test_pacedToABoundedNumberOutstanding(self) -> Any:
        """Never more than --reconcile-max-outstanding reconciler commands queued per terminal."""
        yield self.start(reconcileMaxOutstanding=3)
        terminal = simulated("PACE1")
        yield self.connect(terminal)
        store = self.running.context.store
        reconciler = self.running.context.reconciler
        seen: list[int] = []
        self.running.context.queue.observers.append(
            lambda command: seen.append(reconciler.outstanding("PACE1"))
        )
        original = store.submitCommand
        queuedNow: list[int] = []

        def submit(sn: str, *args: Any, **kwargs: Any) -> Any:
            queuedNow.append(reconciler.outstanding(sn))
            return original(sn, *args, **kwargs)

        store.submitCommand = submit
        r = yield self.call("POST", "/api/groups/", {"name": "pace", "terminals": []})
        self.assertEqual(r.status, 201, r.text)
        for enrollid in range(1, 21):
            r = yield self.call(
                "POST",
                "/api/persons/",
                {
                    "enrollid": enrollid,
                    "credentials": [{"backupnum": 11, "record": enrollid}],
                    "groups": ["pace"],
                },
            )
            self.assertEqual(r.status, 201, r.text)
        # the group gets the terminal: one pass plans 20 persons
        r = yield self.call("PATCH", "/api/groups/pace/", {"terminals": ["PACE1"]})
        self.assertEqual(r.status, 200, r.text)
        yield self.until(lambda: len(terminal.users) == 20, "20 persons on PACE1", 1000)
        self.assertTrue(seen)
        self.assertLessEqual(max(seen), 3)
        self.assertLessEqual(max(queuedNow), 2)  # before each enqueue: at most 2 outstanding
        # leaving the group removes them all
        r = yield self.call("PATCH", "/api/groups/pace/", {"terminals": []})
        yield self.until(
            lambda: not terminal.users, f"removed from PACE1 {len(terminal.users)}", 3000
        )

    @inlineCallbacks
    def test_keypadAdoptionIsOptInPerGroup(self) -> Any:
        """A keypad enrolment on a terminal of an adopting group becomes a fleet person."""
        yield self.start()
        t1, t2, t3 = simulated("ADOPT1"), simulated("ADOPT2"), simulated("OTHER1")
        c1 = yield self.connect(t1)
        yield self.connect(t2)
        c3 = yield self.connect(t3)
        r = yield self.call(
            "POST",
            "/api/groups/",
            {"name": "door", "adoptKeypad": True, "terminals": ["ADOPT1", "ADOPT2"]},
        )
        self.assertEqual(r.status, 201, r.text)
        c1.enrollUser(77, name="Dan", backupnum=0, record=FP)
        yield self.until(lambda: _holds(t2, 77, name="Dan", credentials={0: FP}), "Dan on 2")
        c1.enrollUser(77, name="Dan", backupnum=11, record=4242)
        yield self.until(
            lambda: _holds(t2, 77, name="Dan", credentials={0: FP, 11: 4242}), "card on 2"
        )
        r = yield self.call("GET", "/api/persons/77/")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["groups"], ["door"])
        self.assertEqual([c["backupnum"] for c in r.json["credentials"]], [0, 11])
        # a terminal in no adopting group: its keypad users stay its own
        c3.enrollUser(88, name="Kim", backupnum=0, record=FP)
        store = self.running.context.store
        yield self.until(lambda: store.getUser("OTHER1", 88), "Kim stored for OTHER1")
        r = yield self.call("GET", "/api/persons/88/")
        self.assertEqual(r.status, 404)

    @inlineCallbacks
    def test_csvImport(self) -> Any:
        """A CSV creates and updates persons; any problem refuses the file, naming line and column."""
        yield self.start()
        terminal = simulated("CSV1")
        yield self.connect(terminal)
        r = yield self.call("POST", "/api/groups/", {"name": "hq", "terminals": ["CSV1"]})
        self.assertEqual(r.status, 201, r.text)
        good = (
            "enrollid,name,admin,enabled,groups,card,password,validFrom\n"
            "1,Ann,0,true,hq,1001,,\n"
            '2,"Ben, Jr",1,no,hq,,1234,2020-01-01 00:00:00\n'
        )
        r = yield self.call(
            "POST", "/api/persons/import", raw=good.encode(), headers={"Content-Type": "text/csv"}
        )
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json, {"created": 2, "updated": 0})
        yield self.until(lambda: _holds(terminal, 1, name="Ann", credentials={11: 1001}), "Ann")
        yield self.until(lambda: _holds(terminal, 2, name="Ben, Jr", admin=1, enabled=False), "Ben")
        r = yield self.call(
            "POST",
            "/api/persons/import",
            raw=b"enrollid,name\n1,Anna\n",
            headers={"Content-Type": "text/csv"},
        )
        self.assertEqual(r.json, {"created": 0, "updated": 1})
        yield self.until(lambda: _holds(terminal, 1, name="Anna", credentials={11: 1001}), "Anna")
        for body, line, field in (
            (b"enrollid,name\n1,A\nx,B\n", 3, "enrollid"),
            (b"enrollid,colour\n1,red\n", 1, "colour"),
            (b"name\nA\n", 1, "enrollid"),
            (b"enrollid,admin\n3,7\n", 2, "admin"),
            (b"enrollid,groups\n3,nowhere\n", 2, "groups"),
            (b"enrollid,validFrom\n3,yesterday\n", 2, "validFrom"),
            (b"enrollid,name\n3,A\n3,B\n", 3, "enrollid"),
            (b"enrollid,card\n3,12a\n", 2, "card"),
            (b"", 1, "enrollid"),
        ):
            r = yield self.call(
                "POST", "/api/persons/import", raw=body, headers={"Content-Type": "text/csv"}
            )
            self.assertEqual(r.status, 400, (body, r.text))
            self.assertEqual((r.json["line"], r.json["field"]), (line, field), body)
            self.assertEqual(r.json["error"], "invalid_csv")
        r = yield self.call(
            "POST", "/api/persons/import", raw=b"\xff\xfe", headers={"Content-Type": "text/csv"}
        )
        self.assertEqual((r.status, r.json["field"]), (400, "body"))
        r = yield self.call("GET", "/api/persons/3/")
        self.assertEqual(r.status, 404)

    @inlineCallbacks
    def test_commandsLeftInTheQueueAreNotQueuedTwice(self) -> Any:
        """
        Reconciler commands still queued when the terminal went away (or the server stopped)
        are delivered after its next registration and counted, not queued again.
        """
        yield self.start()
        terminal = simulated("LEFT1")
        connection = yield self.connect(terminal)
        # it answers something else: the command stays in flight (None would drop the connection)
        terminal.handleCommand = lambda command: {"ret": "other", "result": True}  # type: ignore[method-assign]
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 3,
                "name": "Ida",
                "credentials": [{"backupnum": 11, "record": 33}],
                "terminals": ["LEFT1"],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        store = self.running.context.store
        yield self.until(
            lambda: store.pendingCommands("LEFT1").addCallback(lambda c: len(c) == 1), "queued"
        )
        yield connection.disconnect()
        registry = self.running.context.registry
        yield self.until(lambda: registry.get("LEFT1") is None, "the old connection is closed")
        # a new server process would start with an empty memory
        self.running.context.reconciler._terminals.clear()
        del terminal.handleCommand
        yield self.connect(terminal)
        yield self.until(lambda: _holds(terminal, 3, name="Ida", credentials={11: 33}), "Ida")
        yield self.until(
            lambda: self.syncState(3, "LEFT1").addCallback(lambda s: s == "synced"), "synced"
        )
        commands = yield store.listPersonSync("LEFT1", 3)
        self.assertEqual(commands[0].commands, ())
        everything = []
        for commandId in range(1, 20):
            command = yield store.getCommand(commandId)
            if command is not None and command.actor == ACTOR:
                everything.append(command.name)
        self.assertEqual(everything, ["setuserinfo"])

    @inlineCallbacks
    def test_groupDeletedAndPersonWithoutCredentials(self) -> Any:
        """
        A person without credentials is created with a profile setuserinfo; deleting its only
        group removes it from the group's terminals; a direct assignment keeps it.
        """
        yield self.start()
        t1, t2 = simulated("GRP1"), simulated("GRP2")
        yield self.connect(t1)
        yield self.connect(t2)
        yield self.call("POST", "/api/groups/", {"name": "g", "terminals": ["GRP1", "GRP2"]})
        r = yield self.call(
            "POST",
            "/api/persons/",
            {"enrollid": 9, "name": "Jo", "admin": 2, "groups": ["g"], "terminals": ["GRP2"]},
        )
        self.assertEqual(r.status, 201, r.text)
        for t in (t1, t2):
            yield self.until(lambda t=t: _holds(t, 9, name="Jo", admin=2), "Jo")
        r = yield self.call("DELETE", "/api/groups/g/")
        self.assertEqual(r.status, 204)
        yield self.until(lambda: 9 not in t1.users, "Jo left GRP1")
        self.assertTrue(_holds(t2, 9, name="Jo"))
        r = yield self.call("GET", "/api/persons/9/")
        self.assertEqual(r.json["groups"], [])

    @inlineCallbacks
    def test_outsideItsValidityWindowAPersonIsDisabled(self) -> Any:
        """A person whose window has closed is on its terminals, disabled; reopened, enabled."""
        yield self.start()
        terminal = simulated("WIN1")
        yield self.connect(terminal)
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 12,
                "name": "Lu",
                "validFrom": "2020-01-01 00:00:00",
                "validUntil": "2020-12-31 23:59:59",
                "terminals": ["WIN1"],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        yield self.until(lambda: _holds(terminal, 12, name="Lu", enabled=False), "disabled")
        r = yield self.call("PATCH", "/api/persons/12/", {"validUntil": None})
        self.assertEqual(r.status, 200, r.text)
        self.assertIsNone(r.json["validUntil"])
        yield self.until(lambda: _holds(terminal, 12, name="Lu", enabled=True), "enabled")

    @inlineCallbacks
    def test_deletingWhatTheTerminalNoLongerHoldsIsDone(self) -> Any:
        """A deleteuser answered "have no data" (TopData: nothing to delete) counts as done."""
        yield self.start()
        terminal = simulated("GONE1")
        yield self.connect(terminal)
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 14,
                "name": "Mo",
                "terminals": ["GONE1"],
                "credentials": [{"backupnum": 11, "record": 14}],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        yield self.until(lambda: _holds(terminal, 14, name="Mo"), "Mo")
        yield self.until(
            lambda: self.syncState(14, "GONE1").addCallback(lambda s: s == "synced"), "synced"
        )
        del terminal.users[14]  # deleted at the keypad meanwhile
        original = terminal.handleCommand

        def topdata(command: Any) -> Any:
            if command.get("cmd") == "deleteuser":
                return {"ret": "deleteuser", "result": False, "msg": "have no data"}
            return original(command)

        terminal.handleCommand = topdata  # type: ignore[method-assign]
        r = yield self.call("DELETE", "/api/persons/14/")
        self.assertEqual(r.status, 204)
        store = self.running.context.store
        yield self.until(
            lambda: store.listPersonSync("GONE1", 14).addCallback(lambda rows: not rows),
            "forgotten",
        )
        self.assertIsNone((yield store.getUser("GONE1", 14)))

    @inlineCallbacks
    def test_aCancelledCommandFailsThePerson(self) -> Any:
        """An operator cancelling a reconciler command: the person is failed, the pacing freed."""
        yield self.start(commandTimeout=30.0)
        terminal = simulated("CANC1")
        yield self.connect(terminal)
        original = terminal.handleCommand
        # the terminal answers something else (None would make it drop like after a reboot)
        terminal.handleCommand = lambda command: {"ret": "other", "result": True}  # type: ignore[method-assign]
        # an operator command the terminal never answers holds the queue
        r = yield self.call(
            "POST", "/api/terminals/CANC1/command/", {"command": "gettime", "wait": False}
        )
        self.assertEqual(r.status, 202, r.text)
        r = yield self.call(
            "POST",
            "/api/persons/",
            {
                "enrollid": 15,
                "terminals": ["CANC1"],
                "credentials": [{"backupnum": 11, "record": 15}],
            },
        )
        self.assertEqual(r.status, 201, r.text)

        def queued() -> Any:
            return self.sync(15).addCallback(lambda s: s["CANC1"]["commands"])

        commands = yield self.until(queued, "queued")
        r = yield self.call("DELETE", f"/api/commands/{commands[0]['id']}")
        self.assertEqual(r.status, 200, r.text)
        yield self.until(
            lambda: self.syncState(15, "CANC1").addCallback(lambda s: s == "failed"), "failed"
        )
        entry = (yield self.sync(15))["CANC1"]
        self.assertEqual(entry["detail"]["status"], "cancelled")
        self.assertEqual(self.running.context.reconciler.outstanding("CANC1"), 0)
        terminal.handleCommand = original  # type: ignore[method-assign]

    @inlineCallbacks
    def test_badInputNamesTheField(self) -> Any:
        """Bad person and group bodies are 4xx naming the field."""
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": "T1"})
        yield self.call("POST", "/api/persons/", {"enrollid": 1})
        for body, status, field in (
            (
                {"enrollid": 2, "credentials": [{"backupnum": 12, "record": 1}]},
                400,
                "credentials[0].backupnum",
            ),
            (
                {
                    "enrollid": 2,
                    "credentials": [{"backupnum": 11, "record": 1}, {"backupnum": 11, "record": 2}],
                },
                400,
                "credentials[1].backupnum",
            ),
            (
                {"enrollid": 2, "credentials": [{"backupnum": 10, "record": 123456789}]},
                400,
                "credentials[0].record",
            ),
            ({"enrollid": 2, "groups": ["nope"]}, 400, "groups[0]"),
            ({"enrollid": 2, "terminals": ["T1", "T9"]}, 400, "terminals[1]"),
            ({"enrollid": 2, "validFrom": "2026-13-01 00:00:00"}, 400, "validFrom"),
            (
                {
                    "enrollid": 2,
                    "validFrom": "2026-02-01 00:00:00",
                    "validUntil": "2026-01-01 00:00:00",
                },
                400,
                "validUntil",
            ),
            ({"enrollid": 0}, 400, "enrollid"),
            ({"enrollid": 2, "colour": "red"}, 400, "colour"),
            ({"enrollid": 1}, 409, "enrollid"),
        ):
            r = yield self.call("POST", "/api/persons/", body)
            self.assertEqual((r.status, r.json.get("field")), (status, field), (body, r.text))
        r = yield self.call("PATCH", "/api/persons/1/", {"groups": ["nope"]})
        self.assertEqual((r.status, r.json["field"]), (400, "groups[0]"))
        r = yield self.call("PATCH", "/api/persons/9/", {"name": "x"})
        self.assertEqual(r.status, 404)
        r = yield self.call("POST", "/api/groups/", {"name": "g", "terminals": ["T9"]})
        self.assertEqual((r.status, r.json["field"]), (400, "terminals[0]"))
        r = yield self.call("POST", "/api/groups/", {"name": "bad/name"})
        self.assertEqual((r.status, r.json["field"]), (400, "name"))
        yield self.call("POST", "/api/groups/", {"name": "g"})
        r = yield self.call("POST", "/api/groups/", {"name": "g"})
        self.assertEqual((r.status, r.json["field"]), (409, "name"))
        r = yield self.call("GET", "/api/groups/")
        self.assertEqual([g["name"] for g in r.json["items"]], ["g"])
        r = yield self.call("DELETE", "/api/groups/g/")
        self.assertEqual(r.status, 204)
        r = yield self.call("GET", "/api/groups/g/")
        self.assertEqual(r.status, 404)
        r = yield self.call("GET", "/api/persons/?limit=1")
        self.assertEqual([p["enrollid"] for p in r.json["items"]], [1])
        self.assertIsNotNone(r.json["next"])


class FleetPersonsPostgresTests(FleetPersonsTests):
    """The same tests on PostgreSQL."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_fleet")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store
