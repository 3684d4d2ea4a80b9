"""An output folder that never destroys its inputs or files edgekit did not write.

`edgekit predict B photos -o photos` once overwrote the user's JPEGs with annotated copies.
Two rules stop that, checked before anything is written:

- the output may not be, contain or lie inside an input (paths resolved, symlinks followed);
- a file is replaced only if edgekit wrote it: the folder keeps a record (``RECORD``) of the
  files it wrote, with their size and modification time; any other existing file is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from .errors import EdgekitError

RECORD = ".edgekit-outputs.json"


class OutputError(EdgekitError):
    """The output would overwrite an input or a file edgekit did not write."""


def check_separate(inputs: Iterable[Path], out: Path) -> None:
    """Refuses an output folder that is, contains or lies inside one of ``inputs``.

    Raises:
        OutputError: naming the input and the output.
    """
    target = out.resolve()
    for given in inputs:
        source = given.resolve()
        if target == source or target.is_relative_to(source) or source.is_relative_to(target):
            how = ("is" if target == source else
                   "lies inside" if target.is_relative_to(source) else "contains")
            raise OutputError(
                f"The output {out} {how} the input {given}: annotated files would mix with "
                "(or replace) the originals.",
                hint="Give -o a folder outside the input, e.g. -o predictions/.")


class OutputFolder:
    """A folder edgekit writes into, refusing to replace files it did not write.

    Args:
        folder: Created if missing.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._record_path = folder / RECORD
        self._written: dict[str, list[int]] = {}

    def claim(self, names: Iterable[str]) -> list[Path]:
        """Checks every name before anything is written; returns their paths.

        Raises:
            OutputError: a file of that name exists and edgekit did not write it (or it was
                changed since), listing the first few.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"Cannot create the output folder {self.folder}: "
                              f"{exc.strerror}.", hint="Choose a folder you can write to.") \
                from None
        self._written = self._read_record()
        paths = [self.folder / name for name in names]
        foreign = [p.name for p in paths if p.exists() and not self._ours(p)]
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                              if len(foreign) > 5 else "")
            raise OutputError(
                f"{self.folder} already holds {shown}, which edgekit did not write; not "
                "overwriting.",
                hint="Choose an empty output folder, or move those files away.")
        return paths

    def wrote(self, path: Path) -> None:
        """Records a file as edgekit's (call after each file is complete)."""
        st = path.stat()
        self._written[path.name] = [st.st_size, st.st_mtime_ns]
        tmp = self._record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._written, indent=0, sort_keys=True))
        os.replace(tmp, self._record_path)

    def _ours(self, path: Path) -> bool:
        seen = self._written.get(path.name)
        if seen is None or not path.is_file():
            return False
        st = path.stat()
        return [st.st_size, st.st_mtime_ns] == seen  # changed since: the user's now

    def _read_record(self) -> dict[str, list[int]]:
        try:
            data = json.loads(self._record_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
