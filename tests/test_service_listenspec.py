"""The endpoint strings the server listens on: a bare port number, and the listen backlog."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tm20.service import listenSpec


class ListenSpecTests(SynchronousTestCase):
    def test_bareNumberAndBacklog(self) -> None:
        self.assertEqual(listenSpec("7788", 1024), "tcp:7788:backlog=1024")
        self.assertEqual(
            listenSpec("tcp:7788:interface=127.0.0.1", 2048),
            "tcp:7788:interface=127.0.0.1:backlog=2048",
        )
        self.assertEqual(
            listenSpec("ssl:7443:privateKey=k:certKey=c", 1024),
            "ssl:7443:privateKey=k:certKey=c:backlog=1024",
        )
        self.assertEqual(listenSpec("tcp:7788:backlog=10", 1024), "tcp:7788:backlog=10")
        self.assertEqual(
            listenSpec("systemd:domain=INET:index=0", 1024), "systemd:domain=INET:index=0"
        )
