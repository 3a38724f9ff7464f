"""The gates of Ansible's ecosystem, run on the built vqual.qualification collection.

Builds the collection tarball from this checkout with ``ansible-galaxy collection build``,
installs it into a fresh collections path and runs on what a user would get:

- galaxy-importer on the tarball (what Galaxy and Automation Hub run on an upload), with
  ``tests/e2e/galaxy-importer.cfg`` (ansible-test is run as its own gate, below);
- ``ansible-lint --profile production`` on the installed collection;
- ``ansible-test sanity`` on the installed collection, offline: ansible-test bootstraps pip in
  each sanity virtualenv with a get-pip script it downloads from ci-files.testing.ansible.com;
  ``get_pip_offline.py`` stands in for it from the cache (docs/collection.md).

``python tests/e2e/collection_gates.py`` (``scripts/collection-gates``) runs every gate and
prints each one's time; tests/e2e/test_collection_gates.py runs them as tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
IMPORTER_CONFIG = HERE / "galaxy-importer.cfg"
GET_PIP_OFFLINE = HERE / "get_pip_offline.py"
#: Where ansible-test keeps its sanity virtualenvs between runs (it keys them by their pinned
#: requirements): the first run installs them (about 80 s here), later runs reuse them.
SANITY_HOME = Path(os.environ.get("VQUAL_ANSIBLE_TEST_HOME", REPO / ".venv" / "ansible-test-home"))


@dataclass(frozen=True)
class Built:
    tarball: Path
    collections: Path  # the fresh collections path the tarball was installed into
    root: Path  # <collections>/ansible_collections/vqual/qualification

    @property
    def workdir(self) -> Path:
        return self.tarball.parent


def gate_env(collections: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a gate: this venv's tools first, no colours, the given collections."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env["PY_COLORS"] = "0"
    env.pop("PYTHONPATH", None)
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    env.update(extra)
    return env


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: int = 1800
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def build(source: Path, dest: Path) -> Path:
    """Build the collection at ``source`` into ``dest``; the tarball's path."""
    dest.mkdir(parents=True, exist_ok=True)
    done = run([BIN / "ansible-galaxy", "collection", "build", source, "--output-path", dest,
                "--force"], cwd=dest, env=gate_env())
    if done.returncode != 0:
        raise RuntimeError(f"ansible-galaxy collection build failed:\n{done.stdout}{done.stderr}")
    return next(dest.glob("vqual-qualification-*.tar.gz"))


def build_and_install(workdir: Path) -> Built:
    """Build this checkout's collection and install it into a fresh collections path."""
    tarball = build(COLLECTION, workdir)
    collections = workdir / "collections"
    done = run([BIN / "ansible-galaxy", "collection", "install", "--force", "-p", collections,
                tarball], cwd=workdir, env=gate_env(collections))
    if done.returncode != 0:
        raise RuntimeError(f"ansible-galaxy collection install failed:\n{done.stdout}{done.stderr}")
    root = collections / "ansible_collections" / "vqual" / "qualification"
    return Built(tarball=tarball, collections=collections, root=root)


def galaxy_importer(built: Built) -> subprocess.CompletedProcess[str]:
    """galaxy-importer on the tarball; it writes importer_result.json where it runs."""
    env = gate_env(built.collections, GALAXY_IMPORTER_CONFIG=str(IMPORTER_CONFIG))
    return run([sys.executable, "-m", "galaxy_importer.main", built.tarball], cwd=built.workdir,
               env=env)


def ansible_lint(root: Path, collections: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    """``ansible-lint --profile production`` on a collection's root, or on ``paths`` in it
    (offline: nothing is fetched from Galaxy)."""
    return run([BIN / "ansible-lint", "--profile", "production", "--offline", "-f", "pep8",
                *paths], cwd=root, env=gate_env(collections))


def get_pip_version() -> str:
    """The pip version ansible-test bootstraps into its sanity virtualenvs."""
    from ansible_test._internal.python_requirements import get_venv_packages

    python = types.SimpleNamespace(version=f"{sys.version_info[0]}.{sys.version_info[1]}")
    return str(get_venv_packages(python)["pip"])


def offline_home(home: Path = SANITY_HOME) -> Path:
    """A HOME for ansible-test whose get-pip cache holds the offline stand-in."""
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"get_pip_{get_pip_version().replace('.', '_')}.py"
    if not target.exists() or target.read_bytes() != GET_PIP_OFFLINE.read_bytes():
        shutil.copyfile(GET_PIP_OFFLINE, target)
    return home


def sanity(built: Built, home: Path = SANITY_HOME, *tests: str) -> subprocess.CompletedProcess[str]:
    """``ansible-test sanity`` on the installed collection, this interpreter, offline."""
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    args: list[str | Path] = [BIN / "ansible-test", "sanity", "--python", python, "--color", "no"]
    for test in tests:
        args += ["--test", test]
    return run(args, cwd=built.root, env=gate_env(built.collections, HOME=str(offline_home(home))))


def main() -> int:
    """Every gate on a fresh build; one line per gate with its time; exit 1 if one fails."""
    worst = 0
    with tempfile.TemporaryDirectory(prefix="vqual-gates-") as tmp:
        started = time.monotonic()
        built = build_and_install(Path(tmp))
        print(f"build and install: {time.monotonic() - started:.1f} s ({built.tarball.name})")
        gates: dict[str, Callable[[], subprocess.CompletedProcess[str]]] = {
            "galaxy-importer": lambda: galaxy_importer(built),
            "ansible-lint --profile production": lambda: ansible_lint(built.root, built.collections),
            "ansible-test sanity": lambda: sanity(built),
        }
        for name, gate in gates.items():
            started = time.monotonic()
            done = gate()
            took = time.monotonic() - started
            verdict = "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
            print(f"{name}: {verdict} in {took:.1f} s")
            if done.returncode != 0:
                worst = 1
                print(done.stdout[-6000:] + done.stderr[-6000:], file=sys.stderr)
    print(f"publication: {publication_readiness()}")
    return worst


def publication_readiness() -> str:
    """Whether galaxy.yml names a real repository (docs/collection.md, "Where it is
    published"): a line for people, never a gate's failure."""
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text(encoding="utf-8"))
    repository = str(galaxy.get("repository") or "")
    host = urllib.parse.urlsplit(repository).hostname or ""
    if host == "invalid" or host.endswith(".invalid"):
        return (f"not ready: galaxy.yml repository is the placeholder {repository}; set the "
                "real repository before publishing (docs/collection.md)")
    return f"ready: galaxy.yml repository {repository}"


if __name__ == "__main__":
    sys.exit(main())
