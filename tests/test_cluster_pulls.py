"""
L{tm20.cluster.routing.ClusterPulls}: the pull service of a cluster node provides
L{IPullService} and leaves to the local service what concerns terminals connected here.  The
routing to other nodes runs in C{tests/test_cluster_nodes.py} (real processes).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tm20.cluster.routing import ClusterPulls, CommandRouter
from tm20.interfaces import IPullService
from tm20.model import LogPullResult, UserPullResult, UserRefreshResult


@implementer(IPullService)
class RecordingPulls:
    """A local pull service that says what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    def busy(self, sn: str) -> bool:
        self.asked.append(("busy", sn))
        return sn == "BUSY"

    def pullUsers(self, sn: str) -> Deferred[UserPullResult]:
        self.asked.append(("pullUsers", sn))
        return succeed(cast(UserPullResult, "users"))

    def refreshUsers(self, sn: str) -> Deferred[UserRefreshResult]:
        self.asked.append(("refreshUsers", sn))
        return succeed(cast(UserRefreshResult, "refreshed"))

    def pullLogs(
        self, sn: str, allLogs: bool = False, since: str | None = None, until: str | None = None
    ) -> Deferred[LogPullResult]:
        self.asked.append(("pullLogs", sn, allLogs, since, until))
        return succeed(cast(LogPullResult, "logs"))


class Connected:
    """Every terminal is connected here."""

    def isConnected(self, sn: str) -> bool:
        return True


class ClusterPullsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.local = RecordingPulls()
        # no call may reach the router: every terminal is connected here
        self.pulls = ClusterPulls(self.local, cast(CommandRouter, None), Connected())

    def test_providesIPullService(self) -> None:
        self.assertTrue(verifyObject(IPullService, self.pulls))

    def test_localChecksAreTheLocalService(self) -> None:
        self.assertTrue(self.pulls.busy("BUSY"))
        self.assertFalse(self.pulls.busy("IDLE"))
        self.assertEqual(self.successResultOf(self.pulls.refreshUsers("T1")), "refreshed")
        self.assertEqual(
            self.local.asked, [("busy", "BUSY"), ("busy", "IDLE"), ("refreshUsers", "T1")]
        )

    def test_connectedHereIsPulledHere(self) -> None:
        self.assertEqual(self.successResultOf(self.pulls.pullUsers("T1")), "users")
        logs = self.pulls.pullLogs("T1", True, "2026-01-01", "2026-02-01")
        self.assertEqual(self.successResultOf(logs), "logs")
        self.assertEqual(
            self.local.asked,
            [("pullUsers", "T1"), ("pullLogs", "T1", True, "2026-01-01", "2026-02-01")],
        )
