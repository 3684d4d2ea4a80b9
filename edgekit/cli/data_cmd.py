"""`edgekit sample-data`: write the synthetic labelled road-scene dataset."""

from __future__ import annotations

from pathlib import Path

import click

from ._ui import progress_bar, say


@click.command("sample-data")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--count", default=200, show_default=True, type=click.IntRange(1), help="Number of images."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Deterministic by seed.")
@click.option("--width", default=512, show_default=True, type=click.IntRange(32))
@click.option("--height", default=384, show_default=True, type=click.IntRange(32))
def sample_data(directory: Path, count: int, seed: int, width: int, height: int) -> None:
    """Write COUNT synthetic road scenes with COCO labels into DIRECTORY."""
    from ..data.synth import write_dataset

    with progress_bar() as bar:
        task = bar.add_task("rendering scenes", total=count)
        annotations = write_dataset(
            directory,
            count=count,
            seed=seed,
            width=width,
            height=height,
            progress=lambda done: bar.update(task, completed=done),
        )
    say("Dataset written: images in [bold]{}[/], labels in [bold]{}[/]", directory / "images",
        annotations)
