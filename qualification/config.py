"""Site settings from ``config.yaml`` in the state directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qualification.errors import BadInputError

CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class SiteConfig:
    """What a site may set. Unknown keys are refused, so a typo is not silently ignored."""

    change_id_pattern: str | None = None
    require_protocol_approval: bool = False
    #: refuse a trust store without a signed history (docs/review.md)
    require_signed_trust: bool = False


_KEYS = {"change_id_pattern", "require_protocol_approval", "require_signed_trust"}


def load_config(state_dir: Path) -> SiteConfig:
    path = state_dir / CONFIG_FILE
    if not path.exists():
        return SiteConfig()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"cannot read site configuration: {exc}", where=str(path)) from exc
    if not isinstance(data, dict):
        raise BadInputError("must be a mapping", where=str(path))
    unknown = set(data) - _KEYS
    if unknown:
        raise BadInputError(f"unknown setting(s): {', '.join(sorted(unknown))}", where=str(path))
    return SiteConfig(
        change_id_pattern=data.get("change_id_pattern"),
        require_protocol_approval=bool(data.get("require_protocol_approval", False)),
        require_signed_trust=bool(data.get("require_signed_trust", False)),
    )
