"""vqual installed as a site installs it, used where the user stands (docs/install.md).

Builds the wheel and the collection tarball from this checkout, installs the wheel with the
libvirt extra only into a fresh venv and the tarball into a fresh collections path, and
from an empty directory holding nothing but an inventory (a copy of inventories/local):
lists the shipped specs, creates a throwaway executor key, qualifies the embedded default
(linux-virt-host and libvirt-embedded, as ``scripts/run demo``) and verifies the bundles.
Nothing of the checkout is on the installed vqual's path: no PYTHONPATH, the collections path
is the fresh one, HOME is a fresh directory (pip keeps the machine's configuration and cache).
The venv has no pyvmomi, pywinrm nor weasyprint: what needs them says which extra adds them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from qualification.signing.trust_root import PIN_ENV
from tests.trustroot_testlib import PIN, pin_state

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Installed:
    venv: Path
    collections: Path  # the fresh collections path the tarball went into
    tarball: Path
    home: Path
    work: Path  # the empty directory the user stands in: an inventory, nothing else
    env: dict[str, str]

    def run(self, *args: str | Path, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return _run([self.venv / "bin" / str(args[0]), *args[1:]], env=env or self.env,
                    cwd=self.work)


def _run(args: list[str | Path], *, env: dict[str, str], cwd: Path
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _reasons(bundle: Path) -> list[str]:
    """The reasons of the bundle's check results (records are DSSE envelopes, base64)."""
    reasons = []
    for line in (bundle / "records.jsonl").read_text().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "check.result":
            reasons.append(str(record["data"].get("reason") or ""))
    return reasons


def _ok(done: subprocess.CompletedProcess[str], *codes: int) -> str:
    assert done.returncode in (codes or (0,)), done.stdout + done.stderr
    return done.stdout


