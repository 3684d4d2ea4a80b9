"""The analytics file: tracker settings, counting lines and zones, in YAML or TOML.

Example (YAML)::

    relative: true            # coordinates are fractions of the frame (survive mode changes)
    tracker:
      type: bytetrack         # or sort, ocsort, botsort, cbiou, mcbyte
      lost_track_buffer: 30   # frames a lost track is kept
      per_class: true         # one tracker per class
      rejoin_s: 3.0           # a new track where a lost one was heading takes its id
      detection_conf: 0.1     # low-score boxes reach the tracker (and only the tracker)
    lines:
      - name: stop_line
        start: [0.0, 0.6]
        end: [1.0, 0.6]
        classes: [car, truck, bus]     # default: every class
        directions: [southbound, northbound]  # names for supervision's "in" and "out"
        min_frames: 2                  # frames on the new side before a crossing counts
        anchor: box                    # a side needs all 4 corners on it (or: center)
    zones:
      - name: junction
        polygon: [[0.3, 0.5], [0.7, 0.5], [0.7, 0.9], [0.3, 0.9]]
        enter_frames: 2                # frames inside before an entry counts
        exit_frames: 3                 # frames seen outside before the stay ends
        hold_s: 3.0                    # seconds a hidden object is still inside
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EdgekitError


class ConfigError(EdgekitError):
    """The analytics file is missing or malformed."""


Point = tuple[float, float]


# The tracker a config that names none gets (edgekit.analytics.tracking.TRACKERS).
DEFAULT_TRACKER = "bytetrack"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerConfig:
    """Which tracker (``type``, a name in ``edgekit.analytics.tracking.TRACKERS``) and its
    settings: the shared ones here, that type's own in ``options`` (in the file they sit
    beside ``type``, as ``tracker: {type: ocsort, delta_t: 3}``)."""

    type: str = DEFAULT_TRACKER
    # In 30 fps frames (1 s). 60-300 were tried on testsrc:// (seeds 3-5): a track lost behind
    # a passing truck is not found again by IoU after it anyway (its box shrank while it was
    # being hidden, and the Kalman prediction drifted), and line counts got worse. With
    # per_class and rejoin_s, 60 did best with ByteTrack (30-90 tried); with BoT-SORT fed
    # low-score boxes (detection_conf, samples/vehicle_counting.yaml), 150: found by a random
    # search of BoT-SORT and ByteTrack settings on seeds 3-5, its best few checked on 6-19.
    lost_track_buffer: int = 30
    frame_rate: float = 30.0
    # A track gets an id after 3 matched frames (0.1 s at 30 fps): a one- or two-frame false
    # detection no longer becomes a track that a line or zone counts (count error 14 -> 9 on
    # testsrc:// seed 5, 0 -> 0 and 6 -> 6 on seeds 3 and 4), and no real vehicle crosses a
    # frame in 0.1 s.
    minimum_consecutive_frames: int = 3
    # One tracker per class (edgekit.analytics.tracking.PerClass): a track never jumps to
    # a box of another class.
    per_class: bool = False
    # Seconds after a track was lost during which a new track that starts where it was
    # heading, of its class, takes over its id (edgekit.analytics.rejoin); 0: never.
    rejoin_s: float = 0.0
    # The least IoU of the new box with the lost track's box moved on at its velocity.
    rejoin_iou: float = 0.2
    # An id that stood still for 1.5 s keeps its place: where a passing vehicle of its class
    # carried it off (their boxes merged) and another track now stands there, the two trade
    # ids (edgekit.analytics.rejoin.Rejoin._swap_back). Needs rejoin_s.
    rejoin_still: bool = False
    # The score down to which the detector's boxes are handed to the tracker (None: the
    # model's own threshold). ByteTrack and BoT-SORT extend a track with a low-score box in
    # their second association (a half-hidden car, a small far one) instead of losing it;
    # a box under the model's threshold that no track took is dropped after tracking, so it
    # is never drawn, reported or counted. Their track_activation_threshold still decides
    # which boxes start a track.
    detection_conf: float | None = None
    # Frames in a row a reported box that no track took must stand at one place before it
    # gets an id of its own (edgekit.analytics.standing); 0: never.
    persist_frames: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def decode_conf(self, conf: float) -> float:
        """The score to decode the model's boxes at for this tracker, given the model's own
        threshold ``conf`` (``tracking_thresholds``)."""
        return tracking_thresholds(conf, self.detection_conf)[0]


def tracking_thresholds(conf: float, detection_conf: float | None
                        ) -> tuple[float, float | None]:
    """(score to decode at, score to report at; None where that is the same) for a model
    whose own threshold is ``conf`` feeding a tracker that takes boxes down to
    ``detection_conf``. Hand the decoded boxes to ``Analytics.update(..., conf=report)``,
    which drops those under it that no track took."""
    decode = conf if detection_conf is None else min(conf, detection_conf)
    return decode, (conf if decode < conf else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class LineConfig:
    """A counting line from ``start`` to ``end``; crossings are counted per class and direction."""

    name: str
    start: Point
    end: Point
    classes: tuple[str, ...] = ()
    directions: tuple[str, str] = ("in", "out")
    # Observations on the new side before a crossing counts: a box centre on the line jitters
    # across it (a parked motorcycle astride the line was counted 5 times on testsrc://).
    min_frames: int = 2
    # Count a track at most once on this line (its first crossing), as traffic counters do: a
    # parked vehicle astride the line, or one whose visible box shifts as a passing truck covers
    # it, otherwise "crosses" back and forth (testsrc:// seed 3 with the reference detector:
    # 3 westbound vehicles counted 6 times). Off, a vehicle that turns back counts both ways.
    once: bool = False
    # Which side a box is on: "box", a side only once all four corners are on it (a box
    # astride the line keeps its track's last side), as supervision's LineZone does; or
    # "center", its centre's side. A parked vehicle astride the line, whose box shifts as
    # passing traffic hides part of it, "crossed" by its centre. On testsrc:// seeds 3-19
    # with the reference detector, "box" cut the wrong count events from 86 to 63 (of about
    # 730); with the sample detector it made no difference (77 and 76).
    anchor: str = "box"


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneConfig:
    """A polygon zone; entries, exits and dwell time are measured per track."""

    name: str
    polygon: tuple[Point, ...]
    classes: tuple[str, ...] = ()
    # Observations in a row inside before an entry counts, and outside before the stay ends:
    # a box centre on the zone's edge (a parked car on the border, a box that shrinks as the
    # object is half hidden) otherwise enters and leaves every few frames (29 entries for 10
    # on testsrc://).
    enter_frames: int = 2
    exit_frames: int = 3
    # Seconds a track must stay outside (seen outside all along) before its stay ends. A
    # parked truck on the zone's edge, whose box centre flickers across it, otherwise ends
    # its stay and enters again every second or two (testsrc:// seed 16, reference
    # detector: 10 entries, none in the truth). The dwell still ends where it left.
    exit_s: float = 0.0
    # Seconds a counted object that is no longer detected is still inside: a car hidden by a
    # passing bus for 1-3 s is the same car when it shows again where it was (a new track id
    # whose box overlaps its last one continues its stay instead of counting an entry).
    hold_s: float = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyticsConfig:
    """Everything the analytics stage does for one camera.

    Attributes:
        relative: Coordinates are fractions of the frame's width and height, not pixels.
        tracker: Which tracker, and its settings.
        lines: Counting lines.
        zones: Dwell-time zones.
    """

    relative: bool = False
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    lines: tuple[LineConfig, ...] = ()
    zones: tuple[ZoneConfig, ...] = ()


def load_config(path: str | Path) -> AnalyticsConfig:
    """Reads a ``.yaml``/``.yml`` or ``.toml`` analytics file; errors name the bad entry."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such analytics config file.")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: unknown config type '{path.suffix}'.",
                              hint="Use a .yaml, .yml or .toml file.")
    except ConfigError:
        raise
    except Exception as exc:  # the parsers' own messages give line and column
        raise ConfigError(f"{path}: cannot parse: {exc}") from None
    return parse_config(data, where=str(path))


