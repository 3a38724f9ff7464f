"""The execution environment definition (ee/, docs/aap.md) as ansible-builder reads it.

``ansible-builder create`` turns ee/execution-environment.yml, with the wheel and the collection
tarball built from this checkout, into a build context; ``ansible-builder introspect`` on the
collection installed from that tarball lists every Python and system dependency the collection
declares (what the builder stage of the image runs). Building the image itself needs a
container engine and an RPM-based base image: that test is marked slow (docs/aap.md has the
measured outcome on this machine).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
EE = REPO / "ee"
BIN = Path(sys.executable).parent


def _run(args: list[str | Path], cwd: Path, timeout: int = 600) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("VQUAL_", "ANSIBLE_"))}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _version() -> str:
    return str(yaml.safe_load((COLLECTION / "galaxy.yml").read_text())["version"])


@pytest.fixture(scope="module")
def ee_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ee/ with dist/ holding the wheel and the tarball built from this checkout."""
    top = tmp_path_factory.mktemp("ee")
    shutil.copytree(EE, top / "ee", ignore=shutil.ignore_patterns("dist", "context"))
    dist = top / "ee" / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", dist, REPO], cwd=top)
    _run([BIN / "ansible-galaxy", "collection", "build", COLLECTION, "--output-path", dist],
         cwd=top)
    return top / "ee"


def test_the_definition_names_the_files_of_the_one_version() -> None:
    definition = yaml.safe_load((EE / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    sources = [f["src"] for f in definition["additional_build_files"]]
    assert sources == [f"dist/vqual-{_version()}-py3-none-any.whl",
                       f"dist/vqual-qualification-{_version()}.tar.gz"]
    galaxy = yaml.safe_load((EE / definition["dependencies"]["galaxy"]).read_text())
    assert galaxy["collections"][0]["name"].endswith(f"vqual-qualification-{_version()}.tar.gz")
    # The signing key is a credential, never part of the image.
    assert not re.search(r"\.pem|KEY_FILE", (EE / "execution-environment.yml").read_text()
                         .split("additional_build_files")[1])


def test_ansible_builder_create_makes_a_build_context(ee_dir: Path) -> None:
    context = ee_dir / "context"
    _run([BIN / "ansible-builder", "create", "-f", ee_dir / "execution-environment.yml",
          "-c", context, "--output-filename", "Containerfile"], cwd=ee_dir)
    containerfile = (context / "Containerfile").read_text()
    assert (context / "_build" / "wheels" / f"vqual-{_version()}-py3-none-any.whl").is_file()
    assert (context / "_build" / "collections"
            / f"vqual-qualification-{_version()}.tar.gz").is_file()
    # The builder stage introspects the installed collection and pip finds the wheel.
    assert "introspect" in containerfile
    assert "ENV PIP_FIND_LINKS=/build/wheels" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner>=2.4,<2.5"' \
        in containerfile


def _requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines()
            if line.split("#")[0].strip()]


def test_introspect_on_the_installed_collection_lists_every_dependency(
    ee_dir: Path, tmp_path: Path
) -> None:
    (tarball,) = (ee_dir / "dist").glob("vqual-qualification-*.tar.gz")
    collections = tmp_path / "collections"
    _run([BIN / "ansible-galaxy", "collection", "install", "-p", collections, tarball],
         cwd=tmp_path)
    pip, bindep = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    _run([BIN / "ansible-builder", "introspect", "--sanitize", "--write-pip", pip,
          "--write-bindep", bindep, collections], cwd=tmp_path)
    python = _requirement_lines(pip)
    system = _requirement_lines(bindep)
    assert python == _requirement_lines(COLLECTION / "requirements.txt")
    assert system == _requirement_lines(COLLECTION / "bindep.txt")
    # Every platform extra of the wheel and the engine itself, at the collection's version.
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    extras = [req for name in ("libvirt", "vsphere", "hyperv") for req in optional[name]]
    assert f"vqual=={_version()}" in python
    assert set(extras) <= set(python)
    names = {re.split(r"\s", line)[0] for line in system}
    assert {"libvirt0", "libvirt-libs", "openssh-client", "openssh-clients", "openssl"} <= names


@pytest.mark.slow
def test_the_image_builds_with_podman_on_a_local_base(ee_dir: Path) -> None:
    """Needs podman and a local base image named by VQUAL_EE_BASE_IMAGE (docs/aap.md has the
    recipe for a Debian one made here); VQUAL_EE_BUILD_ARGS adds ansible-builder options
    (e.g. ``--build-arg PKGMGR=/usr/bin/apt-get``), VQUAL_EE_BUILD_CLI_ARGS options of podman
    build (e.g. ``--isolation chroot``). The definition's last step runs ``vqual --version``
    and ``ansible-doc`` on the evidence callback inside the image, so a build that succeeds
    has both working."""
    base = os.environ.get("VQUAL_EE_BASE_IMAGE")
    if shutil.which("podman") is None or not base:
        pytest.skip("needs podman and VQUAL_EE_BASE_IMAGE (docs/aap.md)")
    extra = os.environ.get("VQUAL_EE_BUILD_ARGS", "").split()
    cli = os.environ.get("VQUAL_EE_BUILD_CLI_ARGS")
    _run([BIN / "ansible-builder", "build", "-f", ee_dir / "execution-environment.yml",
          "-c", ee_dir / "context", "--container-runtime", "podman", "-t", "vqual-ee:test",
          "--build-arg", f"EE_BASE_IMAGE={base}", *extra,
          *(["--extra-build-cli-args", cli] if cli else [])], cwd=ee_dir, timeout=1800)
    _run(["podman", "image", "exists", "vqual-ee:test"], cwd=ee_dir)
