"""Site settings from ``config.yaml`` in the state directory.

The file is not signed (docs/review.md, "Limits"), so every run records which settings were
in force: :func:`config_citation` gives the file's SHA-256 and the settings it yields, which
``run.start`` carries as ``config``. A malformed file stops every command that reads it,
naming ``file:line``: a setting silently ignored or misread (``"no"`` read as true) would
change what a run enforces without anyone seeing it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
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
    #: the evidence server runs are pushed to when sealed (docs/server.md); not cited in
    #: run.start, since where evidence goes does not change how a run is judged
    push_server: str | None = None


_BOOLS = ("require_protocol_approval", "require_signed_trust")
_KEYS = {"change_id_pattern", "push_server", *_BOOLS}
#: Settings that do not judge a run, left out of its citation (run.start's ``config``).
_NOT_CITED = ("push_server",)
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"


def _where(path: Path, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def _parse(path: Path, data: bytes) -> SiteConfig:
    """The settings in ``data``, judged on YAML nodes so every refusal names its line."""
    try:
        root = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInputError(f"not valid YAML: {problem}", where=where) from None
    if root is None or root.tag == _NULL_TAG:
        return SiteConfig()  # an empty file sets nothing
    if not isinstance(root, yaml.MappingNode):
        raise BadInputError("must be a mapping of settings", where=_where(path, root))
    values: dict[str, Any] = {}
    for key_node, value_node in root.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        where = _where(path, key_node)
        if key not in _KEYS:
            raise BadInputError(
                f"unknown setting {key!r} (known: {', '.join(sorted(_KEYS))})", where=where
            )
        if key in values:
            raise BadInputError(f"setting {key} is given twice", where=where)
        where = _where(path, value_node)
        if key in _BOOLS:
            # Only YAML booleans: a quoted "false" or "no" would be a true string in Python.
            if not isinstance(value_node, yaml.ScalarNode) or value_node.tag != _BOOL_TAG:
                raise BadInputError(f"{key} must be true or false", where=where)
        elif not (
            isinstance(value_node, yaml.ScalarNode)
            and value_node.tag in (_NULL_TAG, "tag:yaml.org,2002:str")
        ):
            what = "an http(s) URL" if key == "push_server" else "a regular expression"
            raise BadInputError(f"{key} must be {what} (a string)", where=where)
        value = yaml.SafeLoader(b"").construct_object(value_node, deep=True)
        if key == "push_server" and value is not None and not re.match(r"https?://[^/]", value):
            raise BadInputError("push_server must be an http(s) URL", where=where)
        if key == "change_id_pattern" and value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise BadInputError(
                    f"change_id_pattern is not a regular expression: {exc}", where=where
                ) from None
        values[key] = value
    return SiteConfig(**values)


def load_config(state_dir: Path) -> SiteConfig:
    """The site's settings; the defaults when there is no ``config.yaml``.

    Raises:
        BadInputError: the file cannot be read, is not YAML, is not a mapping, or has an
            unknown, repeated or mistyped setting (named with ``file:line``).
    """
    return _load(state_dir)[0]


def _load(state_dir: Path) -> tuple[SiteConfig, bytes | None]:
    path = state_dir / CONFIG_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SiteConfig(), None
    except OSError as exc:
        raise BadInputError(
            f"cannot read site configuration: {exc.strerror}", where=str(path)
        ) from None
    return _parse(path, data), data


def config_citation(state_dir: Path) -> dict[str, Any]:
    """What ``run.start`` records as ``config``: the settings in force and where from.

    ``digest`` is the SHA-256 of ``config.yaml``'s bytes (None when there is no file, so the
    defaults apply); ``settings`` are the values every setting had, defaults included.

    Raises:
        BadInputError: as :func:`load_config`.
    """
    return load_config_cited(state_dir)[1]


def load_config_cited(state_dir: Path) -> tuple[SiteConfig, dict[str, Any]]:
    """:func:`load_config` and :func:`config_citation` from one reading of the file."""
    config, data = _load(state_dir)
    return config, {
        "file": CONFIG_FILE,
        "digest": hashlib.sha256(data).hexdigest() if data is not None else None,
        "settings": {k: v for k, v in asdict(config).items() if k not in _NOT_CITED},
    }
