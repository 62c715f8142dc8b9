"""
Frames captured from real terminals (see README.md in this folder), read by the parser, store
and loopback tests: they live here, inside the repository, and are always read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TH900 = HERE / "th900-click-v5.0.jsonl"


def frames(path: Path = TH900) -> list[dict[str, Any]]:
    """The frames of a capture, in order (a missing file is an error, never a skip)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["frame"] for line in lines if line.strip()]
