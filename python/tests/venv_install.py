"""The package installs into a fresh Debian venv, offline, and passes its tests there.

    /usr/bin/python3 python/tests/venv_install.py [PYTHON_DIR]

Copies PYTHON_DIR (default: the python/ directory this file is in) to a
temporary directory (pip builds in the tree it is given: the source tree stays
clean), makes a venv with ``python3 -m venv`` (its own pip and setuptools,
nothing else; no ``wheel``), runs

    venv/bin/pip install --no-index --no-build-isolation ./python

then checks what was installed (the package and py.typed in the venv's
site-packages, the version) and runs the unit tests with the venv's
interpreter from a directory holding only the tests, so that every import of
lmdisc, also in the child processes the tests start, is the installed one.
Last, ``pip wheel`` gives one pure ``py3-none-any`` wheel and ``pip
uninstall`` removes every installed file. Exit 0 on success; the output says
what failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile


def run(argv: list[str], cwd: str | None = None, env: dict | None = None, timeout: float = 300) -> str:
    print("+ " + " ".join(argv), flush=True)
    cp = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=timeout)
    out = cp.stdout.decode("utf-8", "replace")
    if cp.returncode != 0:
        sys.stdout.write(out)
        raise SystemExit(f"FAILED (exit {cp.returncode}): {' '.join(argv)}")
    return out


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}", flush=True)


def main() -> None:
    src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    python = sys.executable
    tmp = tempfile.mkdtemp(prefix="lmdisc-venv-")
    try:
        tree = os.path.join(tmp, "python")
        shutil.copytree(src, tree, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
        # offline and on its own: no index, no user or site pip configuration, no cache
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_NO_INPUT="1", PYTHONDONTWRITEBYTECODE="1")

        venv = os.path.join(tmp, "venv")
        try:
            run([python, "-m", "venv", venv], env=env)
        except SystemExit:
            raise SystemExit(f"{python} -m venv failed: on Debian, install python3-venv") from None
        vpy = os.path.join(venv, "bin", "python")
        have = run([vpy, "-c", "import importlib.util as u; print([m for m in ('pip', 'setuptools', 'wheel', "
                    "'lmdisc') if u.find_spec(m)])"], cwd=tmp, env=env).strip()
        check(have == "['pip', 'setuptools']", f"the fresh venv has pip and setuptools only ({have})")

        run([vpy, "-m", "pip", "install", "--no-index", "--no-build-isolation", "./python"], cwd=tmp, env=env)

        info = run([vpy, "-c", "import importlib.metadata as m, os, lmdisc; d = os.path.dirname(lmdisc.__file__); "
                    "print(d); print(m.version('lmdisc'), lmdisc.__version__); "
                    "print(os.path.exists(os.path.join(d, 'py.typed')))"], cwd=tmp, env=env).split("\n")
        check(info[0].startswith(os.path.join(venv, "lib")) and info[0].endswith("site-packages/lmdisc"),
              f"lmdisc is installed in the venv's site-packages ({info[0]})")
        dist_version, pkg_version = info[1].split()
        check(dist_version == pkg_version, f"the distribution's version is the package's ({info[1]})")
        check(info[2] == "True", "py.typed is installed (PEP 561)")

        # the tests, away from the source of the package: only the installed lmdisc can be imported
        tests = os.path.join(tmp, "t")
        shutil.copytree(os.path.join(src, "tests"), os.path.join(tests, "tests"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        if os.path.isdir(os.path.join(src, "examples")):
            shutil.copytree(os.path.join(src, "examples"), os.path.join(tests, "examples"),
                            ignore=shutil.ignore_patterns("__pycache__"))
        test_env = dict(env)
        if os.environ.get("LMDISC_BIN"):
            test_env["LMDISC_BIN"] = os.environ["LMDISC_BIN"]
        where = run([vpy, "-c", "import lmdisc; print(lmdisc.__file__)"], cwd=tests, env=test_env).strip()
        check(where.startswith(venv), f"the tests import the installed lmdisc ({where})")
        out = run([vpy, "-m", "unittest", "discover", "-s", "tests", "-t", "."], cwd=tests, env=test_env)
        tail = out.strip().splitlines()[-1] if out.strip() else ""
        check(tail.startswith("OK"), f"the installed package passes its tests ({tail})")

        dist = os.path.join(tmp, "dist")
        run([vpy, "-m", "pip", "wheel", "--no-index", "--no-build-isolation", "--no-deps", "-w", dist, "./python"],
            cwd=tmp, env=env)
        wheels = os.listdir(dist)
        check(wheels == [f"lmdisc-{pkg_version}-py3-none-any.whl"], f"one pure wheel ({wheels})")
        names = zipfile.ZipFile(os.path.join(dist, wheels[0])).namelist()
        check(all(n.startswith(("lmdisc/", "lmdisc-")) for n in names) and "lmdisc/py.typed" in names,
              "the wheel holds the package (with py.typed) and its metadata only")

        run([vpy, "-m", "pip", "uninstall", "-y", "lmdisc"], cwd=tmp, env=env)
        left = run([vpy, "-c", "import importlib.util as u; print(u.find_spec('lmdisc') is None)"], cwd=tmp, env=env)
        check(left.strip() == "True", "pip uninstall removes the package")
        site = info[0].rsplit("/", 1)[0]
        check(not [n for n in os.listdir(site) if n.startswith("lmdisc")], "nothing of lmdisc is left in site-packages")
        print("PASS", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