def _clean_env() -> dict[str, str]:
    # The machine's pip configuration and cache; nothing of this checkout or its venv.
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("VQUAL_", "ANSIBLE_"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the collection tarball, built from this checkout."""
    dist = tmp_path_factory.mktemp("dist")
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
              "-w", dist, REPO], env=_clean_env(), cwd=dist))
    _ok(_run([BIN / "ansible-galaxy", "collection", "build", COLLECTION, "--output-path", dist],
             env=_clean_env(), cwd=dist))
    (wheel,) = dist.glob("vqual-*.whl")
    (tarball,) = dist.glob("vqual-qualification-*.tar.gz")
    return wheel, tarball


def _pip_install(venv: Path, requirement: str, *, cwd: Path
                 ) -> subprocess.CompletedProcess[str]:
    # --no-compile: Python compiles what it imports on first use; compiling all of
    # ansible-core up front costs more than this test's runs import.
    return _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
                 "-q", "--no-compile", "--disable-pip-version-check", requirement],
                env=_clean_env(), cwd=cwd)


def _install(top: Path, wheel_spec: str, tarball: Path) -> Installed:
    """A fresh venv with ``wheel_spec`` (the wheel, with extras), the collection in a fresh
    collections path, an empty working directory with the inventory and an executor key."""
    base_env = _clean_env()
    venv = top / "venv"
    # Without pip of its own: this venv's pip installs into it (--python), which saves
    # seconds of ensurepip on a busy machine; nothing of this venv ends up in it.
    _ok(_run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip",
              venv], env=base_env, cwd=top))
    _ok(_pip_install(venv, wheel_spec, cwd=top))
    collections = top / "collections"
    _ok(_run([venv / "bin" / "ansible-galaxy", "collection", "install", "-p", collections,
              tarball], env=base_env, cwd=top))
    home = top / "home"
    home.mkdir()
    env = dict(base_env, HOME=str(home), ANSIBLE_COLLECTIONS_PATH=str(collections),
               VQUAL_STATE_DIR=str(top / "state"), VQUAL_INITIATOR="install-test",
               PATH=f"{venv / 'bin'}{os.pathsep}{base_env.get('PATH', '')}")
    work = top / "empty"
    work.mkdir()
    shutil.copytree(REPO / "inventories" / "local", work / "inventory")
    env[PIN_ENV] = str(PIN)  # the test trust root, pinned outside the state directory
    done = Installed(venv, collections, tarball, home, work, env)
    _ok(done.run("vqual", "keys", "create", "--name", "Install test executor (throwaway)",
                 "--role", "executor", "--throwaway", "--service"))
    pin_state(top / "state")
    return done


@pytest.fixture(scope="module")
def core_only(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel without any extra, and the collection."""
    wheel, tarball = built
    return _install(tmp_path_factory.mktemp("install"), str(wheel), tarball)


@pytest.fixture(scope="module")
def installed(built: tuple[Path, Path], core_only: Installed) -> Installed:
    """The same venv after ``pip install 'vqual[libvirt]'`` (what the embedded default needs).

    One venv for both saves a second install; the core-only test comes first in this file.
    """
    _ok(_pip_install(core_only.venv, f"{built[0]}[libvirt]", cwd=core_only.work))
    return core_only


def test_without_extras_the_core_runs_and_a_platform_names_its_extra(core_only: Installed) -> None:
    # First in this file: the fixture ``installed`` adds the libvirt extra to this venv.
    assert core_only.run("python", "-c", "import libvirt").returncode == 1  # really absent
    listed = json.loads(_ok(core_only.run("vqual", "specs", "--json")))
    assert all("error" not in s for s in listed["specs"]), listed["specs"]
    # A qualification records what it could not observe, with the extra to install.
    done = core_only.run("vqual", "qualify", "-i", "inventory", "--spec", "libvirt-embedded",
                         "--change", "CHG0000004", "--json")
    summary = json.loads(_ok(done, 4))
    assert summary["counts"]["error"] == summary["planned"] == summary["executed"], summary
    reasons = _reasons(core_only.work / summary["bundle"])
    assert len(reasons) == summary["planned"] and all(
        "needs libvirt-python, which is not installed: pip install 'vqual[libvirt]'" in r
        for r in reasons), reasons
    _ok(core_only.run("vqual", "verify", summary["bundle"]))
    # A command that needs the platform: one line, exit 2, no traceback.
    done = core_only.run("vqual", "cleanup", summary["run_id"], "-i", "inventory")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("vqual: libvirt/KVM support needs libvirt-python")
    assert done.stderr.rstrip().endswith("pip install 'vqual[libvirt]'"), done.stderr


def test_installed_vqual_qualifies_the_embedded_default_from_an_empty_directory(
        installed: Installed) -> None:
    where = _ok(installed.run("python", "-c", "import qualification; print(qualification.__file__)"))
    assert str(installed.venv) in where and str(REPO) not in where

    listed = json.loads(_ok(installed.run("vqual", "specs", "--json")))
    assert Path(listed["collection"]).is_relative_to(installed.collections)
    assert {"linux-virt-host", "libvirt-embedded"} <= {s["name"] for s in listed["specs"]}
    assert all("error" not in s for s in listed["specs"]), listed["specs"]

    bundles = []
    for spec in ("linux-virt-host", "libvirt-embedded"):
        done = installed.run("vqual", "qualify", "-i", "inventory", "--spec", spec,
                             "--change", "CHG0000001", "--json")
        # This machine is what it is (linux-virt-host's verdict says so); libvirt's test
        # driver behind libvirt-embedded passes anywhere.
        summary = json.loads(_ok(done) if spec == "libvirt-embedded" else _ok(done, 0, 1, 4))
        assert summary["executed"] == summary["planned"] > 0, summary
        assert summary["verification"] == "valid", summary
        # Relative paths are where the user stands: ./evidence by default.
        bundle = installed.work / summary["bundle"]
        assert bundle.resolve().is_relative_to(installed.work / "evidence") and bundle.is_dir()
        reasons = " ".join(_reasons(bundle))
        assert "No module named" not in reasons and "not installed" not in reasons, reasons
        bundles.append(bundle)

    for bundle in bundles:
        verified = json.loads(_ok(installed.run("vqual", "verify", bundle, "--json")))
        assert verified["status"] == "valid", verified

    # No weasyprint in this venv: PDF output names the extra that adds it, in one line.
    done = installed.run("vqual", "report", bundles[-1], "--pdf", "--out", "views")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "pip install 'vqual[pdf]'" in done.stderr, done.stderr


def test_the_collections_playbook_by_its_fqcn_finds_a_shipped_spec_by_name(
        installed: Installed) -> None:
    key = Path(installed.env["VQUAL_STATE_DIR"]) / "keys" / "executor.pem"
    env = dict(installed.env, ANSIBLE_CALLBACKS_ENABLED="vqual.qualification.evidence",
               VQUAL_KEY_FILE=str(key), VQUAL_EVIDENCE_DIR="playbook-evidence")
    _ok(installed.run("ansible-playbook", "-i", "inventory", "vqual.qualification.qualify",
                      "-e", "vqual_spec=libvirt-embedded", "-e", "vqual_change_id=CHG0000002",
                      env=env))
    (bundle,) = (installed.work / "playbook-evidence" / "CHG0000002").iterdir()
    verified = json.loads(_ok(installed.run("vqual", "verify", bundle, "--json")))
    assert verified["status"] == "valid" and verified["verdict"] == "pass", verified


def test_a_collection_of_another_version_is_refused_in_one_line(
        installed: Installed, tmp_path: Path) -> None:
    other = tmp_path / "collections"
    shutil.copytree(installed.collections, other)
    manifest = other / "ansible_collections" / "vqual" / "qualification" / "MANIFEST.json"
    data = json.loads(manifest.read_text())
    data["collection_info"]["version"] = "0.0.1"
    manifest.write_text(json.dumps(data))
    evidence = tmp_path / "evidence"
    done = installed.run("vqual", "qualify", "-i", "inventory", "--spec", "libvirt-embedded",
                         "--change", "CHG0000003", "--evidence-dir", evidence,
                         env=dict(installed.env, ANSIBLE_COLLECTIONS_PATH=str(other)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "is version 0.0.1 but the vqual package is" in done.stderr, done.stderr
    assert not evidence.exists()


def test_the_default_collections_path_is_found_without_any_setting(installed: Installed) -> None:
    env = {k: v for k, v in installed.env.items() if k != "ANSIBLE_COLLECTIONS_PATH"}
    _ok(installed.run("ansible-galaxy", "collection", "install", installed.tarball, env=env))
    listed = json.loads(_ok(installed.run("vqual", "specs", "--json", env=env)))
    default = installed.home / ".ansible" / "collections"
    assert Path(listed["collection"]).is_relative_to(default.resolve())

