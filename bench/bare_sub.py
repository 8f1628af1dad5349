#!/usr/bin/env python3
# Source: ../shared/bench/bare_sub.py (the shared reference subscriber, issue 14), copied verbatim
# below this note; not linted or formatted here (pyproject.toml) so it stays byte-identical.
"""Baseline subscriber for peers.py: a bare paho-mqtt 2.x client.

Persistent session (clean_session=False, fixed client id), QoS 1, automatic
PUBACK (paho sends it after on_message returns), and on_message does nothing but
count.  It reports progress on stdout, one line per event, using
time.monotonic() (CLOCK_MONOTONIC, comparable across processes on Linux):

    CONNACK <t> <session_present>
    FIRST <t>
    PROGRESS <count> <t>        (every --every messages)
    DONE <count> <t>            (when --expect messages have arrived)
    FINAL <count> <t>           (on SIGTERM/SIGINT)

It keeps running after DONE until the harness stops it, like the real systems.
"""
import argparse
import signal
import sys
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--topic", default="sensors/#")
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--every", type=int, default=5000)
    a = ap.parse_args()

    state = {"n": 0}
    out = sys.stdout

    def emit(line):
        out.write(line + "\n")
        out.flush()

    def on_connect(client, userdata, flags, reason_code, properties):
        emit("CONNACK %.6f %d" % (time.monotonic(), int(flags.session_present)))
        client.subscribe(a.topic, qos=1)  # re-subscribe, as real gateways do

    expect, every = a.expect, a.every

    def on_message(client, userdata, msg):
        n = state["n"] + 1
        state["n"] = n
        if n == 1:
            emit("FIRST %.6f" % time.monotonic())
        if n % every == 0:
            emit("PROGRESS %d %.6f" % (n, time.monotonic()))
        if n == expect:
            emit("DONE %d %.6f" % (n, time.monotonic()))

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.client_id,
                    clean_session=False, protocol=mqtt.MQTTv311)
    c.on_connect = on_connect
    c.on_message = on_message

    def stop(signum, frame):
        emit("FINAL %d %.6f" % (state["n"], time.monotonic()))
        c.disconnect()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    c.connect(a.host, a.port, keepalive=60)
    c.loop_forever()


if __name__ == "__main__":
    main()
