# SPDX-License-Identifier: ISC
"""python3-taskexec as installed: `make install-client` stages the modules
where Debian keeps public ones, and they import from there alone.  The .deb
itself is checked in tests/packaging, which builds it."""
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "VERSION").read_text().strip()
SITE = "usr/lib/python3/dist-packages"


def _import_from(root):
    # -I: no user site, no PYTHONPATH, no current directory; only the staged root.
    code = ("import sys; sys.path.insert(0, %r); import taskexec; "
            "assert taskexec.__file__.startswith(%r), taskexec.__file__; "
            "print(taskexec.__version__, sorted(taskexec.__all__))" % (str(root), str(root)))
    return subprocess.run(["/usr/bin/python3", "-I", "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30)


def test_staged_install_imports(tmp_path):
    r = subprocess.run(["make", "-s", "-C", str(REPO), "install-client", "DESTDIR=%s" % tmp_path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    installed = sorted(p.name for p in (tmp_path / SITE / "taskexec").iterdir())
    assert installed == sorted(p.name for p in (REPO / "client" / "taskexec").glob("*.py"))
    r = _import_from(tmp_path / SITE)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == VERSION