def parse_config(data: Any, *, where: str = "config") -> AnalyticsConfig:
    """Builds an AnalyticsConfig from parsed YAML/TOML data."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level.")
    _known(data, {"relative", "tracker", "lines", "zones"}, where)
    tracker = _tracker(data.get("tracker") or {}, f"{where}: tracker")
    lines = tuple(_line(entry, f"{where}: lines[{i}]")
                  for i, entry in enumerate(data.get("lines") or []))
    zones = tuple(_zone(entry, f"{where}: zones[{i}]")
                  for i, entry in enumerate(data.get("zones") or []))
    names = [x.name for x in (*lines, *zones)]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: line and zone names must be unique, got {names}.")
    return AnalyticsConfig(relative=bool(data.get("relative", False)),
                           tracker=tracker, lines=lines, zones=zones)


def _tracker(entry: Any, where: str) -> TrackerConfig:
    from .tracking import IOU, SHARED, TRACKERS

    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {entry!r}.")
    kind = entry.get("type", DEFAULT_TRACKER)
    if kind not in TRACKERS:
        raise ConfigError(f"{where}: unknown tracker type {kind!r}.",
                          hint=f"Known types: {', '.join(sorted(TRACKERS))}.")
    _known(entry, {"type", *SHARED, *_OWN, *TRACKERS[kind].settings}, f"{where} ({kind})")
    if "iou" in entry:
        _choice(entry, "iou", tuple(IOU), where)
    own = {key: check(entry, key, where) for key, check in _OWN.items() if key in entry}
    if own.get("rejoin_still") and not own.get("rejoin_s"):
        raise ConfigError(f"{where}: rejoin_still hands ids back within rejoin_s, which is 0.",
                          hint="Set rejoin_s too, e.g. rejoin_s: 3.0.")
    return TrackerConfig(type=kind, **{k: v for k, v in entry.items() if k in SHARED}, **own,
                         options={k: v for k, v in entry.items()
                                  if k not in SHARED and k not in _OWN and k != "type"})


def _flag(entry: dict, key: str, where: str) -> bool:
    value = entry[key]
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} is true or false; got {value!r}.")
    return value


# edgekit's own tracking settings (not the package tracker's), and how each is checked.
_OWN = {"per_class": _flag, "rejoin_still": _flag,
        "rejoin_s": lambda entry, key, where: _seconds(entry, key, 0.0, where),
        "rejoin_iou": lambda entry, key, where: _fraction(entry, key, where),
        "detection_conf": lambda entry, key, where: _fraction(entry, key, where, "a score"),
        "persist_frames": lambda entry, key, where: _frames(entry, key, 1, where)}


def _fraction(entry: dict, key: str, where: str, what: str = "an overlap") -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{where}: {key} is {what} above 0 and at most 1; got {value!r}.")
    return float(value)


def _known(entry: Any, allowed: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, got {entry!r}.")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}.",
                          hint=f"Known keys: {', '.join(sorted(allowed))}.")


def _point(value: Any, where: str) -> Point:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) for v in value)):
        raise ConfigError(f"{where}: expected a point [x, y], got {value!r}.")
    return float(value[0]), float(value[1])


def _line(entry: Any, where: str) -> LineConfig:
    _known(entry, {"name", "start", "end", "classes", "directions", "min_frames", "once",
                   "anchor"},
           where)
    if "name" not in entry or "start" not in entry or "end" not in entry:
        raise ConfigError(f"{where}: a line needs name, start and end.")
    directions = tuple(entry.get("directions", ("in", "out")))
    if len(directions) != 2:
        raise ConfigError(f"{where}: directions names the two ways across, as [in, out].")
    return LineConfig(name=str(entry["name"]), start=_point(entry["start"], where),
                      end=_point(entry["end"], where), classes=tuple(entry.get("classes", ())),
                      directions=(str(directions[0]), str(directions[1])),
                      min_frames=_frames(entry, "min_frames", 2, where),
                      once=_flag(entry, "once", where) if "once" in entry else False,
                      anchor=_choice(entry, "anchor", ("box", "center"), where))


def _zone(entry: Any, where: str) -> ZoneConfig:
    _known(entry, {"name", "polygon", "classes", "enter_frames", "exit_frames", "exit_s",
                   "hold_s"}, where)
    if "name" not in entry or "polygon" not in entry:
        raise ConfigError(f"{where}: a zone needs name and polygon.")
    polygon = tuple(_point(p, where) for p in entry["polygon"])
    if len(polygon) < 3:
        raise ConfigError(f"{where}: a polygon needs at least 3 points.")
    return ZoneConfig(name=str(entry["name"]), polygon=polygon,
                      classes=tuple(entry.get("classes", ())),
                      enter_frames=_frames(entry, "enter_frames", 2, where),
                      exit_frames=_frames(entry, "exit_frames", 3, where),
                      exit_s=_seconds(entry, "exit_s", 0.0, where),
                      hold_s=_seconds(entry, "hold_s", 3.0, where))


def _choice(entry: dict, key: str, allowed: tuple[str, ...], where: str) -> str:
    value = entry.get(key, allowed[0])
    if value not in allowed:
        raise ConfigError(f"{where}: {key} is one of {', '.join(allowed)}; got {value!r}.")
    return str(value)


def _seconds(entry: dict, key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{where}: {key} is a number of seconds, at least 0; got {value!r}.")
    return float(value)


def _frames(entry: dict, key: str, default: int, where: str) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {key} is a number of frames, at least 1; got {value!r}.")
    return value
