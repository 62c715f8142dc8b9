"""
C{make conformance}: run the Autobahn|Testsuite C{fuzzingclient} against the echo endpoint
(L{conformance.echoserver}) and judge its C{index.json}.

A case passes when the suite rates both its behaviour and its closing behaviour C{OK},
C{NON-STRICT} or C{INFORMATIONAL}.  A case whose message is larger than the server's
configured maximum passes only if the server closed it with C{1009} (message too big).  Any
other outcome fails the run (exit status 1).  Sections 12 and 13 (permessage-deflate) are not
run: compression is off by design.

Usage: C{python conformance/run.py [--wstest PATH] [--cases 1.*,2.*]}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ACCEPTED = {"OK", "NON-STRICT", "INFORMATIONAL"}
CLOSE_TOO_BIG = 1009

#: "payload of length 8 * 2**20 (8M)" / "message of length 4 * 2**20" / "of length 65536".
_SIZE_RE = re.compile(r"(?:payload|message)[^.]*? length (\d+)(?:\s*\*\s*2\*\*(\d+))?")


def messageSize(report: dict[str, Any]) -> int | None:
    """The message size a case sends, read from its description (C{None}: not stated)."""
    match = _SIZE_RE.search(report.get("description", ""))
    if match is None:
        return None
    size = int(match.group(1))
    if match.group(2):
        size *= 2 ** int(match.group(2))
    return size


def startEcho(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the echo endpoint; return the process and its port."""
    portFile = workdir / "port"
    portFile.unlink(missing_ok=True)
    log = (workdir / "echoserver.log").open("wb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, str(HERE / "echoserver.py"), str(portFile)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if portFile.exists() and portFile.read_text().strip():
            return process, int(portFile.read_text())
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"conformance: the echo endpoint did not start; see {workdir}/echoserver.log")


def judge(outdir: Path, maxMessageSize: int) -> int:
    """Print the outcome per status and every failing case; return the exit status."""
    index = json.loads((outdir / "index.json").read_text())
    [(agent, cases)] = index.items()
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    tooBig = 0

    def caseKey(caseId: str) -> list[int]:
        return [int(p) for p in caseId.split(".")]

    for caseId in sorted(cases, key=caseKey):
        result = cases[caseId]
        behavior, close = result["behavior"], result["behaviorClose"]
        statuses[behavior] += 1
        if behavior in ACCEPTED and close in ACCEPTED:
            continue
        report = json.loads((outdir / result["reportfile"]).read_text())
        size = messageSize(report)
        if size is not None and size > maxMessageSize:
            if result.get("remoteCloseCode") == CLOSE_TOO_BIG:
                tooBig += 1
                continue
            failures.append(
                f"{caseId}: {size}-byte message over the {maxMessageSize}-byte limit closed with"
                f" {result.get('remoteCloseCode')}, not {CLOSE_TOO_BIG}"
            )
            continue
        failures.append(
            f"{caseId}: behavior {behavior}, close {close},"
            f" remote close code {result.get('remoteCloseCode')}"
        )
    total = sum(statuses.values())
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    print(f"conformance: {agent}: {total} cases: {counts}")
    print(
        f"conformance: {tooBig} case(s) over the {maxMessageSize}-byte message limit"
        f" closed with {CLOSE_TOO_BIG} as required"
    )
    for failure in failures:
        print(f"conformance: FAILED {failure}")
    print(f"conformance: {total - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wstest", default=str(HERE / ".cache" / "bin" / "wstest"))
    parser.add_argument("--cases", default="*", help="comma-separated case patterns")
    parser.add_argument("--workdir", default=str(HERE / "reports"))
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tm20.config import ServerConfig

    maxMessageSize = ServerConfig().maxMessageSize
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    outdir = workdir / "servers"
    if (outdir / "index.json").exists():
        (outdir / "index.json").unlink()
    echo, port = startEcho(workdir)
    try:
        spec = {
            "outdir": str(outdir),
            "servers": [{"agent": "tm20", "url": f"ws://127.0.0.1:{port}/pub/chat"}],
            "cases": args.cases.split(","),
            "exclude-cases": ["12.*", "13.*"],
            "exclude-agent-cases": {},
        }
        specFile = workdir / "fuzzingclient.json"
        specFile.write_text(json.dumps(spec, indent=2))
        print(f"conformance: running the Autobahn|Testsuite against ws://127.0.0.1:{port}/")
        with (workdir / "wstest.log").open("wb") as log:
            status = subprocess.call(
                [args.wstest, "-m", "fuzzingclient", "-s", str(specFile)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        if status != 0 or not (outdir / "index.json").exists():
            print(f"conformance: wstest failed (status {status}); see {workdir}/wstest.log")
            return 1
    finally:
        echo.send_signal(signal.SIGTERM)
        try:
            echo.wait(10)
        except subprocess.TimeoutExpired:
            echo.kill()
    return judge(outdir, maxMessageSize)


if __name__ == "__main__":
    sys.exit(main())
