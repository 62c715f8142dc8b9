"""
Timers on a clock that only moves forward, for the keep-alive.

Twisted's reactor keeps its delayed calls on the wall clock (C{time.time}, see Twisted issue
#2424): when the system clock is stepped forward, every pending C{callLater} fires at once; when
it is stepped back, every pending one waits as much longer.  L{monotonicClock} gives an
C{IReactorTime} whose C{seconds()} is C{time.monotonic()} and whose delayed calls are rung by a
Linux C{timerfd} on C{CLOCK_MONOTONIC}, watched by the reactor like any socket: neither a jump
forward nor a jump back moves them.  Where no C{timerfd} exists, C{seconds()} is still monotonic
and delayed calls fall back to the reactor's (a jump forward then only wakes them early, and
they wait again; a jump back still delays them).

A C{Clock} (tests) is its own monotonic clock: tests inject a second C{Clock} to play the
monotonic time apart from the wall time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import heapq
import itertools
import os
import time
import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall, IReactorFDSet, IReactorTime
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["MonotonicTime", "TimerFD", "monotonicClock"]

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.POINTER(_Itimerspec),
        ]
    except (OSError, AttributeError):
        return None
    return libc


class TimerFD:
    """
    A Linux C{timerfd} on C{CLOCK_MONOTONIC}: a file descriptor that becomes readable when its
    one alarm is due (an C{IReadDescriptor} for the reactor).

    @raise OSError: the system has no C{timerfd}.
    """

    _libcCache: Any = None

    def __init__(self, ring: Callable[[], None]) -> None:
        libc = TimerFD._libcCache = TimerFD._libcCache or _libc()
        if libc is None:
            raise OSError(errno.ENOSYS, "no timerfd")
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._libc = libc
        self._fd = fd
        self._ring = ring

    def set(self, delay: float) -> None:
        """Ring in C{delay} seconds (monotonic) from now, replacing any earlier setting."""
        delay = max(delay, 1e-6)  # zero would disarm it
        seconds = int(delay)
        spec = _Itimerspec()
        spec.it_value.tv_sec = seconds
        spec.it_value.tv_nsec = min(int((delay - seconds) * 1e9), 999_999_999) or 1000
        self._settime(spec)

    def disarm(self) -> None:
        """Ring no more."""
        self._settime(_Itimerspec())

    def _settime(self, spec: _Itimerspec) -> None:
        if self._libc.timerfd_settime(self._fd, 0, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # IReadDescriptor

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return  # disarmed or re-set since it became readable
        self._ring()

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "tm20-monotonic-timer"


@implementer(IReactorTime)
class MonotonicTime:
    """
    C{IReactorTime} on C{time.monotonic()}.

    Its delayed calls are kept here and rung by a L{TimerFD} that the reactor watches only while
    a call is pending (so an idle server, or a test between connections, leaves no reader on
    the reactor).  Without C{timerfd}, the reactor's own C{callLater} wakes it.

    The calls wait in a heap ordered by due time, as the reactor keeps its own: adding, cancelling
    and postponing a call cost O(log n), whatever the number of terminals (every connection keeps
    a keep-alive timer here).  A cancelled or postponed call's entry is dropped lazily, when it
    reaches the top, or all at once when such entries outnumber the live ones.
    The timer is re-armed only for an earlier call: when the earliest is cancelled or postponed,
    it rings early once, finds nothing due, and is armed for the next.
    """

    log = Logger()

    def __init__(self, reactor: Any, now: Callable[[], float] = time.monotonic) -> None:
        self._reactor = reactor
        self._now = now
        #: (due time, sequence number, call); an entry is live while C{_live[call]} is its number
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._live: dict[DelayedCall, int] = {}
        self._sequence = itertools.count()
        self._timer: TimerFD | None = None
        self._watching = False
        self._armedFor: float | None = None
        self._fallback: IDelayedCall | None = None
        self._useTimerFD = IReactorFDSet.providedBy(reactor)

    def seconds(self) -> float:
        return self._now()

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kw: object
    ) -> IDelayedCall:
        call = DelayedCall(
            self._now() + delay,
            callable,
            args,
            kw,
            self._cancelled,
            self._reset,
            seconds=self._now,
        )
        self._push(call)
        self._arm()
        return call

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return [c for c in self._live if c.active()]

    def _push(self, call: DelayedCall) -> None:
        number = next(self._sequence)
        self._live[call] = number
        heapq.heappush(self._heap, (call.getTime(), number, call))

    def _cancelled(self, call: DelayedCall) -> None:
        self._live.pop(call, None)
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [e for e in self._heap if self._live.get(e[2]) == e[1]]
            heapq.heapify(self._heap)
        if not self._live:
            self._heap.clear()
        self._arm()

    def _reset(self, call: DelayedCall) -> None:
        # DelayedCall calls this only when a call is moved sooner (having set its new time and
        # cleared delayed_time); one moved later keeps its entry and is pushed again when that
        # entry comes due (see _ring).
        self._push(call)
        self._arm()

    def _top(self) -> float | None:
        """The due time of the earliest live entry, dropping dead ones on the way."""
        heap = self._heap
        while heap:
            _, number, call = heap[0]
            if self._live.get(call) == number:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def _arm(self) -> None:
        """Wake up for the earliest call, or stop watching when there is none."""
        due = self._top()
        if due is None:
            self._sleep()
            return
        armedFor = self._armedFor
        if armedFor is not None and due >= armedFor:
            # Armed for this time, or sooner (the earliest call was cancelled or postponed):
            # left as it is, the early ring finds nothing due and arms for the next call.
            # Re-arming on every cancellation cost a system call per connection (its
            # registration deadline, cancelled once it registers, is usually the earliest).
            return
        self._armedFor = due
        delay = due - self._now()
        if self._useTimerFD:
            try:
                if self._timer is None:
                    self._timer = TimerFD(self._ring)
                self._timer.set(delay)
            except OSError as e:
                self.log.warn(
                    "no monotonic timer ({error}): keep-alive timers follow the wall clock",
                    error=str(e),
                )
                self._useTimerFD = False
                self._timer = None
            else:
                if not self._watching:
                    self._reactor.addReader(self._timer)
                    self._watching = True
                return
        if self._fallback is not None and self._fallback.active():
            self._fallback.cancel()
        self._fallback = self._reactor.callLater(max(0.0, delay), self._ring)

    def _sleep(self) -> None:
        self._armedFor = None
        if self._timer is not None:
            self._timer.disarm()
            if self._watching:
                self._reactor.removeReader(self._timer)
                self._watching = False
        if self._fallback is not None and self._fallback.active():
            self._fallback.cancel()
        self._fallback = None

    def _ring(self) -> None:
        self._fallback = None
        self._armedFor = None
        now = self._now()
        due: list[DelayedCall] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, number, call = heapq.heappop(heap)
            if self._live.get(call) != number:
                continue  # cancelled, or moved sooner and pushed again
            if call.delayed_time:  # postponed since it was pushed: wait again
                call.activate_delay()
                self._push(call)
                continue
            del self._live[call]
            due.append(call)
        self._arm()
        for call in due:
            if call.cancelled:
                continue  # by an earlier one
            call.called = 1
            try:
                call.func(*call.args, **call.kw)
            except Exception:
                self.log.failure("while handling a monotonic timed call")


_clocks: weakref.WeakKeyDictionary[Any, MonotonicTime] = weakref.WeakKeyDictionary()


def monotonicClock(reactor: Any) -> IReactorTime:
    """
    The monotonic C{IReactorTime} of C{reactor}: one per reactor; a C{Clock} is its own.
    """
    if isinstance(reactor, Clock) or isinstance(reactor, MonotonicTime):
        return reactor
    clock = _clocks.get(reactor)
    if clock is None:
        clock = _clocks[reactor] = MonotonicTime(reactor)
    return clock
