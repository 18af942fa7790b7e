"""setuptools' build script for lmdisc: only a fallback ``bdist_wheel``.

The metadata is in pyproject.toml. setuptools before 70.1 (Debian 12 has 66)
takes its ``bdist_wheel`` command from the ``wheel`` package, which a fresh
``python3 -m venv`` does not have: ``pip install --no-index
--no-build-isolation ./python`` would stop at "invalid command 'bdist_wheel'".
When no ``bdist_wheel`` is installed, the one below builds this package's
wheel: pure Python, no dependencies, so a ``py3-none-any`` wheel (PEP 427)
of what ``build_py`` built, with the ``egg_info`` metadata as its
``.dist-info`` (METADATA, WHEEL, top_level.txt, RECORD). Where ``wheel`` or a
newer setuptools is installed, theirs is used.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import zipfile

from setuptools import Command, setup


def _have_bdist_wheel() -> bool:
    for mod in ("setuptools.command.bdist_wheel", "wheel.bdist_wheel"):
        try:
            __import__(mod)
            return True
        except ImportError:
            continue
    return False


class bdist_wheel(Command):  # noqa: N801 - setuptools' command name
    """A py3-none-any wheel of a pure-Python distribution without dependencies."""

    description = "build a pure-Python wheel (lmdisc's own, for when the wheel package is missing)"
    user_options = [("dist-dir=", "d", "directory to put the wheel in (default: dist)")]

    def initialize_options(self) -> None:
        self.dist_dir: str | None = None

    def finalize_options(self) -> None:
        if self.dist_dir is None:
            self.dist_dir = "dist"

    # used by setuptools' dist_info command (pip's metadata step) as well
    def egg2dist(self, egg_info_dir: str, dist_info_dir: str) -> None:
        """Turn an .egg-info directory into a .dist-info directory."""
        requires = os.path.join(egg_info_dir, "requires.txt")
        if os.path.exists(requires) and open(requires, encoding="utf-8").read().strip():
            raise RuntimeError("this bdist_wheel handles no dependencies: install the wheel package")
        if os.path.exists(dist_info_dir):
            shutil.rmtree(dist_info_dir)
        os.makedirs(dist_info_dir)
        shutil.copyfile(os.path.join(egg_info_dir, "PKG-INFO"), os.path.join(dist_info_dir, "METADATA"))
        top = os.path.join(egg_info_dir, "top_level.txt")
        if os.path.exists(top):
            shutil.copyfile(top, os.path.join(dist_info_dir, "top_level.txt"))

    def run(self) -> None:
        self.run_command("build_py")
        build_lib = self.get_finalized_command("build_py").build_lib
        self.run_command("egg_info")
        egg_info_dir = self.get_finalized_command("egg_info").egg_info
        name = self.distribution.get_name().replace("-", "_")
        version = self.distribution.get_version()
        dist_info = f"{name}-{version}.dist-info"
        staging = os.path.join(os.path.dirname(egg_info_dir) or ".", "build", "bdist-" + dist_info)
        self.egg2dist(egg_info_dir, staging)
        with open(os.path.join(staging, "WHEEL"), "w", encoding="utf-8") as f:
            f.write("Wheel-Version: 1.0\nGenerator: lmdisc setup.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n")

        files: list[tuple[str, str]] = []  # (path on disk, name in the wheel)
        for root, dirs, names in os.walk(build_lib):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for n in sorted(names):
                if n.endswith((".pyc", ".pyo")):
                    continue
                path = os.path.join(root, n)
                files.append((path, os.path.relpath(path, build_lib).replace(os.sep, "/")))
        for n in sorted(os.listdir(staging)):
            files.append((os.path.join(staging, n), f"{dist_info}/{n}"))

        os.makedirs(self.dist_dir, exist_ok=True)
        wheel = os.path.join(self.dist_dir, f"{name}-{version}-py3-none-any.whl")
        record = io.StringIO()
        writer = csv.writer(record, lineterminator="\n")
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
            for path, arc in files:
                with open(path, "rb") as f:
                    data = f.read()
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                writer.writerow([arc, f"sha256={digest}", len(data)])
                z.writestr(arc, data)
            writer.writerow([f"{dist_info}/RECORD", "", ""])
            z.writestr(f"{dist_info}/RECORD", record.getvalue())
        shutil.rmtree(staging)
        self.announce(f"wrote {wheel}", 2)


setup(cmdclass={} if _have_bdist_wheel() else {"bdist_wheel": bdist_wheel})
