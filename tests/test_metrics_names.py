"""/metrics of a real gateway and a real storage node pass `promtool check metrics` (Prometheus
naming: _total, _bytes, _seconds; gateway and node under their own prefixes), and the Grafana
dashboard only queries metrics that exist."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway.status import StatusSnapshot
from gateway.status.prometheus import prometheus_text
from gateway.testing.broker import Broker
from gateway.testing.node_client import NodeProcess
from tests.conftest import ROOT, write_config
from tests.status_support import make_snapshot

DASHBOARD = ROOT / "contrib" / "grafana" / "depin-gateway.json"
TOOLS = ROOT / "build" / "tools"


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool from Debian's prometheus package, unpacked only (no server is started)."""
    binary = TOOLS / "prometheus" / "usr" / "bin" / "promtool"
    if not binary.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "-q", "prometheus"], cwd=TOOLS, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        deb = sorted(TOOLS.glob("prometheus_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(TOOLS / "prometheus")], check=True)
        deb.unlink()
    return binary


def _check(promtool: Path, text: bytes) -> None:
    result = subprocess.run([str(promtool), "check", "metrics"], input=text,
                            capture_output=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def _names(text: bytes) -> set[str]:
    """Every family's sample name (counters with their _total), with or without samples."""
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text.decode(), re.MULTILINE)
    return {name + "_total" if kind == "counter" and not name.endswith("_total") else name
            for name, kind in types}  # fmt: skip


def _rich_snapshot() -> StatusSnapshot:
    """Every optional family present: disk, sources, storage with nodes and spend."""
    return make_snapshot()


@pytest.mark.slow
def test_gateway_and_node_metrics_pass_promtool_and_the_dashboard_uses_only_them(
    tmp_path: Path, broker: Broker, gateway_process: Any, promtool: Path
) -> None:
    gateway = gateway_process(write_config(tmp_path, broker.port))
    gateway.start()
    gateway_text = _get(gateway.status_url.removesuffix("/status") + "/metrics")
    assert gateway.stop() == 0
    node = NodeProcess(tmp_path / "node")
    node.start()
    try:
        node_text = _get(node.url + "/metrics")
    finally:
        assert node.stop() == 0
    rich = prometheus_text(_rich_snapshot())
    for text in (gateway_text, node_text, rich):
        _check(promtool, text)
    gateway_names, node_names = _names(gateway_text) | _names(rich), _names(node_text)
    assert all(n.startswith("depin_gateway_") for n in gateway_names), gateway_names
    assert all(n.startswith("depin_node_") for n in node_names), node_names
    assert {
        "depin_gateway_readings_total",
        "depin_gateway_disk_used_bytes",
        "depin_gateway_uptime_seconds",
        "depin_node_used_bytes",
        "depin_node_capacity_bytes",
        "depin_node_uptime_seconds",
    } <= gateway_names | node_names

    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\bdepin_[a-z_]+", target["expr"])
    }
    assert queried and queried <= gateway_names | node_names, queried - gateway_names - node_names
