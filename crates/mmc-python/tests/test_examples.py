"""The example scripts run end to end."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_sglang_flow_against_the_cluster(cluster):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "sglang_flow.py"), "--meta", cluster.meta_addr, "--dram-size", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "request 2: 6 of 10 pages loaded from the store" in r.stdout
    assert r.stdout.rstrip().endswith("ok")


def test_sglang_flow_self_contained():
    r = subprocess.run([sys.executable, str(EXAMPLES / "sglang_flow.py")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("ok")
