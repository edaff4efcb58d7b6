"""hack/install (make install) as an operator or a packager runs it: into a DESTDIR."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import RUNTIME

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ["create", "start", "run", "state", "exec", "kill", "delete", "list", "spec",
            "pause", "resume", "ps", "update", "events", "features",
            "checkpoint", "restore"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    env = dict(os.environ, DESTDIR=str(dest), PREFIX="/usr/local", KILN_BINARY=RUNTIME)
    p = subprocess.run([os.path.join(REPO, "hack/install")], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    yield dest / "usr/local"
    shutil.rmtree(dest, ignore_errors=True)


@pytest.mark.kiln_only
def test_install_puts_the_runtime_in_sbin(installed):
    kiln = installed / "sbin/kiln"
    assert os.access(kiln, os.X_OK), kiln
    r = subprocess.run([kiln, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("kiln version "), r


@pytest.mark.kiln_only
def test_install_man_pages_render(installed):
    man8 = installed / "share/man/man8"
    pages = sorted(p.name for p in man8.iterdir())
    assert pages == sorted(["kiln.8"] + [f"kiln-{c}.8" for c in COMMANDS]), pages
    if not shutil.which("man"):
        pytest.fail("man is not installed (hack/setup installs man-db)")
    for name, synopsis in [("kiln", "kiln"), ("kiln-create", "kiln create"),
                           ("kiln-exec", "kiln exec")]:
        r = subprocess.run(["man", "-l", str(man8 / f"{name}.8")], capture_output=True,
                           text=True, timeout=30, env=dict(os.environ, MANPAGER="cat",
                                                           MANWIDTH="100"))
        assert r.returncode == 0, r.stderr
        assert re.search(r"^NAME\n\s+" + re.escape(name) + r" - \S", r.stdout, re.M), r.stdout
        # (man justifies the line: the words may be apart by more than one space)
        words = r"\s+".join(map(re.escape, synopsis.split()))
        assert re.search(r"^SYNOPSIS\n\s+" + words + r"\s", r.stdout, re.M), r.stdout
    # kiln(8) lists every command and each option of create's page is kiln's own
    top = (man8 / "kiln.8").read_text()
    for c in COMMANDS:
        assert f"kiln\\-{c}(8)" in top, c
    assert "\\-\\-console\\-socket" in (man8 / "kiln-create.8").read_text()


@pytest.mark.kiln_only
def test_install_bash_completion_completes_commands_and_flags(installed):
    comp = installed / "share/bash-completion/completions/kiln"
    script = (f"source {comp} || exit 9; complete -p kiln || exit 8; "
              "COMP_WORDS=(kiln cr); COMP_CWORD=1; COMP_LINE='kiln cr'; COMP_POINT=7; "
              "_kiln kiln cr kiln; echo \"${COMPREPLY[*]}\"; "
              "COMP_WORDS=(kiln create --con); COMP_CWORD=2; COMP_LINE='kiln create --con'; "
              "COMP_POINT=17; _kiln kiln --con create; echo \"${COMPREPLY[*]}\"")
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("complete ") and lines[0].endswith(" kiln"), lines
    assert lines[1].split() == ["create"], lines
    assert lines[2].split() == ["--console-socket"], lines


@pytest.mark.kiln_only
def test_install_zsh_and_fish_completions(installed):
    zsh = installed / "share/zsh/site-functions/_kiln"
    fish = installed / "share/fish/vendor_completions.d/kiln.fish"
    assert zsh.read_text().startswith("#compdef kiln"), zsh
    text = fish.read_text()
    for c in ("create", "exec", "delete"):
        assert re.search(rf"-a \"{c}\"", text), c
    for shell, path in (("zsh", zsh), ("fish", fish)):
        if shutil.which(shell):
            r = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True,
                               timeout=30)
            assert r.returncode == 0, (shell, r.stderr)
