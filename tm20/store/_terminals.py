"""
L{tm20.interfaces.ITerminalStore} (terminals and their hardware identity), written once for
both stores (see L{tm20.store._ops}).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, cast

from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from tm20.batches import Batcher
from tm20.errors import StoreUnavailable
from tm20.events.model import NewEvent
from tm20.events.payloads import (
    firstRegistrationEvent,
    flaggedEvent,
    terminalEvent,
    updatedEvent,
)
from tm20.lanes import inForeground
from tm20.model import TERMINAL_EDITABLE_FIELDS, Terminal
from tm20.store._dialect import Dialect
from tm20.store._ops import AppendEvents, Op, OpStore, inList, whereAll
from tm20.store._rows import devinfoColumn, dumpJSON

__all__ = [
    "TERMINAL_TABLES",
    "TerminalStoreMixin",
    "createTerminal",
    "deleteTerminal",
    "getTerminal",
    "listTerminals",
    "registerTerminal",
    "registerTerminals",
    "registrationParams",
    "writeSightings",
    "updateTerminal",
]

#: What L{deleteTerminal} deletes besides the terminal itself (no foreign key cascades there:
#: a log batch is never refused for bookkeeping reasons).
TERMINAL_TABLES = (
    "credentials",
    "users",
    "attendance_logs",
    "door_events",
    "commands",
    "quarantined_records",
)


def getTerminal(d: Dialect, sn: str, lock: str = "") -> Op[Terminal | None]:
    """The terminal C{sn}, or C{None}; C{lock} ends the C{SELECT} (L{Dialect.forUpdate})."""
    row = (yield (f"SELECT * FROM terminals WHERE sn = %s{lock}", (sn,))).first
    return None if row is None else d.read.terminal(row)


def registrationParams(
    sn: str,
    cpusn: str | None,
    devinfo: Mapping[str, Any],
    approvedIfNew: bool,
    bind: tuple[str | None, str | None] | None,
    now: Any,
) -> dict[str, Any]:
    """
    The parameters of a sighting (L{writeSightings}).

    @raise TypeError: C{devinfo} cannot be written as JSON.
    """
    bindCpusn, bindMac = (bind[0] or None, bind[1] or None) if bind is not None else (None, None)
    devinfo = dict(devinfo)
    return {
        "sn": sn,
        "cpusn": cpusn or None,
        "mac": devinfoColumn(devinfo, "mac"),
        "modelname": devinfoColumn(devinfo, "modelname"),
        "firmware": devinfoColumn(devinfo, "firmware"),
        "devinfo": dumpJSON(devinfo),
        "keepDevinfo": not devinfo,
        "approved": bool(approvedIfNew),
        "now": now,
        "bind": bindCpusn is not None or bindMac is not None,
        "bindCpusn": bindCpusn,
        "bindMac": bindMac,
    }


_log = Logger()

#: The most registrations written in one transaction (L{registerTerminals}).
REGISTRATIONS_PER_BATCH = 200
#: The most transactions of registrations running at once (the pool's default size: as many as
#: ran at once when each registration was its own).
REGISTRATION_BATCHES_AT_ONCE = 4

#: One registration: the parameters of L{registrationParams} and its C{check}.
Registration = tuple[Mapping[str, Any], Callable[[Terminal | None], Any] | None]
#: What one registration gave (L{tm20.interfaces.ITerminalStore.registerTerminal}).
Registered = tuple[Terminal | None, Any, bool]


def registerTerminal(
    d: Dialect, params: Mapping[str, Any], check: Callable[[Terminal | None], Any] | None
) -> Op[Registered]:
    """
    See L{tm20.interfaces.ITerminalStore.registerTerminal}; C{params} from
    L{registrationParams}.
    """
    return (yield from registerTerminals(d, [(params, check)]))[0]


def registerTerminals(d: Dialect, registrations: Sequence[Registration]) -> Op[list[Registered]]:
    """
    Several L{registerTerminal}s in one transaction, their answers in their order: the rows of
    all their terminals read (and locked) in one statement, in the order of C{sn} (two batches,
    or a batch and another node's, cannot wait for each other's locks), then each one checked
    in that order and the sightings written together (L{writeSightings}: one statement for the
    known terminals, one for the new; those with the same C{sn} in turns, the later checked
    against the earlier's row), then the events of the first registrations in one append, last
    (an operator's change, which locks a terminal and then appends its event, is never waited
    for while holding the events' lock).
    """
    sns = sorted({params["sn"] for params, _ in registrations})
    markers, values = inList(sns)
    rows = yield (f"SELECT * FROM terminals WHERE sn IN {markers} ORDER BY sn{d.forUpdate}", values)
    known: dict[str, Terminal | None] = {row["sn"]: d.read.terminal(row) for row in rows.rows}
    answers: list[Registered | None] = [None] * len(registrations)
    events: list[NewEvent] = []
    # the registrations checked and not yet written: (index, params, the row before)
    turn: list[tuple[int, Mapping[str, Any], Terminal | None]] = []

    def written(after: Mapping[str, Terminal]) -> None:
        for i, params, before in turn:
            terminal = after[params["sn"]]
            known[params["sn"]] = terminal
            first = firstRegistrationEvent(before, terminal)
            if first is not None:
                events.append(first)
            # this call bound it: it was not bound before, and is now, to this claim, at this time
            bound = bool(
                params["bind"]
                and not (before is not None and (before.boundCpusn or before.boundMac))
                and (terminal.boundCpusn, terminal.boundMac, terminal.boundAt)
                == (params["bindCpusn"], params["bindMac"], d.time(params["now"]))
            )
            answers[i] = (terminal, None, bound)
        turn.clear()

    for i in sorted(range(len(registrations)), key=lambda i: registrations[i][0]["sn"]):
        params, check = registrations[i]
        sn = params["sn"]
        if turn and turn[-1][1]["sn"] == sn:  # (in the order of sn: the same ones are last)
            written((yield from writeSightings(d, turn, known)))
        before = known.get(sn)
        if check is not None:
            refusal = check(before)
            if refusal is not None:
                answers[i] = (before, refusal, False)
                continue
        turn.append((i, params, before))
    if turn:
        written((yield from writeSightings(d, turn, known)))
    if events:
        # one append for the batch, at the latest of its times (the events follow their rows)
        yield AppendEvents(tuple(events), max(params["now"] for params, _ in registrations))
    return [answer for answer in answers if answer is not None]


#: The columns of C{terminals} (what L{tm20.store._rows.RowReader.terminal} reads), returned by
#: the statements of L{writeSightings}.
_TERMINAL_COLUMNS = (
    "sn, cpusn, mac, modelname, firmware, devinfo, name, approved, active, timezone,"
    " first_seen, last_seen, bound_cpusn, bound_mac, bound_at, identity_mismatch, secret_hash,"
    " registrations"
)

#: The sightings' values (L{registrationParams}), in the order of C{_SIGHTING_KEYS}.
_SIGHTINGS = (
    "v (v_sn, v_cpusn, v_mac, v_modelname, v_firmware, v_devinfo, v_keep, v_approved, v_now,"
    " v_bind, v_bind_cpusn, v_bind_mac)"
)
_SIGHTING_KEYS = (
    "sn",
    "cpusn",
    "mac",
    "modelname",
    "firmware",
    "devinfo",
    "keepDevinfo",
    "approved",
    "now",
    "bind",
    "bindCpusn",
    "bindMac",
)

#: A sighting (C{reg}) of terminals that exist (read and locked by this transaction, or
#: inserted by another one since the read): binding an approved, active, unbound terminal in the
#: same statement (the C{SET} expressions see the row as it was); each counts itself in
#: C{registrations} (the row is locked: the count follows the order of the commits).
_SIGHTED = f"""
UPDATE terminals SET
    cpusn = COALESCE(terminals.cpusn, v_cpusn),
    mac = COALESCE(v_mac, terminals.mac),
    modelname = COALESCE(v_modelname, terminals.modelname),
    firmware = COALESCE(v_firmware, terminals.firmware),
    devinfo = CASE WHEN v_keep THEN terminals.devinfo ELSE v_devinfo END,
    first_seen = COALESCE(terminals.first_seen, v_now),
    last_seen = v_now,
    registrations = terminals.registrations + 1,
    bound_cpusn = CASE WHEN v_bind AND terminals.approved AND terminals.active
                            AND terminals.bound_cpusn IS NULL AND terminals.bound_mac IS NULL
                       THEN v_bind_cpusn ELSE terminals.bound_cpusn END,
    bound_mac = CASE WHEN v_bind AND terminals.approved AND terminals.active
                          AND terminals.bound_cpusn IS NULL AND terminals.bound_mac IS NULL
                     THEN v_bind_mac ELSE terminals.bound_mac END,
    bound_at = CASE WHEN v_bind AND terminals.approved AND terminals.active
                         AND terminals.bound_cpusn IS NULL AND terminals.bound_mac IS NULL
                    THEN v_now ELSE terminals.bound_at END
FROM v WHERE terminals.sn = v_sn
RETURNING {_TERMINAL_COLUMNS}
"""

#: The first sighting of terminals not seen by this transaction (bound at once when approved);
#: one that another transaction inserted meanwhile is left (C{DO NOTHING}) to L{_SIGHTED}.
_FIRST_SIGHTED = f"""
INSERT INTO terminals (sn, cpusn, mac, modelname, firmware, devinfo, approved, active,
                       first_seen, last_seen, bound_cpusn, bound_mac, bound_at, registrations)
SELECT v_sn, v_cpusn, v_mac, v_modelname, v_firmware, v_devinfo, v_approved, true, v_now, v_now,
       CASE WHEN v_bind AND v_approved THEN v_bind_cpusn END,
       CASE WHEN v_bind AND v_approved THEN v_bind_mac END,
       CASE WHEN v_bind AND v_approved THEN v_now END, 1
FROM v WHERE true
ON CONFLICT (sn) DO NOTHING
RETURNING {_TERMINAL_COLUMNS}
"""


def writeSightings(
    d: Dialect,
    turn: Sequence[tuple[int, Mapping[str, Any], Terminal | None]],
    known: Mapping[str, Terminal | None],
) -> Op[dict[str, Terminal]]:
    """
    Write the sightings of C{turn} (each C{sn} once): one C{UPDATE} of those C{known} to exist,
    one C{INSERT} of the others, and one more C{UPDATE} of those another transaction inserted
    since the read; each one's row after it, by C{sn}.

    @raise LookupError: a terminal neither inserted nor found (deleted again meanwhile): the
        batch fails, and its registrations are written again one at a time.
    """
    row = (
        "("
        + ", ".join(d.jsonText.format("%s") if k == "devinfo" else "%s" for k in _SIGHTING_KEYS)
        + ")"
    )
    after: dict[str, Terminal] = {}

    def write(statement: str, group: list[Mapping[str, Any]]) -> Op[None]:
        if not group:
            return
        values = tuple(params[key] for params in group for key in _SIGHTING_KEYS)
        rows = yield (
            f"WITH {_SIGHTINGS} AS (VALUES {', '.join([row] * len(group))}) {statement}",
            values,
        )
        for written in rows.rows:
            after[written["sn"]] = d.read.terminal(written)

    sightings = [params for _, params, _ in turn]
    yield from write(_SIGHTED, [p for p in sightings if known.get(p["sn"]) is not None])
    yield from write(_FIRST_SIGHTED, [p for p in sightings if known.get(p["sn"]) is None])
    yield from write(_SIGHTED, [p for p in sightings if p["sn"] not in after])
    missing = [p["sn"] for p in sightings if p["sn"] not in after]
    if missing:
        raise LookupError(f"terminals {missing} neither inserted nor found")
    return after


def createTerminal(
    d: Dialect, sn: str, name: str | None, approved: bool, timezone: str | None
) -> Op[Terminal]:
    """A terminal added before it ever connects; C{ValueError} if C{sn} exists."""
    row = (
        yield (
            "INSERT INTO terminals (sn, name, approved, active, timezone)"
            " VALUES (%s, %s, %s, true, %s) ON CONFLICT (sn) DO NOTHING RETURNING *",
            (sn, name, bool(approved), timezone),
        )
    ).first
    if row is None:
        raise ValueError(f"terminal {sn!r} already exists")
    return d.read.terminal(row)


def listTerminals(d: Dialect, approved: bool | None) -> Op[list[Terminal]]:
    where, params = whereAll([("approved = %s", None if approved is None else bool(approved))])
    result = yield (f"SELECT * FROM terminals{where} ORDER BY sn", params)
    return [d.read.terminal(row) for row in result.rows]


def updateTerminal(d: Dialect, sn: str, values: Mapping[str, Any], now: Any) -> Op[Terminal | None]:
    """Set C{values} (columns from L{TERMINAL_EDITABLE_FIELDS} only, never the caller's)."""
    if values:
        assignments = ", ".join(f"{field} = %({field})s" for field in sorted(values))
        yield (f"UPDATE terminals SET {assignments} WHERE sn = %(sn)s", {**values, "sn": sn})
    terminal = yield from getTerminal(d, sn)
    if terminal is not None and values:
        yield AppendEvents((updatedEvent(terminal, list(values)),), now)
    return terminal


def deleteTerminal(d: Dialect, sn: str, now: Any) -> Op[bool]:
    """Delete a terminal and everything stored for it."""
    for table in TERMINAL_TABLES:
        yield (f"DELETE FROM {table} WHERE sn = %s", (sn,))
    row = (yield ("DELETE FROM terminals WHERE sn = %s RETURNING *", (sn,))).first
    if row is None:
        return False
    yield AppendEvents((terminalEvent("deleted", d.read.terminal(row)),), now)
    return True


def changeTerminal(
    d: Dialect,
    sn: str,
    assignments: str,
    params: tuple[Any, ...],
    now: Any,
    event: Callable[[Terminal], NewEvent] | None = None,
    condition: str = "",
) -> Op[Terminal | None]:
    """
    C{UPDATE terminals SET <assignments> WHERE sn = ... <condition>}: the terminal after it, or
    C{None} when there is none; when it changed the row, C{event(terminal)} is appended.
    """
    row = (
        yield (
            f"UPDATE terminals SET {assignments} WHERE sn = %s{condition} RETURNING *",
            (*params, sn),
        )
    ).first
    if row is None:
        return (yield from getTerminal(d, sn))
    terminal = d.read.terminal(row)
    if event is not None:
        yield AppendEvents((event(terminal),), now)
    return terminal


class TerminalStoreMixin(OpStore):
    """L{tm20.interfaces.ITerminalStore} for a store providing L{OpStore}."""

    def recordTerminalSeen(
        self, sn: str, cpusn: str | None, devinfo: Mapping[str, Any], approvedIfNew: bool
    ) -> Deferred[Terminal]:
        """
        See L{tm20.interfaces.ITerminalStore.recordTerminalSeen}.  An empty C{devinfo} (a bare
        heartbeat) keeps the stored one, and C{mac}/C{modelname}/C{firmware} missing from
        C{devinfo} keep their stored values.
        """
        d = self.registerTerminal(sn, cpusn, devinfo, approvedIfNew, None, None)
        return d.addCallback(_sighted)

    def registerTerminal(
        self,
        sn: str,
        cpusn: str | None,
        devinfo: Mapping[str, Any],
        approvedIfNew: bool,
        check: Callable[[Terminal | None], Any] | None,
        bind: tuple[str | None, str | None] | None,
    ) -> Deferred[tuple[Terminal | None, Any, bool]]:
        """
        See L{tm20.interfaces.ITerminalStore.registerTerminal}: the row read (and locked), the
        check, then the sighting that records and binds it (L{registerTerminals}: with the
        others asked meanwhile, in one write transaction).
        C{check} may run in the database's thread: it must be pure.
        """
        try:
            params = registrationParams(sn, cpusn, devinfo, approvedIfNew, bind, self._now())
        except (TypeError, ValueError) as e:
            return fail(e)
        batcher: Batcher[Registration, Registered | Failure] | None = getattr(
            self, "_registrationBatcher", None
        )
        if batcher is None:
            batcher = self._registrationBatcher = Batcher(
                self._writeRegistrations,
                REGISTRATIONS_PER_BATCH,
                lane=inForeground,
                concurrency=REGISTRATION_BATCHES_AT_ONCE,
            )
        # a Failure given as a caller's answer fires its errbacks: it fails alone
        return cast("Deferred[Registered]", batcher((params, check)))

    @inlineCallbacks
    def _writeRegistrations(
        self, registrations: list[Registration]
    ) -> Generator[Deferred[Any], Any, list[Registered | Failure]]:
        """
        The registrations asked while the previous batch was written, in one transaction; if
        it fails for another reason than the database being unavailable (a value one of them
        has, a deadlock), each is written again alone, so that only its own caller fails.
        """
        try:
            answers = yield self._runOpWithEvents(registerTerminals(self.dialect, registrations))
        except StoreUnavailable:
            raise
        except Exception:
            if len(registrations) == 1:
                raise
            _log.info(
                "registration batch of {count} failed: writing each alone",
                count=len(registrations),
            )
            answers = []
            for registration in registrations:
                try:
                    alone = registerTerminals(self.dialect, [registration])
                    answers.append((yield self._runOpWithEvents(alone))[0])
                except Exception:
                    answers.append(Failure())
        return list(answers)

    def createTerminal(
        self, sn: str, name: str | None, approved: bool, timezone: str | None
    ) -> Deferred[Terminal]:
        """
        See L{tm20.interfaces.ITerminalStore.createTerminal}; C{firstSeen}/C{lastSeen} stay
        C{None} until it connects.
        """
        return self._runOp(True, createTerminal(self.dialect, sn, name, approved, timezone))

    def getTerminal(self, sn: str) -> Deferred[Terminal | None]:
        """See L{tm20.interfaces.ITerminalStore.getTerminal}."""
        return self._runOp(False, getTerminal(self.dialect, sn), single=True)

    def listTerminals(self, approved: bool | None) -> Deferred[list[Terminal]]:
        """See L{tm20.interfaces.ITerminalStore.listTerminals}."""
        return self._runOp(False, listTerminals(self.dialect, approved))

    def updateTerminal(self, sn: str, changes: Mapping[str, Any]) -> Deferred[Terminal | None]:
        """See L{tm20.interfaces.ITerminalStore.updateTerminal}."""
        unknown = sorted(set(changes) - TERMINAL_EDITABLE_FIELDS)
        if unknown:
            return fail(
                ValueError(
                    f"terminal fields {unknown} cannot be changed;"
                    f" editable: {sorted(TERMINAL_EDITABLE_FIELDS)}"
                )
            )
        values = {
            field: bool(value) if field in ("approved", "active") else value
            for field, value in changes.items()
        }
        return self._runOpWithEvents(updateTerminal(self.dialect, sn, values, self._now()))

    def deleteTerminal(self, sn: str) -> Deferred[bool]:
        """
        See L{tm20.interfaces.ITerminalStore.deleteTerminal}: also its users, credentials,
        logs, commands and quarantine.
        """
        return self._runOpWithEvents(deleteTerminal(self.dialect, sn, self._now()))

    # -- identity ------------------------------------------------------------------------------

    def bindTerminalIdentity(
        self, sn: str, cpusn: str | None, mac: str | None
    ) -> Deferred[Terminal | None]:
        """See L{tm20.interfaces.ITerminalStore.bindTerminalIdentity}: only an unbound one."""
        now = self._now()
        op = changeTerminal(
            self.dialect,
            sn,
            "bound_cpusn = %s, bound_mac = %s, bound_at = %s",
            (cpusn or None, mac or None, now),
            now,
            condition=" AND bound_cpusn IS NULL AND bound_mac IS NULL",
        )
        return self._runOp(True, op)

    def flagTerminal(self, sn: str, mismatch: Mapping[str, Any]) -> Deferred[Terminal | None]:
        """See L{tm20.interfaces.ITerminalStore.flagTerminal}."""
        try:
            text = dumpJSON(mismatch)
        except (TypeError, ValueError) as e:
            return fail(e)
        op = changeTerminal(
            self.dialect, sn, "identity_mismatch = %s", (text,), self._now(), flaggedEvent
        )
        return self._runOpWithEvents(op)

    def resetTerminalIdentity(self, sn: str) -> Deferred[Terminal | None]:
        """See L{tm20.interfaces.ITerminalStore.resetTerminalIdentity}."""
        op = changeTerminal(
            self.dialect,
            sn,
            "bound_cpusn = NULL, bound_mac = NULL, bound_at = NULL, identity_mismatch = NULL",
            (),
            self._now(),
            lambda terminal: updatedEvent(terminal, ["identity"]),
        )
        return self._runOpWithEvents(op)

    def setTerminalSecret(self, sn: str, secretHash: str | None) -> Deferred[Terminal | None]:
        """See L{tm20.interfaces.ITerminalStore.setTerminalSecret}."""
        op = changeTerminal(
            self.dialect,
            sn,
            "secret_hash = %s",
            (secretHash,),
            self._now(),
            lambda terminal: updatedEvent(terminal, ["secret"]),
        )
        return self._runOpWithEvents(op)


def _sighted(result: tuple[Terminal | None, Any, bool]) -> Terminal:
    """The terminal out of an unchecked, unbinding L{registerTerminal}."""
    terminal = result[0]
    assert terminal is not None
    return terminal
