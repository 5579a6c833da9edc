"""Acceptance harness of the engine restructuring: a fixed corpus through representative commands gives outputs
identical to tests/golden_digest.json (shard datasets + attributes except creation time/version, jpg/png/mp4 and
index files, manifest without times). Regenerate with ``python tests/golden.py --write`` after a deliberate change.
"""

from __future__ import annotations

import json
from pathlib import Path

from golden import GOLDEN, diff, golden_digest


def test_outputs_match_the_golden_digest(tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text())
    actual = json.loads(json.dumps(golden_digest(tmp_path), sort_keys=True))
    problems = diff(expected, actual)
    assert not problems, "\n".join(problems[:30])
