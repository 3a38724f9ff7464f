"""``vqual specs``: the protocols and change files the installed collection ships.

Each is reachable by name from any directory: ``vqual qualify --spec linux-virt-host``,
``vqual patch --change specs/changes/lab-kvm-agent-1.1.yaml``; a file of that name where the
user stands wins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from qualification.cli.shared import domain_errors


def _describe(path: Path) -> dict[str, Any]:
    from qualification.errors import VqualError
    from qualification.spec.loader import load_spec

    try:
        spec = load_spec(path)
    except VqualError as exc:  # shown in the listing; a run with it would say the same
        return {"name": path.stem, "path": str(path), "error": exc.one_line()}
    kinds = sorted({kind for test in spec.tests for kind in test.applies_to})
    return {"name": path.stem, "path": str(path), "title": spec.title, "version": spec.version,
            "tests": len(spec.tests), "applies_to": kinds}


@click.command("specs")
@click.option("--json", "json_mode", is_flag=True,
              help="Print one JSON document (schema vqual.specs/v1) on stdout.")
@domain_errors
def specs(json_mode: bool) -> None:
    """List the specs (protocols) and change files the vqual.qualification collection ships;
    give a spec's NAME to `vqual qualify --spec NAME` from any directory."""
    from qualification import __version__
    from qualification.execution.collection import (
        collection_version,
        find_collection_root,
        shipped_specs,
    )

    root = find_collection_root()
    version = collection_version(root)
    rows = [_describe(path) for path in shipped_specs(root)]
    changes = sorted((root / "specs" / "changes").glob("*.yaml"))
    if json_mode:
        click.echo(json.dumps({
            "schema": "vqual.specs/v1", "collection": str(root), "version": version,
            "specs": rows,
            "changes": [{"name": f"specs/changes/{p.name}", "path": str(p)} for p in changes],
        }, indent=2, sort_keys=True))
        return
    note = "" if version == __version__ else f" (not this vqual's {__version__}: runs refused)"
    click.echo(f"vqual.qualification {version or '(no version)'} at {root}{note}")
    width = max((len(r["name"]) for r in rows), default=4)
    for row in rows:
        if "error" in row:
            click.echo(f"  {row['name']:<{width}}  cannot be read: {row['error']}")
            continue
        click.echo(f"  {row['name']:<{width}}  v{row['version']:<5} {row['tests']:>3} tests  "
                   f"{row['title']} [{', '.join(row['applies_to'])}]")
    if changes:
        click.echo("change files (vqual patch --change):")
        for path in changes:
            click.echo(f"  specs/changes/{path.name}")
