"""
A simulated TM20-WIFI / AiFace terminal, for tests, benchmarks and demos.

The simulator is a WebSocket I{client}, like the real terminal: it connects to the server, sends
C{reg}, uploads its stored logs in C{sendlog} batches (one batch in flight, each waiting for its
ack), pushes C{senduser} frames and answers every server command of the vendor protocol.

It is deliberately self-contained: it imports nothing from the rest of L{tm20} (standard library,
Twisted and autobahn only), so it can never share a bug with the server it exercises.

  - L{tm20.simulator.device}: the pure state machine (L{SimulatedTerminal}); no I/O, time injected.
  - L{tm20.simulator.client}: the autobahn client and its reconnecting driver
    (L{TerminalConnection}).
  - L{tm20.simulator.__main__}: the C{tm20-simulator} command line.
"""

from tm20.simulator.device import LogEntry, SimulatedTerminal, User

__all__ = ["LogEntry", "SimulatedTerminal", "User"]
