"""
Admission control for terminal upgrades: finish the registrations started before starting more.

When thousands of terminals connect at once, the server cannot register them all within their
patience: shared among all of them, it finishes none in time, they give up and retry, and every
retry is another TCP and WebSocket handshake to serve.  L{Admission} lets at most C{limit}
connections be I{registering} at once (from their upgrade request until their first C{reg} is
accepted, or they close); the upgrade request of any connection beyond is I{held}, unanswered,
in arrival order, and answered as soon as a slot frees.  Held connections cost no handshake
response, no timers and no database work; a terminal that gives up waiting just closes its
socket, and leaves the line.

Holding is preferred to refusing (C{503}): TM20 firmware retries a failed connection without
back-off (a new TCP and WebSocket handshake each time, see the protocol reference, section 2.4),
so a refusal costs the server more than a wait, and a retry goes to the back of the line.

When C{crowdFactor} times as many upgrades wait as may register, L{onCrowded} is told (the
server stops accepting new connections until the line is down to half of that: a connection
waiting in the kernel's listen queue costs nothing, one accepted costs its TCP and HTTP
handling; but a client whose connection is not accepted retries on its own, slower, schedule).

Two bounds keep it from being abused:

  - a slot is given back C{slotSeconds} after it was given even if the connection has not
    registered yet (it stays open, under its own C{reg} deadline): sockets that never send
    C{reg} cannot keep the line from moving for long;
  - a connection held for C{holdSeconds} is refused with C{503} and C{Retry-After}.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: The C{Retry-After} of a held connection refused after C{holdSeconds}.
RETRY_AFTER = 5


class Admission:
    """
    At most C{limit} connections registering at once; the others are held in arrival order
    (C{onHeld} told of each, C{onRefused} of each refused past C{holdSeconds}).
    """

    def __init__(
        self,
        limit: int,
        clock: IReactorTime,
        slotSeconds: float,
        holdSeconds: float,
        onHeld: Callable[[], object] | None = None,
        onRefused: Callable[[], object] | None = None,
        crowdFactor: float = 1.0,
    ) -> None:
        """
        @param crowdFactor: the line is crowded (L{onCrowded}) when C{crowdFactor * limit}
            upgrades wait.
        """
        self.limit = limit
        self.crowdFactor = crowdFactor
        self.clock = clock
        self.slotSeconds = slotSeconds
        self.holdSeconds = holdSeconds
        self.onHeld = onHeld
        self.onRefused = onRefused
        #: connection -> when it got its slot (in order)
        self._admitted: OrderedDict[Any, float] = OrderedDict()
        #: connection -> (when it was held, its upgrade's answer) (in order)
        self._waiting: OrderedDict[Any, tuple[float, Deferred[None]]] = OrderedDict()
        self._timer: IDelayedCall | None = None
        #: Called with C{True} when C{crowdFactor} times as many upgrades wait as may register
        #: at once (accepting more connections would only lengthen the line, at a cost per
        #: connection), and with C{False} once the line is down to half of that (see
        #: L{crowded}).
        self.onCrowded: Callable[[bool], object] | None = None
        self.crowded = False

    @property
    def registering(self) -> int:
        """Connections holding a slot now."""
        return len(self._admitted)

    @property
    def waiting(self) -> int:
        """Upgrades held now."""
        return len(self._waiting)

    def admit(self, connection: Any) -> Deferred[None] | None:
        """
        A connection's upgrade request arrived.

        @return: C{None}: go on now (it holds a slot); or a L{Deferred} firing when it may go
            on, or failing with L{ConnectionDeny} (C{503}) once held for C{holdSeconds}.
        """
        if self.limit <= 0:
            return None
        now = self.clock.seconds()
        self._expire(now)
        if not self._waiting and len(self._admitted) < self.limit:
            self._admitted[connection] = now
            return None
        d: Deferred[None] = Deferred()
        self._waiting[connection] = (now, d)
        if self.onHeld is not None:
            self.onHeld()
        self._schedule()
        self._checkCrowd()
        return d

    def done(self, connection: Any) -> None:
        """
        C{connection} no longer needs its slot (its C{reg} was accepted), or it closed (held or
        not).  Idempotent.
        """
        if self._admitted.pop(connection, None) is not None:
            self._next(self.clock.seconds())
        elif self._waiting.pop(connection, None) is not None:
            self._schedule()
            self._checkCrowd()

    def _next(self, now: float) -> None:
        """Give the free slots to the connections waiting longest."""
        while self._waiting and len(self._admitted) < self.limit:
            connection, (_, d) = self._waiting.popitem(last=False)
            self._admitted[connection] = now
            d.callback(None)
        self._schedule()
        self._checkCrowd()

    def _checkCrowd(self) -> None:
        waiting = len(self._waiting)
        crowd = max(1, int(self.limit * self.crowdFactor))
        if not self.crowded and waiting >= crowd:
            crowded = True
        elif self.crowded and waiting <= crowd // 2:
            crowded = False
        else:
            return
        self.crowded = crowded
        if self.onCrowded is not None:
            self.onCrowded(crowded)

    def _expire(self, now: float) -> None:
        """Take back the slots given too long ago; refuse the connections held too long."""
        while self._admitted:
            connection, since = next(iter(self._admitted.items()))
            if now - since < self.slotSeconds:
                break
            del self._admitted[connection]
        while self._waiting:
            connection, (since, d) = next(iter(self._waiting.items()))
            if now - since < self.holdSeconds:
                break
            del self._waiting[connection]
            if self.onRefused is not None:
                self.onRefused()
            d.errback(
                ConnectionDeny(
                    ConnectionDeny.SERVICE_UNAVAILABLE,
                    "too many terminals registering: retry later",
                )
            )

    def _schedule(self) -> None:
        """
        Keep one timer while connections wait: the next slot or hold to expire.

        A timer already due no later than that is kept (its tick finds nothing to do yet and
        schedules again): the deadline moves on with nearly every admission and release, and
        replacing the timer each time cost a C{DelayedCall} (and a re-arm of the clock) per
        connection.
        """
        timer = self._timer
        if not self._waiting:
            if timer is not None and timer.active():
                timer.cancel()
            self._timer = None
            return
        deadline = next(iter(self._waiting.values()))[0] + self.holdSeconds
        if self._admitted:
            deadline = min(deadline, next(iter(self._admitted.values())) + self.slotSeconds)
        if timer is not None and timer.active():
            if timer.getTime() <= deadline:
                return
            timer.cancel()
        self._timer = self.clock.callLater(max(0.0, deadline - self.clock.seconds()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        self._expire(now)
        self._next(now)

    def stop(self) -> None:
        """At shutdown: refuse the held upgrades (C{503}), cancel the timer."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        waiting, self._waiting = self._waiting, OrderedDict()
        for _, d in waiting.values():
            d.errback(ConnectionDeny(ConnectionDeny.SERVICE_UNAVAILABLE, "server shutting down"))
