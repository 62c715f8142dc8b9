"""
Unregistered sockets flooding big frames: what they cost the other terminals.

Starts the real server (C{python -m twisted tm20}, SQLite in a scratch folder), registers one
terminal and measures its C{reg} round trips (a heartbeat: no database write), first alone, then
while N sockets that never register send 2.3 MB valid-JSON C{sendlog} frames as fast as TCP
takes them (reconnecting whenever the server closes them).

    python -m bench.prereg_flood                       # this tree, 1 and 4 attackers
    python -m bench.prereg_flood --src /tmp/old-tree   # another tree (e.g. `git archive` of main)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent.parent


def _frame(payload: bytes) -> bytes:
    """A client frame with a zero mask (the payload goes out as it is: cheap to resend)."""
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\x00\x00\x00\x00" + payload


def _connect(port: int) -> tuple[socket.socket, bytes]:
    for _ in range(400):
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise SystemExit("the server did not start")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /pub/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            raise EOFError("closed during the handshake")
        buf += data
    return sock, buf.split(b"\r\n\r\n", 1)[1]


def _readFrame(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
    while True:
        if len(buf) >= 2:
            n, offset = buf[1] & 0x7F, 2
            if n == 126:
                n, offset = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                n, offset = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) >= offset + n:
                return buf[offset : offset + n], buf[offset + n :]
        data = sock.recv(65536)
        if not data:
            raise EOFError
        buf += data


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def run(src: Path, port: int, attackers: int, folder: str) -> str:
    database = os.path.join(folder, f"flood-{port}.sqlite3")
    server = subprocess.Popen(
        [sys.executable, "-m", "twisted", "tm20", "--port", f"tcp:{port}:interface=127.0.0.1"]
        + ["--database", f"sqlite:{database}"],
        env=dict(os.environ, PYTHONPATH=str(src)),
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record = {"enrollid": 1, "time": "2024-01-15 08:00:00", "mode": 1, "inout": 0, "event": 0}
    big = _frame(
        json.dumps(
            {
                "cmd": "sendlog",
                "sn": "X",
                "count": 28_000,
                "logindex": 0,
                "record": [record] * 28_000,
            }
        ).encode()
    )
    heartbeat = _frame(json.dumps({"cmd": "reg", "sn": "T1", "devinfo": {}}).encode())
    stop = threading.Event()
    sent = [0]

    def attack() -> None:
        while not stop.is_set():
            try:
                sock, _ = _connect(port)
                with sock:
                    while not stop.is_set():
                        sock.sendall(big)
                        sent[0] += 1
            except OSError:
                continue

    try:
        term, buf = _connect(port)
        term.sendall(heartbeat)
        _, buf = _readFrame(term, buf)

        def roundTrips(count: int) -> list[float]:
            nonlocal buf
            out = []
            for _ in range(count):
                start = time.perf_counter()
                term.sendall(heartbeat)
                _, buf = _readFrame(term, buf)
                out.append((time.perf_counter() - start) * 1000)
                time.sleep(0.02)
            return out

        alone = roundTrips(100)
        threads = [threading.Thread(target=attack, daemon=True) for _ in range(attackers)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        flooded = roundTrips(200)
        stop.set()
    finally:
        server.terminate()
        server.wait()
    return (
        f"{attackers} attacker(s), frames of {len(big) / 1e6:.1f} MB: round trip alone median "
        f"{statistics.median(alone):.1f} ms (p95 {_p95(alone):.1f}), during the flood median "
        f"{statistics.median(flooded):.1f} ms (p95 {_p95(flooded):.1f}); {sent[0]} frames sent"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=_HERE, help="source tree to run")
    parser.add_argument("--port", type=int, default=47_811)
    parser.add_argument("--attackers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for i, attackers in enumerate(args.attackers):
            print(run(args.src, args.port + i, attackers, folder), flush=True)


if __name__ == "__main__":
    main()
