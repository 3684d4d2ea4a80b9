"""The `edgekit` command line.

Each command lives in its own module and imports heavy libraries inside its function, so
`edgekit --help` stays fast on a Raspberry Pi.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import EdgekitError
from ._ui import console, error
from .batch_cmd import batch_command
from .bench_cmd import bench_group
from .data_cmd import sample_data
from .devices_cmd import devices
from .eval_cmd import eval_command
from .export_cmd import export_command
from .flash_cmd import flash_command, keygen_command, sign_command, status_command
from .info_cmd import info
from .predict_cmd import predict
from .rollout_cmd import rollout_command
from .run_cmd import run_command
from .service_cmd import serve_command, service_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option("-v", "--verbose", is_flag=True,
              help="Show every library's log lines and warnings (TensorFlow, OpenCV/FFmpeg, "
                   "torch, converters), and edgekit's debug lines.")
def cli(verbose: bool) -> None:
    """edgekit: export, check and run detectors on edge hardware.

    MODEL may be the word `sample` (the embedded default detector), a bundle directory, or a
    model file. Results go to stdout, progress and logs to stderr.
    """
    from ._logging import configure

    configure(verbose=verbose)


for command in (export_command, eval_command, predict, sample_data, info, bench_group, devices):
    cli.add_command(command)
for command in (flash_command, status_command, sign_command, keygen_command):
    cli.add_command(command)
cli.add_command(run_command)
for command in (serve_command, service_group, rollout_command):
    cli.add_command(command)
cli.add_command(batch_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI, turning edgekit errors into one clear message and exit 2."""
    try:
        cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
    except EdgekitError as exc:
        error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["cli", "main"]
