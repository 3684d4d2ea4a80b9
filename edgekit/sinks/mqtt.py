"""``mqtt://host:1883/topic``: analytics events published as JSON (paho-mqtt).

Only events are sent by default (line crossings, zone enter/exit), one message each;
``?frames=1`` also sends every frame's detections. paho reconnects by itself when the broker
goes away; while it is away, at most ``MAX_QUEUED`` messages wait (memory stays bounded).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from ..errors import EdgekitError, require
from .base import Result, Sink

MAX_QUEUED = 1000


class MqttSink(Sink):
    """Publishes to ``<topic>/events`` (and ``<topic>/frames``) on an MQTT broker."""

    lossless = False

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        if not parts.hostname:
            raise EdgekitError(f"{uri}: no broker host.", hint="Write mqtt://HOST:1883/TOPIC.")
        self.host, self.port = parts.hostname, parts.port or 1883
        self.topic = parts.path.strip("/") or "edgekit"
        self.username, self.password = parts.username, parts.password
        self.frames = parse_qs(parts.query).get("frames", ["0"])[-1] == "1"
        self.published = 0
        self._client = None

    def open(self) -> None:
        mqtt = require("paho.mqtt.client", package="paho-mqtt", extra="pipeline",
                       purpose="MQTT sinks")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.max_queued_messages_set(MAX_QUEUED)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        # connect_async: an offline broker at start is retried by paho's loop, not fatal.
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()
        self._client = client

    def write(self, result: Result) -> None:
        for event in result.events:
            self._publish(f"{self.topic}/events", {"camera": result.camera, **event})
        if self.frames:
            self._publish(f"{self.topic}/frames", result.record())

    def _publish(self, topic: str, payload: dict) -> None:
        info = self._client.publish(topic, json.dumps(payload), qos=0)
        if info.rc == 0:
            self.published += 1

    def close(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None

    def describe(self) -> str:
        return f"mqtt://{self.host}:{self.port}/{self.topic} ({self.published} messages)"
