"""Deterministic, realistic sensor readings for tests, benchmarks and the demo.

A small fleet of stationary devices publishing JSON over MQTT (80-200 bytes: ids, sequence
numbers, temperature, humidity, pressure, particulate matter, GPS fix), interleaved as a broker
would deliver them, plus a PMS5003 on a serial port (32-byte binary frames with decoded values).
Values drift slowly, as real environmental readings do, with sensor noise on every value (a
stationary GPS fix wanders by a metre or two). Time and randomness come in as arguments.

Timing is what a real fleet does: each device publishes on its own period (5-30 s) by its own
crystal (tens of ppm off), stamps ``ts`` from its own clock (up to a few seconds off), and the
message reaches the gateway after a random network delay (a few ms to ~100 ms); about 1 in 100
messages is lost (a gap in ``seq``). Receive times are nanoseconds, so their low digits are noise.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass

from gateway.reading import Reading, ReceiveTime

__all__ = ["SensorFleet"]

_KINDS = ("air", "weather", "tracker")
_SECOND = 1_000_000_000


@dataclass
class _Device:
    ident: str
    kind: str
    site: str
    seq: int
    temp: float
    hum: float
    pres: float
    pm25: float
    lat: float
    lon: float
    alt: float
    period_ns: int
    drift: float  # the device crystal's rate error (ppm scale)
    clock_ns: int  # device clock - true time
    next_send: int  # true ns of the next publication
    next_arrival: int = 0


def _pms_frame(pm1: int, pm25: int, pm10: int, counts: list[int]) -> bytes:
    """A PMS5003 frame: 42 4D, length 28, 13 BE words, BE checksum (Plantower datasheet)."""
    words = [pm1, pm25, pm10, pm1, pm25, pm10, *counts, 0x9700]
    body = b"BM" + struct.pack(">H", 28) + struct.pack(">13H", *words)
    return body + struct.pack(">H", sum(body) & 0xFFFF)


class SensorFleet:
    """Generates readings from ``devices`` MQTT devices and one serial PMS5003, reproducibly."""

    def __init__(
        self,
        *,
        seed: int = 0,
        devices: int = 12,
        start_ns: int = 1_700_000_000_000_000_000,
        boot_id: str = "8f1c0a4e-6b7d-4a57-9a52-2f0e4d3c1b9a",
        serial_share: float = 0.1,
    ) -> None:
        self._rng = random.Random(seed)
        self._wall = start_ns
        self._mono = 5_000_000_000
        self._boot = boot_id
        self._spool_seq = 0
        rng = self._rng
        self._devices = [
            _Device(
                ident=f"node-{rng.randrange(16**4):04x}",
                kind=_KINDS[i % len(_KINDS)],
                site=rng.choice(["berlin", "lisbon", "nairobi"]),
                seq=rng.randrange(10_000),
                temp=rng.uniform(5, 30),
                hum=rng.uniform(30, 80),
                pres=rng.uniform(990, 1030),
                pm25=rng.uniform(2, 40),
                lat=rng.uniform(-40, 60),
                lon=rng.uniform(-10, 40),
                alt=rng.uniform(5, 400),
                period_ns=rng.choice([5, 10, 15, 30]) * _SECOND,
                drift=rng.gauss(0, 20e-6),
                clock_ns=round(rng.gauss(0, 2) * _SECOND),
                next_send=start_ns + rng.randrange(30 * _SECOND),
            )
            for i in range(devices)
        ]
        for device in self._devices:
            device.next_arrival = device.next_send + self._delay()
        # The serial sensor's frame period gives it ``serial_share`` of all readings.
        rate = sum(_SECOND / d.period_ns for d in self._devices)
        share = min(max(serial_share, 0.0), 0.9)
        self._serial_period = round(_SECOND / (rate * share / (1 - share))) if share else 0
        self._serial_next = start_ns + self._serial_period if share else None

    def _payload(self, d: _Device) -> bytes:
        rng = self._rng
        d.seq += 1
        d.temp += rng.gauss(0, 0.05)
        d.hum = min(100.0, max(0.0, d.hum + rng.gauss(0, 0.2)))
        d.pres += rng.gauss(0, 0.05)
        d.pm25 = max(0.0, d.pm25 + rng.gauss(0, 0.8))
        ts = (d.next_send + d.clock_ns) // _SECOND
        record: dict[str, object] = {"id": d.ident, "seq": d.seq, "ts": ts}
        if d.kind == "air":
            pm25 = round(d.pm25)
            record |= {"pm1": max(0, pm25 - 3), "pm25": pm25, "pm10": pm25 + rng.randrange(3, 9)}
            record |= {"t": round(d.temp, 1), "rh": round(d.hum, 1)}
        elif d.kind == "weather":
            record |= {"t": round(d.temp, 2), "rh": round(d.hum, 1), "p": round(d.pres, 1)}
            record |= {"bat": 3.7 + rng.randrange(0, 5) / 100}
        else:
            fix = {"lat": d.lat + rng.gauss(0, 1.5e-5), "lon": d.lon + rng.gauss(0, 1.5e-5)}
            fix = {k: round(v, 6) for k, v in fix.items()} | {
                "alt": round(d.alt + rng.gauss(0, 2), 1)
            }
            record |= {"gps": fix}
            record |= {"sats": rng.randrange(6, 12), "hdop": round(rng.uniform(0.6, 2.5), 1)}
            record |= {"fix": "3d", "spd": 0.0, "t": round(d.temp, 1)}
        record |= {"rssi": -rng.randrange(60, 95), "fw": "1.4.2"}
        return json.dumps(record, separators=(",", ":")).encode()

    def _delay(self) -> int:
        """Network delay of one MQTT message: a floor plus an exponential tail (Wi-Fi, LTE)."""
        return 3_000_000 + round(self._rng.expovariate(1 / 15_000_000))

    def _advance(self, device: _Device) -> None:
        device.next_send += round(device.period_ns * (1 + device.drift))
        device.next_arrival = max(device.next_send + self._delay(), self._wall + 1)

    def reading(self) -> Reading:
        rng = self._rng
        while True:
            device = min(self._devices, key=lambda d: d.next_arrival)
            serial = self._serial_next is not None and self._serial_next < device.next_arrival
            arrival = self._serial_next if serial and self._serial_next else device.next_arrival
            if serial or rng.random() >= 0.01:
                break
            device.seq += 1  # lost on the way: the next message shows a gap
            self._advance(device)
        step = arrival - self._wall
        self._wall = arrival
        self._mono += step + rng.randrange(-2000, 2000)  # NTP slew: the clocks drift apart a bit
        time = ReceiveTime(self._wall, self._mono, self._boot, clock_synced=True)
        seq = self._spool_seq
        self._spool_seq += 1
        if serial:
            jitter = rng.randrange(-2_000_000, 2_000_000)  # UART + USB latency
            self._serial_next = arrival + self._serial_period + jitter
            pm25 = rng.randrange(5, 15)
            counts = [rng.randrange(200, 900), rng.randrange(50, 200), 30, 4, 0, 0]
            frame = _pms_frame(pm25 - 2, pm25, pm25 + 3, counts)
            decoded = json.dumps({"pm1": pm25 - 2, "pm25": pm25, "pm10": pm25 + 3, "unit": "ug/m3"})
            return Reading(seq, "serial:pms0", "/dev/ttyAMA0", time, frame, None, decoded)
        payload = self._payload(device)
        self._advance(device)
        topic = f"depin/{device.site}/{device.ident}/{device.kind}"
        return Reading(seq, "mqtt", topic, time, payload, f"{device.ident}:{device.seq}")

    def readings(self, count: int) -> list[Reading]:
        return [self.reading() for _ in range(count)]
