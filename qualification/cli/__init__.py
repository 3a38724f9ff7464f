"""The ``vqual`` command: parse arguments, call the core, map errors to exit codes.

One module per command or command group; what they share (the error edge, the passphrase
reader, ``--state-dir`` and the run options) is in :mod:`qualification.cli.shared`. The
command modules import that module only, never each other nor this package (import-linter
contract in pyproject.toml); this package builds the root group from them.

A command imports the core inside its function, not at module level: the root group imports
every command module, and the core they use takes 0.5-0.9 s to import here against 0.07 s for
the CLI alone, which every ``vqual`` call (``--help`` included) would pay. There is no import
cycle to dodge (tests/unit/test_import_cycles.py counts these imports too).
"""

from __future__ import annotations

import click

from qualification import __version__
from qualification.cli import (
    audit,
    baseline,
    cleanup,
    clone,
    convert,
    decommission,
    deviation,
    drift,
    export,
    join,
    keys,
    log,
    migrate,
    patch,
    pull,
    push,
    qualify,
    report,
    review,
    selftest,
    serve,
    sign,
    specs,
    state,
    trust,
    verify,
)
from qualification.cli.shared import QuietPipeGroup


@click.group(cls=QuietPipeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vqual")
def main() -> None:
    """vqual: IQ/OQ qualification of virtual infrastructure with signed evidence.

    Exit codes: 0 passed/valid, 1 failed or invalid, 2 bad input (nothing executed),
    3 incomplete, 4 platform or connection error.
    """


for _command in (
    qualify.qualify, verify.verify, cleanup.cleanup, keys.keys, report.report, sign.sign,
    deviation.deviation, audit.audit, selftest.selftest, trust.trust, patch.patch,
    drift.drift, clone.clone, specs.specs, export.export, state.state, baseline.baseline,
    serve.serve, push.push, push.void, pull.pull, log.log, join.join, convert.convert,
    decommission.decommission, review.review, migrate.migrate,
):
    main.add_command(_command)

__all__ = ["main"]
