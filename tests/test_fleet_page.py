"""The fleet page in a real headless Chromium: live gateways, last wills, refresh, sort, filter."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.fleet.page import render_page
from gateway.testing.broker import Broker
from tests.conftest import Publisher, chromium, write_config

pytestmark = pytest.mark.slow


class _Rows(HTMLParser):
    """The table rows the page's script drew: gateway -> state, and their order."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.states: dict[str, str] = {}
        self.cells: dict[str, list[str]] = {}
        self.svgs: dict[str, int] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-gateway") is not None:
            self._row = str(a["data-gateway"])
            self.order.append(self._row)
            self.states[self._row] = str(a.get("data-state"))
            self.cells[self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "polyline" and self._row is not None:
            self.svgs[self._row] = self.svgs.get(self._row, 0) + 1
        elif self._row is not None and tag not in ("span", "svg", "polyline", "title"):
            raise AssertionError(f"unexpected element <{tag}> in a row: markup from data?")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self.cells[self._row].append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _rows(dom: str) -> _Rows:
    parser = _Rows()
    parser.feed(dom)
    return parser


def _wait_page(tmp_path: Path, url: str, want: dict[str, str], timeout: float = 30) -> _Rows:
    deadline = time.monotonic() + timeout
    rows = _Rows()
    while time.monotonic() < deadline:
        rows = _rows(chromium(tmp_path, url, "--dump-dom"))
        if all(rows.states.get(g) == s for g, s in want.items()):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"page never showed {want}: {rows.states}")


def _gateway(tmp_path: Path, broker: Broker, name: str) -> Path:
    work = tmp_path / name
    work.mkdir()
    extra = f'[fleet]\nbroker = "mqtt://127.0.0.1:{broker.port}"\nheartbeat_interval = "1s"'
    return write_config(work, broker.port, extra, id=name)


def test_page_shows_two_live_gateways_online_and_a_killed_one_offline(
    tmp_path: Path, broker: Broker, gateway_process: Any, fleet_server: Any
) -> None:
    """Two real `run` processes -> ONLINE with a sparkline; kill -9 -> OFFLINE (last will)."""
    url = f"mqtt://127.0.0.1:{broker.port}"
    a = gateway_process(_gateway(tmp_path, broker, "pi-a"))
    b = gateway_process(_gateway(tmp_path, broker, "pi-b"))
    a.start()
    b.start()
    server = fleet_server(url, tmp_path, "--pins", str(tmp_path / "pins.json"))
    publisher = Publisher(broker.port)
    try:
        for i in range(40):  # traffic, so the rate history gets non-zero points
            publisher.publish_all([("sensors/a", json.dumps({"i": i}))])
            time.sleep(0.05)
    finally:
        publisher.close()
    page = _wait_page(tmp_path, server.url, {"pi-a": "ONLINE", "pi-b": "ONLINE"})
    assert page.order == ["pi-a", "pi-b"]
    assert page.cells["pi-a"][8] == "synced" or page.cells["pi-a"][8] == "NOT SYNCED"
    report = {r["gateway_id"]: r for r in server.report()["gateways"]}
    assert report["pi-a"]["state"] == "ONLINE" and report["pi-a"]["pinned_key"]
    assert report["pi-a"]["readings_total"] >= 40

    shot = tmp_path / "fleet.png"
    chromium(tmp_path, server.url, f"--screenshot={shot}", "--window-size=1280,800")
    width, height = struct.unpack(">II", shot.read_bytes()[16:24])  # PNG IHDR
    assert (width, height) == (1280, 800)

    b.kill9()
    page = _wait_page(tmp_path, server.url, {"pi-a": "ONLINE", "pi-b": "OFFLINE"})
    assert page.cells["pi-b"][2] == "-"  # no rate for an offline gateway
    assert server.stop() == 0


class _StaticFleet(BaseHTTPRequestHandler):
    page = b""
    data = b""

    def do_GET(self) -> None:
        body = self.page if self.path.split("?")[0] == "/" else self.data
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def _row(gateway_id: str, state: str, rate: float | None, **more: Any) -> dict[str, Any]:
    return {"gateway_id": gateway_id, "state": state, "age_s": 1.0, "readings_per_s": rate,
            "history": [[3000.0, 1.0], [10.0, rate or 0.0]], "spool_pending": 3,
            "proof_failures": 0, "spent_attofil": "0", "clock_synced": True, **more}  # fmt: skip


def _report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"generated_at": int(time.time()), "broker": "mqtt://x:1", "pinning": "allow-list",
            "stale_after_s": 180, "key_changes": [], "gateways": rows}  # fmt: skip


@pytest.fixture
def static_fleet() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StaticFleet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_page_refreshes_from_fleet_json_sorts_and_filters(
    tmp_path: Path, static_fleet: str
) -> None:
    """The embedded data is replaced by /fleet.json on the timer; #sort/#state/#q apply; a
    hostile gateway id is text, never markup."""
    hostile = '<img src=x onerror="document.title=1">'
    _StaticFleet.page = render_page(_report([_row("before-refresh", "ONLINE", 1.0)]))
    _StaticFleet.data = json.dumps(_report([
        _row("slow", "ONLINE", 0.5), _row("fast", "ONLINE", 9.0),
        _row(hostile, "UNSIGNED", None, reason="bad signature"),
        _row("gone", "OFFLINE", None, last_error="mqtt: connection refused"),
    ])).encode()  # fmt: skip
    first = _rows(chromium(tmp_path, static_fleet, "--dump-dom", budget_ms=1000))
    assert first.order == ["before-refresh"]  # the first paint needs no request

    rows = _rows(chromium(tmp_path, static_fleet, "--dump-dom", budget_ms=7000))
    assert set(rows.order) == {"slow", "fast", hostile, "gone"}
    assert rows.svgs["fast"] == 1 and rows.cells["gone"][9] == "mqtt: connection refused"

    by_rate = _rows(chromium(tmp_path, static_fleet + "#sort=-readings_per_s", "--dump-dom",
                             budget_ms=7000))  # fmt: skip
    assert by_rate.order[:2] == ["fast", "slow"]  # numbers descending, missing values last
    online = _rows(chromium(tmp_path, static_fleet + "#state=ONLINE&q=fa", "--dump-dom",
                            budget_ms=7000))  # fmt: skip
    assert online.order == ["fast"]
