"""Simulated MQTT sensors for the demo: a fleet publishing realistic JSON readings at QoS 1."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["KINDS", "SensorFleet"]

KINDS = ("climate", "air", "gps", "power")


@dataclass
class SensorFleet:
    """Simulated sensors; every payload sent is remembered for the final check."""

    port: int
    rate: float
    sent: Counter[tuple[str, bytes]] = field(default_factory=Counter)
    count: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def reading(self, sensor: int, seq: int, now: float) -> tuple[str, bytes]:
        kind = KINDS[sensor % len(KINDS)]
        topic = f"sensors/site{sensor // 4}/{kind}/dev{sensor:02d}"
        wave = math.sin(now / 60 + sensor)
        body: dict[str, Any] = {"dev": f"dev{sensor:02d}", "seq": seq, "ts": round(now, 3)}
        if kind == "climate":
            body |= {
                "temp_c": round(21 + 3 * wave + random.gauss(0, 0.1), 2),
                "rh_pct": round(48 - 6 * wave + random.gauss(0, 0.3), 1),
                "pressure_hpa": round(1013 + random.gauss(0, 0.4), 1),
            }
        elif kind == "air":
            pm25 = max(0.0, 9 + 4 * wave + random.gauss(0, 1))
            body |= {
                "pm1_0": round(pm25 * 0.6, 1),
                "pm2_5": round(pm25, 1),
                "pm10": round(pm25 * 1.4, 1),
                "co2_ppm": int(430 + 60 * wave),
            }
        elif kind == "gps":
            body |= {
                "lat": round(52.52 + 0.001 * wave, 6),
                "lon": round(13.405 + 0.001 * wave, 6),
                "alt_m": round(34 + random.gauss(0, 0.5), 1),
                "sats": random.randint(7, 12),
                "hdop": round(random.uniform(0.7, 1.4), 2),
            }
        else:
            body |= {
                "v": round(230 + random.gauss(0, 0.8), 1),
                "a": round(2 + wave, 3),
                "kwh": round(1200 + now / 3600, 4),
            }
        return topic, json.dumps(body, separators=(",", ":")).encode()

    def run(self, sensors: int = 12) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-sensors")
        client.max_inflight_messages_set(500)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        seqs = [0] * sensors
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        infos = []
        while not self.stop.is_set():
            sensor = self.count % sensors
            topic, payload = self.reading(sensor, seqs[sensor], time.time())
            seqs[sensor] += 1
            infos.append(client.publish(topic, payload, qos=1))
            self.sent[(topic, payload)] += 1
            self.count += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for info in infos:
            info.wait_for_publish(timeout=60)
        client.disconnect()
        client.loop_stop()
