"""The image and the installed package, checked without a container engine: the Dockerfile
builds from the lockfile on a pinned base, and the wheel carries what `kefu setup` reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from shared.settings import DEFAULT_PORTS, SERVICES

ROOT = Path(__file__).resolve().parents[2]


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile_problems(dockerfile: str) -> list[str]:
    steps = instructions(dockerfile)
    problems = []
    bases = [args.split()[0] for name, args in steps if name == "FROM"]
    for base in bases:
        if not re.search(r":\d+\.\d+\.\d+[\w.-]*$|@sha256:[0-9a-f]{64}$", base):
            problems.append(f"base image {base} is not pinned")
    runs = " ; ".join(args for name, args in steps if name == "RUN")
    if not re.search(r"pip install [^;&]*--require-hashes[^;&]*-r requirements\.lock", runs):
        problems.append("dependencies are not installed from requirements.lock with hashes")
    if re.search(r"pip install[^;&]*(\s-e\s|--editable)", runs):
        problems.append("editable install")
    users = [args for name, args in steps if name == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("runs as root")
    exposed = {int(port) for name, args in steps if name == "EXPOSE" for port in args.split()}
    missing = set(DEFAULT_PORTS.values()) - exposed
    if missing:
        problems.append(f"ports not exposed: {sorted(missing)}")
    return problems


def test_the_dockerfile_keeps_its_rules() -> None:
    assert dockerfile_problems((ROOT / "Dockerfile").read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("FROM python:3.11.14-slim-bookworm", "FROM python:3.11-slim", "base image"),
        ("--require-hashes ", "", "dependencies are not installed"),
        ("pip install --no-deps --no-build-isolation .", "pip install -e .", "editable"),
        ("USER 10001", "USER root", "runs as root"),
        ("8004 8005", "8004", "ports not exposed: [8005]"),
    ],
)
def test_a_broken_dockerfile_is_caught(old: str, new: str, problem: str) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert old in dockerfile
    problems = dockerfile_problems(dockerfile.replace(old, new))
    assert any(found.startswith(problem) for found in problems), problems


def test_every_locked_requirement_is_pinned_with_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text(encoding="utf-8")
        requirements = re.findall(r"^([A-Za-z0-9._-]+)(==[^ ]+)? \\$", text, re.MULTILINE)
        assert requirements, lock
        assert all(version for _, version in requirements), lock
        assert text.count("--hash=sha256:") >= len(requirements)
    runtime = set(re.findall(r"^\S+==\S+", (ROOT / "requirements.lock").read_text()))
    dev = set(re.findall(r"^\S+==\S+", (ROOT / "requirements-dev.lock").read_text()))
    assert runtime <= dev, f"the image's pins differ from the developers': {runtime - dev}"


def test_the_installed_wheel_finds_every_services_migrations(tmp_path: Path) -> None:
    """Built and installed as the image does (not editable), then run without the source tree
    on the path: `kefu setup`'s alembic configuration finds each service's revisions."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("kefu-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "services/need_analyzer/adapters/linear-model.npz" in names
    assert any(name.startswith("services/console/templates/") for name in names)
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=120,
    )
    # -S: no site-packages .pth files, so the editable install of this tree is not on the path;
    # the dependencies come from this interpreter's site-packages, Kefu from the wheel.
    dependencies = next(p for p in sys.path if p.endswith("site-packages"))
    heads = subprocess.run(
        [sys.executable, "-S", "-c", FIND_HEADS],
        env={"PYTHONPATH": f"{target}{os.pathsep}{dependencies}", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    ).stdout.split()
    assert len(heads) == len(SERVICES)
    for service, line in zip(SERVICES, heads, strict=True):
        name, location, head = line.split(",")
        assert name == service
        assert Path(location).is_relative_to(target), location
        assert head != "None", service


FIND_HEADS = """
from alembic.script import ScriptDirectory
from deploy.database import alembic_config
from shared.settings import SERVICES
for service in SERVICES:
    script = ScriptDirectory.from_config(alembic_config(service, "postgresql://kefu@localhost/x"))
    print(f"{service},{script.dir},{script.get_current_head()}")
"""


def locked_names(lock: str) -> set[str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return {normalise(name) for name in re.findall(r"^([A-Za-z0-9._-]+)==", text, re.MULTILINE)}


def normalise(requirement: str) -> str:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_locked() -> None:
    """A dependency added to pyproject.toml without `make lock` would not be installed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {normalise(r) for r in project["dependencies"]}
    extras = {normalise(r) for group in project["optional-dependencies"].values() for r in group}
    assert runtime - locked_names("requirements.lock") == set(), "run make lock"
    assert (runtime | extras) - locked_names("requirements-dev.lock") == set(), "run make lock"
