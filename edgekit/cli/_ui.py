"""Terminal output shared by every command: two consoles, progress bars, tables, JSON files.

Results a user pipes (`edgekit info B > f`) go to stdout (``results``); progress, logs and
errors go to stderr (``console``). Dynamic text (paths, messages, table cells) is escaped here,
once: rich reads ``[...]`` as markup, which ate ``edgekit[openvino]`` out of install hints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# A log file or a pipe has no width: rich's default of 80 columns cut table headers to
# "form…". Off a terminal, lines are as long as their content needs (up to this).
_PIPE_WIDTH = 240


class _Console(Console):
    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal or "COLUMNS" in self._environ or self._width is not None:
            return size
        return ConsoleDimensions(_PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = _Console(stderr=True)  # progress, logs, errors: stderr
results = _Console()  # what a command produces (tables, figures): stdout, for pipes
T = TypeVar("T")


def say(markup: str, *values: Any, style: str | None = None) -> None:
    """Prints a line to stderr: ``markup`` may style, ``values`` are escaped into its ``{}``.

    Example: ``say("[bold]{}[/] written", path)`` prints a path with brackets intact.
    """
    console.print(markup.format(*(escape(str(v)) for v in values)), style=style,
                  highlight=False)


def error(message: str, hint: str | None = None) -> None:
    """The one place an error reaches the user: red 'error:', then the hint, text as given."""
    say("[bold red]error:[/] {}", message)
    if hint:
        say("[yellow]hint:[/] {}", hint)


def warn(message: str) -> None:
    say("[yellow]warning:[/] {}", message)


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def track(items: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    """Iterates with a rich progress bar."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Shows a spinner while a step runs, then a tick (or a cross if it raised)."""
    with console.status(description):
        try:
            yield
        except BaseException:
            say("[red]✗[/] {}", description)
            raise
    say("[green]✓[/] {}", description)


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> Table:
    """A table whose title and cells are plain text (never markup).

    On a narrow terminal cells fold onto more lines instead of being cut to "form…": every
    column keeps at least its header's width (up to 10), so headers stay readable.
    """
    out = Table(title=Text(title), title_justify="left")
    for column in columns:
        out.add_column(Text(column), overflow="fold", min_width=min(len(column), 10))
    for row in rows:
        out.add_row(*(v if isinstance(v, Text) else Text(fmt(v)) for v in row))
    return out


def points(fraction: float | None) -> str | None:
    """mAP as points (0.6539 -> "65.39"), as papers and every edgekit table show it."""
    if fraction is None or fraction != fraction:  # None or NaN: not measured
        return None
    return f"{100 * fraction:.2f}"


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def write_json(path: str | Path | None, data: dict[str, Any]) -> None:
    """Writes machine-readable results when --json was given."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, default=str) + "\n")
    say("JSON written to [bold]{}[/]", target)
