"""Analytics events reach a real MQTT broker (mosquitto on 127.0.0.1)."""

from __future__ import annotations

import json
import threading

from pipeline_helpers import wait_for

from edgekit.analytics import parse_config
from edgekit.pipeline import Pipeline


def test_events_are_published(mosquitto, detector) -> None:
    import paho.mqtt.client as mqtt

    received: list[dict] = []
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(_client, _userdata, message) -> None:
        with lock:
            received.append(json.loads(message.payload))

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe("road/#")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        cfg = parse_config({"relative": True, "zones": [
            {"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]})
        pipeline = Pipeline(detector, ["testsrc://?fps=20&width=96&height=64&objects=1"],
                            [f"mqtt://127.0.0.1:{mosquitto.port}/road"], analytics=cfg)
        pipeline.start()
        try:
            # the tiny model's two fixed boxes enter the zone once tracked
            assert wait_for(lambda: len(received) >= 2)
        finally:
            pipeline.stop()
    finally:
        client.loop_stop()
        client.disconnect()
    assert {e["type"] for e in received} == {"zone_enter"}
    assert {e["camera"] for e in received} == {"cam0"}
    assert {e["class"] for e in received} == {"class1", "class2"}
