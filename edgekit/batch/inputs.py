"""Turning `edgekit batch` INPUTS (files, folders, globs, list files, URIs) into video sources.

Only the driver expands inputs; workers receive plain paths or URIs, which must be readable
at the same name on every node (a shared filesystem, or a URL that FFmpeg opens).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from ..errors import DatasetError
from ..sources.media import VIDEO_SUFFIXES

# A file with one of these suffixes is a list of inputs, one per line ('#' starts a comment).
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})


def is_uri(name: str) -> bool:
    """True for ``scheme://...`` names (http, rtsp, s3 via FFmpeg): passed on unchanged."""
    return "://" in name


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Expands INPUTS into an ordered list of video sources, each listed once.

    Args:
        inputs: Video files, folders (searched recursively for video suffixes), glob
            patterns, text files listing one input per line, or URIs.

    Returns:
        Absolute paths (and URIs as given), in the order given, duplicates dropped.

    Raises:
        DatasetError: an input does not exist, matches nothing, or is not a video.
    """
    seen: dict[str, None] = {}
    for item in inputs:
        for source in _expand_one(str(item), listed_in=None):
            seen.setdefault(source, None)
    if not seen:
        raise DatasetError("No video inputs were given.", hint="Name files, folders or globs.")
    return list(seen)


def _expand_one(name: str, *, listed_in: Path | None) -> list[str]:
    if is_uri(name):
        return [name]
    path = Path(name).expanduser()
    if listed_in is not None and not path.is_absolute():
        path = listed_in.parent / path  # relative entries are relative to the list file
    if glob.has_magic(str(path)):
        matches = sorted(glob.glob(str(path), recursive=True))
        videos = [str(Path(m).resolve()) for m in matches if _is_video(Path(m))]
        if not videos:
            raise DatasetError(f"{name}: the pattern matches no video file.",
                               hint=f"Video suffixes: {', '.join(sorted(VIDEO_SUFFIXES))}.")
        return videos
    if path.is_dir():
        videos = sorted(str(p.resolve()) for p in path.rglob("*") if _is_video(p))
        if not videos:
            raise DatasetError(f"{path}: the folder holds no video file.",
                               hint=f"Video suffixes: {', '.join(sorted(VIDEO_SUFFIXES))}.")
        return videos
    if not path.exists():
        where = f" (listed in {listed_in})" if listed_in else ""
        raise DatasetError(f"{path}: no such file or folder{where}.",
                           hint="Check the path; globs need quotes so the shell keeps them.")
    if path.suffix.lower() in LIST_SUFFIXES:
        return _read_list(path)
    if not _is_video(path):
        raise DatasetError(
            f"{path}: not a video file ('{path.suffix}').",
            hint=f"Videos: {', '.join(sorted(VIDEO_SUFFIXES))}; lists of inputs: "
            f"{', '.join(sorted(LIST_SUFFIXES))}.",
        )
    return [str(path.resolve())]


def _read_list(path: Path) -> list[str]:
    out: list[str] = []
    for line in path.read_text().splitlines():
        entry = line.split("#", 1)[0].strip() if not is_uri(line) else line.strip()
        if entry:
            out.extend(_expand_one(entry, listed_in=path))
    return out


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES
