"""
Access decisions at the door: a real-time C{sendlog}, C{sendqrcode}, C{sendpin}.

  - B{No database read at the door.}  Rules, holidays, codes, persons and the terminals'
    groups are held in memory (a L{Snapshot}), loaded at start, reloaded at once when they are
    changed through this process's API (L{changed}) and every C{refreshInterval} seconds (for
    changes made through another process sharing the database).
  - B{Recorded with the fact.}  A decided punch is stored with its decision, its
    C{log.created} and its C{access.*} event in one transaction; a code decision likewise,
    consuming a single-use code there (a conditional C{UPDATE}: two doors cannot both use it).
  - B{Real time only.}  Only a C{sendlog} of one record whose time is within C{maxAge} seconds
    of the terminal's clock now (in its time zone) is decided; anything else never grants.
  - B{Never a hang.}  The answer is due C{replyBudget} seconds after the request: when the
    write has not committed by then (or fails), the door gets the fallback (C{deny}, or
    C{cached}: what the snapshot's rules say, for a known enabled person) and the punch's reply
    says C{result:false} (not stored: the terminal sends it again later, and that resend is
    never decided again).  A write that commits after all is corrected to the fallback the door
    got (L{tm20.interfaces.IAccessStore.recordAccessFallback}).
  - B{Policies} (L{tm20.interfaces.IAccessPolicy}) are asked about what the rules granted and
    may only deny; one that fails or has not answered within half the budget makes the door
    fall back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from twisted.internet import defer
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tm20.access.model import (
    REASON_BACKLOG,
    REASON_FALLBACK,
    REASON_POLICY,
    REASON_QR_VALID,
    REASON_RULE,
    REASONS,
    AccessRequest,
    Decision,
)
from tm20.access.rules import Snapshot, decideCode, decidePerson
from tm20.interfaces import IAccessService, ILogIngest
from tm20.protocol.messages import LogRecord, SendLog
from tm20.protocol.replies import failureFields

__all__ = [
    "CONTROL_ALWAYS",
    "CONTROL_AUTO",
    "FALLBACK_CACHED",
    "FALLBACK_DENY",
    "AccessReply",
    "AccessRequest",
    "AccessService",
    "pluginPolicies",
]

FALLBACK_DENY = "deny"
FALLBACK_CACHED = "cached"
FALLBACK_MODES = (FALLBACK_DENY, FALLBACK_CACHED)

#: C{--access-control}: decide at the doors the access settings cover, or at every door
CONTROL_AUTO = "auto"
CONTROL_ALWAYS = "always"
CONTROL_MODES = (CONTROL_AUTO, CONTROL_ALWAYS)

#: What the terminal's screen shows.
MESSAGE_GRANTED = "Welcome"
MESSAGE_DENIED = "Access denied"


def pluginPolicies() -> list[Any]:
    """The L{tm20.interfaces.IAccessPolicy} plugins, by name."""
    from twisted.plugin import getPlugins

    import tm20.plugins
    from tm20.interfaces import IAccessPolicy  # noqa: PLC0415

    return sorted(getPlugins(IAccessPolicy, tm20.plugins), key=lambda p: str(p.name))


@attrs.frozen
class AccessReply:
    """
    The answer for the terminal.

    @ivar stored: the fact (log, code decision) was committed before the answer.
    @ivar message: the text for the terminal's screen.
    """

    decision: Decision
    stored: bool
    message: str

    @property
    def access(self) -> int:
        return 1 if self.decision.granted else 0


class _Late(Exception):
    """The write did not commit within the budget."""


@implementer(IAccessService)
class AccessService:
    """See the module docstring."""

    log = Logger()

    def __init__(
        self,
        store: Any,
        clock: Any,
        *,
        maxAge: float = 30.0,
        replyBudget: float = 0.5,
        fallback: str = FALLBACK_DENY,
        refreshInterval: float = 5.0,
        defaultTimezone: str | None = None,
        policies: Sequence[Any] | None = None,
        control: str = CONTROL_AUTO,
        metrics: Any = None,
    ) -> None:
        if fallback not in FALLBACK_MODES:
            raise ValueError(f"fallback must be one of {FALLBACK_MODES}, got {fallback!r}")
        if control not in CONTROL_MODES:
            raise ValueError(f"control must be one of {CONTROL_MODES}, got {control!r}")
        #: C{auto}: only the doors the rules, codes and group settings cover are decided;
        #: C{always}: every door
        self.control = control
        self.store = store
        self.clock = clock
        self.maxAge = maxAge
        self.replyBudget = replyBudget
        self.fallback = fallback
        self.refreshInterval = refreshInterval
        self.defaultTimezone = defaultTimezone
        self.policies = list(pluginPolicies() if policies is None else policies)
        #: L{tm20.metrics.Metrics} (decisions by decision and reason, fallbacks), or C{None}
        self.metrics = metrics
        self.snapshot = Snapshot()
        #: records answered with the fallback: (sn, key) -> until when they are ignored
        self._fellBack: dict[tuple[str, tuple[Any, ...]], float] = {}
        self._refresher: LoopingCall | None = None
        self._loading: Deferred[None] | None = None
        self._again = False
        self._refreshFailing = False
        #: counts, for tests and metrics
        self.granted = 0
        self.denied = 0
        self.fellBack = 0

    # -- the snapshot -------------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Load the snapshot, then refresh it every C{refreshInterval} seconds (0: never)."""
        d = self.refresh()
        if self.refreshInterval > 0 and self._refresher is None:
            self._refresher = LoopingCall(self.refresh)
            self._refresher.clock = self.clock
            self._refresher.start(self.refreshInterval, now=False)
        return d

    def stop(self) -> None:
        if self._refresher is not None and self._refresher.running:
            self._refresher.stop()
        self._refresher = None

    def refresh(self) -> Deferred[None]:
        """
        Reload the snapshot (one at a time: a change while loading loads again after).  A
        failed load keeps the current snapshot (logged once until a load succeeds).
        """
        if self._loading is not None:
            self._again = True
            return self._loading

        def loaded(snapshot: Snapshot) -> None:
            self.snapshot = snapshot
            if self._refreshFailing:
                self.log.info("access rules loaded again")
            self._refreshFailing = False

        def failed(f: Failure) -> None:
            if not self._refreshFailing:
                self.log.warn(
                    "could not load the access rules (the doors decide on those loaded before):"
                    " {error}",
                    error=f.getErrorMessage(),
                )
            self._refreshFailing = True

        def done(_: object) -> None:
            self._loading = None
            if self._again:
                self._again = False
                self.refresh()

        d: Deferred[None] = self.store.loadAccessSnapshot().addCallbacks(loaded, failed)
        self._loading = d
        d.addBoth(done)
        return d

    def changed(self) -> Deferred[None]:
        """Rules, codes, persons or groups were changed here: reload now."""
        return self.refresh()

    # -- time ----------------------------------------------------------------------------------------

    def _zone(self, terminal: Any) -> str | None:
        tz = getattr(terminal, "timezone", None)
        return tz or self.defaultTimezone

    def localNow(self, terminal: Any) -> datetime:
        """The terminal's wall-clock time now (naive), in its own time zone."""
        tz = self._zone(terminal)
        now = self.clock.seconds()
        if tz is None:
            return datetime.fromtimestamp(now)
        return datetime.fromtimestamp(now, ZoneInfo(tz)).replace(tzinfo=None)

    def controls(self, sn: str) -> bool:
        """
        Is door C{sn} under access control?  Always with C{control} C{always}; otherwise when
        an access rule, a code or a group access setting covers it (L{Snapshot.controls}).  A
        door that is not gets the replies, records and events it got without access control.
        """
        return self.control == CONTROL_ALWAYS or self.snapshot.controls(sn)

    def wantsDecision(self, sn: str, records: Sequence[LogRecord], rejected: int) -> bool:
        """
        A batch asking for a decision: one record of a person (not a door event) at a door
        under access control (L{controls}).  Whether it is real time (recent, not a resend
        answered with the fallback) is L{decidePunch}'s call: one that is not is recorded
        C{backlog}, denied.
        """
        return (
            len(records) == 1 and not rejected and not records[0].isDoorEvent and self.controls(sn)
        )

    def _backlog(self, sn: str, terminal: Any, record: LogRecord, local: datetime) -> bool:
        try:
            stamped = datetime.strptime(record.time, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return True
        if abs(local - stamped) > timedelta(seconds=self.maxAge):
            return True
        now = self.clock.seconds()
        for key, until in list(self._fellBack.items()):
            if until < now:
                del self._fellBack[key]
        return (sn, record.key()) in self._fellBack

    # -- decisions -------------------------------------------------------------------------------

    def _fallbackOf(self, decision: Decision) -> Decision:
        """What the door gets when the decision cannot be committed (or a policy failed)."""
        if (
            self.fallback == FALLBACK_CACHED
            and decision.granted
            and decision.reason in (REASON_RULE, REASON_QR_VALID, REASON_POLICY)
            and not decision.consume
        ):
            return attrs.evolve(decision, reason=REASON_FALLBACK)
        return decision.denied(REASON_FALLBACK)

    @inlineCallbacks
    def _askPolicies(self, request: AccessRequest, deadline: float) -> Any:
        """The rules' decision after the policies (a denial, or the fallback), and a message."""
        decision = request.decision
        if not decision.granted or not self.policies:
            return decision, None
        answers = [defer.maybeDeferred(p.check, request) for p in self.policies]
        gathered: Deferred[list[Any]] = defer.gatherResults(answers, consumeErrors=True)
        try:
            answer = _within(gathered, self.clock, max(0.0, deadline - self.clock.seconds()))
            gathered.addErrback(lambda _: None)  # reported through answer
            results = yield answer
        except Exception as e:
            error = e.subFailure.getErrorMessage() if isinstance(e, defer.FirstError) else str(e)
            self.log.warn(
                "an access policy failed or did not answer in time at {sn} ({error}); falling back",
                sn=request.sn,
                error=error or type(e).__name__,
            )
            return self._fallbackOf(decision), None
        for policy, result in zip(self.policies, results, strict=True):
            if result is False or isinstance(result, str):
                message = result if isinstance(result, str) else None
                self.log.info(
                    "access policy {policy} denied {kind} at {sn}",
                    policy=policy.name,
                    kind=request.kind,
                    sn=request.sn,
                )
                return decision.denied(REASON_POLICY), message
        return decision, None

    def _message(self, decision: Decision, message: str | None) -> str:
        if message:
            return message
        if decision.granted:
            return decision.name or MESSAGE_GRANTED
        return MESSAGE_DENIED

    def _count(self, sn: str, reply: AccessReply) -> AccessReply:
        if reply.decision.granted:
            self.granted += 1
        else:
            self.denied += 1
        if reply.decision.reason == REASON_FALLBACK:
            self.fellBack += 1
        if self.metrics is not None:
            self.metrics.accessDecided(reply.decision.granted, reply.decision.reason, REASONS)
        self.log.info(
            "access {verdict} at {sn}: {reason} (enrollid {enrollid})",
            verdict="granted" if reply.decision.granted else "denied",
            sn=sn,
            reason=reply.decision.reason,
            enrollid=reply.decision.enrollid,
        )
        return reply

    @inlineCallbacks
    def answerPunch(self, sn: str, terminal: Any, batch: SendLog, ingest: ILogIngest) -> Any:
        """
        The C{sendlog} reply's fields for C{batch} (one real-time punch, L{wantsDecision}):
        decided and stored with its decision (L{decidePunch}), then acknowledged by C{ingest}
        with C{access} and C{message}; C{result:false} (not stored: the terminal sends it
        again) with the fallback's C{access} when the decision could not be committed in time.
        """
        reply = yield self.decidePunch(sn, terminal, batch.records[0])
        if not reply.stored:
            return {**failureFields(), "access": reply.access, "message": reply.message}
        return ingest.acknowledge(sn, terminal, batch, reply.access, reply.message)

    @inlineCallbacks
    def decidePunch(self, sn: str, terminal: Any, record: LogRecord) -> Any:
        """
        Decide and record a real-time punch (see the module docstring).

        @return: a L{Deferred} of an L{AccessReply}; it never fails and fires within the budget.
        """
        started = self.clock.seconds()
        deadline = started + self.replyBudget
        local = self.localNow(terminal)
        if self._backlog(sn, terminal, record, local):
            decision = Decision(False, REASON_BACKLOG, enrollid=record.enrollid)
            message = None
        else:
            decision = decidePerson(self.snapshot, sn, record.enrollid, local)
            request = AccessRequest(
                sn, "log", record.enrollid, None, decision, local.strftime("%Y-%m-%d %H:%M:%S")
            )
            decision, message = yield self._askPolicies(request, started + self.replyBudget / 2)
        write = self.store.recordAccessPunch(sn, record, decision, self._zone(terminal))
        try:
            yield _within(write, self.clock, max(0.0, deadline - self.clock.seconds()))
        except Exception as e:
            fallback = self._fallbackOf(decision)
            self._fellBack[(sn, record.key())] = self.clock.seconds() + 2 * self.maxAge + 60
            self._afterLate(write, sn, "log", fallback, e)
            return self._count(sn, AccessReply(fallback, False, self._message(fallback, None)))
        return self._count(sn, AccessReply(decision, True, self._message(decision, message)))

    @inlineCallbacks
    def decideCode(self, sn: str, terminal: Any, kind: str, text: str) -> Any:
        """
        Decide and record a code (C{kind} C{qrcode} or C{pin}).

        @return: a L{Deferred} of an L{AccessReply}; it never fails and fires within the budget.
        """
        started = self.clock.seconds()
        deadline = started + self.replyBudget
        local = self.localNow(terminal)
        now = datetime.fromtimestamp(started, UTC)
        decision = decideCode(self.snapshot, sn, text, local, now, pin=kind == "pin")
        request = AccessRequest(
            sn,
            kind,
            decision.enrollid,
            decision.qrcodeId,
            decision,
            local.strftime("%Y-%m-%d %H:%M:%S"),
        )
        decision, message = yield self._askPolicies(request, started + self.replyBudget / 2)
        write = self.store.recordAccessCode(sn, kind, decision)
        try:
            recorded, _ = yield _within(
                write, self.clock, max(0.0, deadline - self.clock.seconds())
            )
        except Exception as e:
            fallback = self._fallbackOf(decision)
            self._afterLate(write, sn, kind, fallback, e)
            return self._count(sn, AccessReply(fallback, False, self._message(fallback, None)))
        if recorded.granted and recorded.consume and recorded.qrcodeId is not None:
            self.snapshot = self.snapshot.withCodeUsed(recorded.qrcodeId, sn, now)
        if recorded.reason != decision.reason:
            message = None
        return self._count(sn, AccessReply(recorded, True, self._message(recorded, message)))

    def _afterLate(
        self, write: Deferred[Any], sn: str, kind: str, fallback: Decision, why: Exception
    ) -> None:
        """The door got C{fallback}; if the write commits after all, record that instead."""
        self.log.warn(
            "access decision at {sn} not committed in time ({why}): answered with the fallback"
            " ({verdict})",
            sn=sn,
            why=str(why) or type(why).__name__,
            verdict="granted" if fallback.granted else "denied",
        )

        def committed(result: Any) -> Any:
            recordId = result[1] if isinstance(result, tuple) else result
            if recordId is None:
                return None
            return self.store.recordAccessFallback(sn, kind, recordId, fallback)

        def failed(f: Failure) -> None:
            self.log.warn(
                "the late access decision at {sn} could not be corrected: {error}",
                sn=sn,
                error=f.getErrorMessage(),
            )

        write.addCallback(committed).addErrback(failed)


def _within(d: Deferred[Any], clock: Any, seconds: float) -> Deferred[Any]:
    """
    A L{Deferred} firing as C{d} does, or failing with L{_Late} after C{seconds}; C{d} itself
    is never cancelled (a write in flight may still commit: the caller deals with it).
    """
    out: Deferred[Any] = Deferred()

    def late() -> None:
        if not out.called:
            out.errback(_Late("reply budget spent"))

    timer = clock.callLater(seconds, late)

    def settle(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        if not out.called:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(result)
        return result

    d.addBoth(settle)
    # the caller's copy: a failure of d after the deadline stays with d's own callbacks
    return out
