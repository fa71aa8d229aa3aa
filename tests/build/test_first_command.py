# SPDX-License-Identifier: ISC
"""The README's first commands on a fresh machine, and tests that never read
the host's configuration.

A fresh machine is simulated without one: a clean copy of the tree is built
with a pkg-config on PATH that answers only once scripts/bootstrap has run
(bootstrap's first step, dpkg-query, is what lets it answer).  Before the fix
this failed exactly as on a new Debian 12 machine: make read the libraries
before bootstrap installed them, and linking build/taskexec failed."""
import os
import shutil
import subprocess
import tempfile
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What the outer "make check" exports for its own build: a nested make in the
# copy must find its own binaries, not these.
OUTER = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "SANDBOX_SUITE_TASKEXEC",
         "ITEST_TASKEXECD", "ITEST_TASKEXEC", "CHAOS_TASKEXECD")


def clean_copy(dest):
    """The tracked and new (not ignored) files of this tree, as a clone would have them."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, names):
        src = os.path.join(ROOT, os.fsdecode(name))
        if not os.path.lexists(src):
            continue            # deleted in the working tree, not yet committed
        dst = os.path.join(dest, os.fsdecode(name))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return dest


@pytest.fixture
def fresh(tmp_path):
    """(tree, env, marker): a clean copy, and an environment whose pkg-config
    knows no library until bootstrap has started."""
    # Like a real checkout, the copy must be readable by the job user, which
    # pytest's own 0700 temporary directories are not.
    top = tempfile.mkdtemp(prefix="taskexec-fresh.")
    os.chmod(top, 0o755)
    tree = clean_copy(os.path.join(top, "tree"))
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "bootstrapped"
    (fake / "pkg-config").write_text(textwrap.dedent("""\
        #!/bin/sh
        [ -e %s ] || { echo "Package $* was not found (bootstrap has not run)" >&2; exit 1; }
        exec %s "$@"
        """ % (marker, shutil.which("pkg-config"))))
    (fake / "dpkg-query").write_text(textwrap.dedent("""\
        #!/bin/sh
        touch %s
        exec %s "$@"
        """ % (marker, shutil.which("dpkg-query"))))
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in OUTER}
    env["PATH"] = "%s:%s" % (fake, env["PATH"])
    yield tree, env, marker
    shutil.rmtree(top)


def make(tree, env, *args, timeout=600):
    return subprocess.run(["make", *args], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_fake_pkg_config_knows_nothing_before_bootstrap(fresh):
    tree, env, marker = fresh
    r = make(tree, env, "all")
    assert r.returncode != 0
    assert "libraries missing; run scripts/bootstrap" in r.stderr
    assert not marker.exists()


def test_make_demo_succeeds_the_first_time(fresh):
    tree, env, marker = fresh
    r = make(tree, env, "demo")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert marker.exists()
    assert '"updated_rows": 17' in r.stdout
    assert "COMPLETED" in r.stdout


def test_make_check_succeeds_the_first_time(fresh):
    tree, env, marker = fresh
    # The whole build, unit tests and man-page lint; one quick suite stands in
    # for the rest of tests/, which this very suite runs already.
    r = make(tree, env, "check", "TESTS=tests/shim/test_shim_params.py")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[  PASSED  ]" in r.stdout + r.stderr        # cmocka's unit tests ran
    assert " passed" in r.stdout.splitlines()[-1]


def test_unit_tests_never_read_the_host_configuration(tmp_path):
    """Built for a host whose taskexec.conf and policy.d are hostile, the unit
    tests still pass: they read only what they name."""
    etc = tmp_path / "etc"
    (etc / "policy.d").mkdir(parents=True)
    (etc / "taskexec.conf").write_text("TASKEXEC_CONCURRENCY=zero\nTASKEXEC_JOB_USER=root\n")
    (etc / "policy.d" / "etl.policy").write_text("[nonsense\n")
    env = {k: v for k, v in os.environ.items() if k not in OUTER}
    r = make(ROOT, env, "B=%s" % (tmp_path / "build"), "SYSCONFDIR=%s" % etc, "unit")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[  PASSED  ]" in r.stdout + r.stderr
