"""The server's settings: the sites it serves and how long runs are retained.

They are read from ``<state>/server/settings.yaml`` (or the file ``$VQUAL_SERVER_SETTINGS``
names); no file means no sites and the default retention. Every process of one server (each
worker, ``vqual serve retention``) must read the same file. A malformed file stops the server
with one line naming it: a retention period misread would let a record be purged early.

```yaml
sites: [basel, visp]           # per-site authorization on; absent or []: off
retention:
  default_days: 3653           # every run (default: 3653, ten years)
  sites: {basel: 5479}         # a site's own period; a run spanning sites keeps the longest
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from qualification.errors import BadInputError
from qualification.server.files import valid_name
from qualification.timeutil import parse_utc

SETTINGS_ENV = "VQUAL_SERVER_SETTINGS"
#: Ten years (with leap days): the retention of a run when the settings name none.
DEFAULT_RETENTION_DAYS = 3653
#: An account's sites when it may reach every site's runs.
ALL_SITES = "*"


@dataclass(frozen=True)
class Settings:
    sites: tuple[str, ...] = ()
    retention_days: int = DEFAULT_RETENTION_DAYS
    site_retention_days: Mapping[str, int] = field(default_factory=dict)

    @property
    def per_site(self) -> bool:
        """Whether per-site authorization is on (sites are configured)."""
        return bool(self.sites)

    def retention_for(self, sites: Iterable[str]) -> int:
        """Days a run of ``sites`` is kept: the longest of its sites' periods, else the default."""
        own = [self.site_retention_days[s] for s in sites if s in self.site_retention_days]
        return max(own) if own else self.retention_days

    def retained_until(self, pushed: str, sites: Iterable[str]) -> datetime:
        """When a run pushed at ``pushed`` leaves its retention (counted from the push, which
        is after the run's own records: the later, safer start)."""
        return parse_utc(pushed) + timedelta(days=self.retention_for(sites))


def settings_path(state_dir: Path) -> Path:
    named = os.environ.get(SETTINGS_ENV)
    return Path(named) if named else state_dir / "server" / "settings.yaml"


def _days(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadInputError(f"{where} must be a whole number of days (0 or more)")
    return value


def _site_names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInputError(f"{where} must be a list of site names")
    return tuple(valid_name(v, "site") for v in value)


def parse_settings(doc: Any, where: str) -> Settings:
    """Settings from a parsed YAML document; unknown keys are refused (a typo is not ignored).

    Raises:
        BadInputError: one line naming ``where`` and the setting.
    """
    if doc is None:
        return Settings()
    if not isinstance(doc, dict) or not set(doc) <= {"sites", "retention"}:
        raise BadInputError(f"{where}: settings are a mapping of sites and retention")
    sites = _site_names(doc.get("sites") or [], f"{where}: sites")
    retention = doc.get("retention") or {}
    if not isinstance(retention, dict) or not set(retention) <= {"default_days", "sites"}:
        raise BadInputError(f"{where}: retention is a mapping of default_days and sites")
    default = _days(retention.get("default_days", DEFAULT_RETENTION_DAYS),
                    f"{where}: retention.default_days")
    per_site = retention.get("sites") or {}
    if not isinstance(per_site, dict):
        raise BadInputError(f"{where}: retention.sites must map site names to days")
    own = {valid_name(str(k), "site"): _days(v, f"{where}: retention.sites.{k}")
           for k, v in per_site.items()}
    unknown = sorted(set(own) - set(sites))
    if unknown and sites:
        raise BadInputError(f"{where}: retention.sites names {', '.join(unknown)}, "
                            "not among the sites")
    return Settings(sites, default, own)


def load_settings(state_dir: Path) -> Settings:
    """The server's settings (:func:`settings_path`); none written: the defaults."""
    path = settings_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if os.environ.get(SETTINGS_ENV):
            raise BadInputError(f"{path}: the server settings file does not exist") from None
        return Settings()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the server settings: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise BadInputError(f"{path}: the server settings are not valid YAML") from None
    return parse_settings(doc, str(path))


# --------------------------------------------------------------------------- sites of runs
def inventory_sites(inventory: Mapping[str, Any]) -> frozenset[str]:
    """The sites of a recorded inventory: the ``vqual_site`` of its hosts (see
    :mod:`qualification.checks.placement`); a run spanning sites belongs to all of them."""
    hosts = inventory.get("hosts")
    if not isinstance(hosts, Mapping):
        return frozenset()
    return frozenset(str(v["vqual_site"]) for v in hosts.values()
                     if isinstance(v, Mapping) and v.get("vqual_site"))


def bundle_sites(bundle: Path) -> frozenset[str]:
    """The sites of a (verified) bundle, from its sealed ``inventory.json``; none recorded:
    no site."""
    try:
        doc = json.loads((bundle / "inventory.json").read_bytes())
    except (OSError, ValueError):
        return frozenset()
    return inventory_sites(doc) if isinstance(doc, Mapping) else frozenset()


def encode_sites(sites: Iterable[str]) -> str:
    return ",".join(sorted(set(sites)))


def decode_sites(text: str | None) -> frozenset[str]:
    return frozenset(s for s in (text or "").split(",") if s)


def site_refusal(settings: Settings, account: str, account_sites: frozenset[str],
                 action: str, run_id: str, run_sites: frozenset[str]) -> str | None:
    """Why ``account`` may not ``action`` a run of ``run_sites`` (None: it may).

    Without configured sites nothing is refused here; with them, an account reaches a run
    when they share a site, or when the account is of every site (``*``).
    """
    if not settings.per_site or ALL_SITES in account_sites or account_sites & run_sites:
        return None
    theirs = ", ".join(sorted(account_sites)) or "no site"
    of = ", ".join(sorted(run_sites)) or "no site"
    return f"account {account} (sites: {theirs}) may not {action} run {run_id} (sites: {of})"
