"""Where results go, named by URI like the sources.

==============================  =================================================
``out.mp4`` (.avi, .mkv)        annotated video file
``out/`` (a trailing slash)     one annotated JPEG per frame, named after the input images
``events.jsonl``                one JSON line per frame: detections and events
``http://127.0.0.1:8080``       live MJPEG view, HTML page, /stats.json, /metrics
``mqtt://host:1883/topic``      analytics events over MQTT (paho-mqtt)
``window``                      an on-screen window (needs a display and GUI OpenCV)
==============================  =================================================
"""

from __future__ import annotations

from pathlib import PurePath
from urllib.parse import urlsplit

from ..errors import UnknownNameError
from ..registry import Registry
from .base import Result, Sink

SINKS: Registry[type[Sink]] = Registry(
    "sink",
    {
        "video": "edgekit.sinks.files:VideoFileSink",
        "images": "edgekit.sinks.files:ImageFilesSink",
        "jsonl": "edgekit.sinks.files:JsonlSink",
        "http": "edgekit.sinks.http:HttpViewSink",
        "mqtt": "edgekit.sinks.mqtt:MqttSink",
        "window": "edgekit.sinks.window:WindowSink",
    },
)
SCHEMES = {"http": "http", "mqtt": "mqtt"}
SUFFIXES = {".mp4": "video", ".avi": "video", ".mkv": "video", ".mov": "video",
            ".jsonl": "jsonl", ".ndjson": "jsonl"}


def sink_kind(uri: str) -> str:
    """Returns the SINKS entry for a URI, or raises listing what is known."""
    if uri == "window":
        return "window"
    scheme = urlsplit(uri).scheme.lower()
    if scheme in SCHEMES:
        return SCHEMES[scheme]
    if (not scheme or scheme == "file" or len(scheme) == 1) and uri.endswith(("/", "\\")):
        return "images"
    suffix = PurePath(uri.split("?", 1)[0]).suffix.lower()
    if (not scheme or scheme == "file" or len(scheme) == 1) and suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise UnknownNameError(
        f"Unknown sink {uri!r}.",
        hint="Known: a file ending in " + ", ".join(sorted(SUFFIXES)) + "; a folder (ending in "
             "'/') for images; "
             + ", ".join(f"{s}://" for s in sorted(SCHEMES)) + "; or the word 'window'.",
    )


def open_sink(uri: str) -> Sink:
    """Builds the sink for a URI (files and sockets open in ``Sink.open``)."""
    return SINKS.load(sink_kind(uri))(uri)


__all__ = ["SINKS", "Result", "Sink", "open_sink", "sink_kind"]
