"""The browser review's security settings: session lifetimes, lockout, cookies.

Defaults (docs/server.md "Browser review"): a session ends after 15 minutes without a request
(idle) and 8 hours after login whatever happens (absolute); 5 failed logins of one user id
within 15 minutes lock it for 15 minutes; one address may try 30 logins a minute. Cookies are
``Secure`` unless plain http is asked for explicitly (``vqual serve --insecure-cookies``, for
tests on loopback), and ``vqual serve`` says so when it starts. ``vqual serve`` hands these to
its workers through the environment (``VQUAL_WEB_*``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from qualification.errors import BadInputError

_ENV = "VQUAL_WEB_"


@dataclass(frozen=True)
class WebSettings:
    idle_minutes: int = 15
    absolute_minutes: int = 8 * 60
    lockout_failures: int = 5
    lockout_minutes: int = 15
    logins_per_minute: int = 30
    secure_cookies: bool = True

    @classmethod
    def from_env(cls) -> WebSettings:
        """Settings from ``VQUAL_WEB_<FIELD>`` (upper case), defaults for the rest.

        Raises:
            BadInputError: a value that is not a positive integer (or 0/1 for cookies).
        """
        values: dict[str, int | bool] = {}
        for name, default in asdict(cls()).items():
            text = os.environ.get(_ENV + name.upper())
            if text is None:
                continue
            if not text.isdigit() or (int(text) == 0 and not isinstance(default, bool)):
                raise BadInputError(f"{_ENV}{name.upper()} must be a positive integer: {text!r}")
            values[name] = bool(int(text)) if isinstance(default, bool) else int(text)
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` return these settings."""
        return {_ENV + k.upper(): str(int(v)) for k, v in asdict(self).items()}
