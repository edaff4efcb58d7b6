"""NOTIFY_SOCKET (sd_notify) through the runtime, as runc relays it: the container reports to a
socket of the runtime's at /run/notify/notify.sock, and `start` / `run -d` return once it sent
READY=1, having passed READY=1 and MAINPID (init's host pid) to the caller's socket."""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import IS_KILN, compile_static, runc_deviates, wait_for

SENDER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
/* Each argument is one datagram to $NOTIFY_SOCKET (a leading @: abstract). */
int main(int argc, char **argv) {
  const char *p = getenv("NOTIFY_SOCKET");
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (!p || strlen(p) >= sizeof a.sun_path) return 2;
  memcpy(a.sun_path, p, strlen(p));
  if (a.sun_path[0] == '@') a.sun_path[0] = 0;
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  for (int i = 1; i < argc; i++)
    if (sendto(fd, argv[i], strlen(argv[i]), 0, (struct sockaddr *)&a,
               sizeof(sa_family_t) + strlen(p)) < 0) { perror("sendto"); return 1; }
  return 0;
}
"""


@pytest.fixture(scope="session")
def sender_exe(session_dir):
    exe, r = compile_static(session_dir, "notify-send", SENDER)
    assert r.returncode == 0, r.stderr
    return exe


class Listener:
    """The caller's socket: a unix datagram socket, path or abstract (`@name`)."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.sock.setblocking(False)

    def env(self):
        return dict(os.environ, NOTIFY_SOCKET=self.name)

    def lines(self):
        """Every line received so far, across datagrams."""
        out = []
        while True:
            try:
                out += self.sock.recv(65536).decode().splitlines()
            except BlockingIOError:
                return out

    def close(self):
        self.sock.close()
        if not self.name.startswith("@"):
            os.unlink(self.name)


@pytest.fixture
def notify(ctx, sender_exe):
    shutil.copy(sender_exe, os.path.join(ctx.rootfs, "bin", "notify-send"))
    out = ctx.hostdir("out")
    ctx.add_mount({"destination": "/out", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    lst = Listener(os.path.join(ctx.dir, "host.sock"))
    yield lst, out
    lst.close()


# Reports what the container sees, sleeps so that a runtime that does not wait is caught
# returning early, then gets ready and stays.
READY_SCRIPT = ('echo "$NOTIFY_SOCKET" > /out/env; [ -S "$NOTIFY_SOCKET" ] && echo yes > /out/sock; '
                'sleep 1; notify-send STATUS=starting "READY=1\nSTATUS=up\nMAINPID=1"; '
                'touch /out/sent; sleep 60')


def read(out, name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def check_ready(ctx, cid, lst, out, main_pid):
    lines = lst.lines()
    assert "READY=1" in lines, lines
    # The container's own MAINPID is dropped; the runtime names the pid to watch.
    assert [l for l in lines if l.startswith("MAINPID=")] == [f"MAINPID={main_pid}"], lines
    if IS_KILN:
        # kiln passes STATUS lines too (runc only the READY line).
        assert "STATUS=starting" in lines and "STATUS=up" in lines, lines
    assert read(out, "env") == "/run/notify/notify.sock"
    assert read(out, "sock") == "yes"
    assert json.loads(ctx.rt("state", cid).out)["status"] == "running"


def test_start_returns_once_ready(ctx, notify):
    lst, out = notify
    ctx.sh(READY_SCRIPT)
    cid, _ = ctx.create(env=lst.env())
    pid = ctx.state(cid)["pid"]
    assert read(out, "env") is None
    r = ctx.rt("start", cid, env=lst.env())
    assert r.ok, r
    check_ready(ctx, cid, lst, out, pid)
    ctx.delete(cid, force=True)


def test_run_detached_returns_once_ready(ctx, notify):
    lst, out = notify
    ctx.sh(READY_SCRIPT)
    cid, r = ctx.run("-d", env=lst.env())
    assert r.ok, r
    check_ready(ctx, cid, lst, out, ctx.state(cid)["pid"])
    ctx.delete(cid, force=True)


def test_abstract_caller_socket(ctx, notify):
    _, out = notify
    lst = Listener("@kilntest-" + uuid.uuid4().hex)
    try:
        ctx.sh(READY_SCRIPT)
        cid, r = ctx.run("-d", env=lst.env())
        assert r.ok, r
        check_ready(ctx, cid, lst, out, ctx.state(cid)["pid"])
        ctx.delete(cid, force=True)
    finally:
        lst.close()


def test_foreground_run_relays(ctx, notify):
    lst, out = notify
    ctx.sh('sleep 1; notify-send READY=1 && notify-send STATUS=later; exit 3')
    _, r = ctx.run(env=lst.env())
    assert r.rc == 3, r
    lines = lst.lines()
    assert lines[0] == "READY=1" and lines[1].startswith("MAINPID="), lines
    if IS_KILN:
        # kiln goes on relaying while it waits (runc reads nothing after READY).
        assert lines[2:] == ["STATUS=later"], lines


def test_foreground_run_relays_what_came_with_the_exit(ctx, notify):
    """The program's last reports and its exit reach the runtime at once, as on a loaded
    machine that left the runtime unscheduled meanwhile (here it is stopped): they still go."""
    lst, out = notify
    go = os.path.join(out, "go")
    os.mkfifo(go)
    ctx.sh("read x < /out/go; notify-send READY=1 && notify-send STATUS=later; exit 3")
    ctx.save()
    cid = ctx.new_id()
    cmd = [ctx.runtime, "--root", ctx.root, "run", "--bundle", ctx.bundle, cid]
    with tempfile.TemporaryFile(dir=ctx.dir) as fe:
        p = subprocess.Popen(cmd, cwd=ctx.dir, env=lst.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=fe)
        try:
            assert wait_for(lambda: running_pid(ctx, cid), 10), ctx.rt("state", cid)
            pid = running_pid(ctx, cid)
            os.kill(p.pid, signal.SIGSTOP)
            # The container opens the fifo once its shell runs: until then there is no reader.
            assert wait_for(lambda: open_writer(go), 10)
            # init exits unreaped: the runtime, stopped, has read nothing of this.
            assert wait_for(lambda: proc_state(pid) == "Z", 10), proc_state(pid)
            os.kill(p.pid, signal.SIGCONT)
            rc = p.wait(timeout=20)
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait(timeout=10)
        fe.seek(0)
        assert rc == 3, fe.read()
    lines = lst.lines()
    assert lines[0] == "READY=1" and lines[1].startswith("MAINPID="), lines
    if IS_KILN:
        assert lines[2:] == ["STATUS=later"], lines


def running_pid(ctx, cid):
    r = ctx.rt("state", cid)
    st = json.loads(r.out) if r.ok else {}
    if st.get("status") != "running":
        return None
    ctx.track(st["pid"])
    return st["pid"]


def open_writer(fifo):
    """Writes a line into `fifo` if it has a reader; False if it has none yet."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False
        raise
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)
    return True


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_start_of_a_program_that_exits_without_ready(ctx, notify):
    lst, _ = notify
    ctx.sh("sleep 1; exit 5")
    cid, _ = ctx.create(env=lst.env())
    r = ctx.rt("start", cid, env=lst.env())
    assert r.ok, r
    assert ctx.wait_status(cid, "stopped")
    assert lst.lines() == []
    ctx.delete(cid)


@runc_deviates("run -d waits for READY forever once its unreaped child exited")
def test_run_detached_of_a_program_that_exits_without_ready(ctx, notify):
    lst, _ = notify
    ctx.sh("sleep 1; exit 5")
    cid, r = ctx.run("-d", env=lst.env(), timeout=8)
    assert r.ok, r
    assert ctx.wait_status(cid, "stopped")
    assert lst.lines() == []
    ctx.delete(cid)


@runc_deviates("a foreground run waits for READY forever, even after the container exited")
def test_foreground_run_without_ready(ctx, notify):
    lst, _ = notify
    ctx.sh("exit 4")
    _, r = ctx.run(env=lst.env(), timeout=8)
    assert r.rc == 4, r


def test_caller_socket_missing(ctx, notify):
    """runc's behaviour: `start` starts the container, then fails to reach the caller (exit 1);
    `run -d` and a foreground run go on without relaying."""
    env = dict(os.environ, NOTIFY_SOCKET=os.path.join(ctx.dir, "nowhere"))
    ctx.sh("sleep 60")
    cid, _ = ctx.create(env=env)
    r = ctx.rt("start", cid, env=env)
    assert r.rc == 1 and "nowhere" in r.err, r
    assert json.loads(ctx.rt("state", cid).out)["status"] == "running"
    ctx.delete(cid, force=True)
    cid, r = ctx.run("-d", env=env)
    assert r.ok, r
    assert json.loads(ctx.rt("state", cid).out)["status"] == "running"
    ctx.delete(cid, force=True)
    ctx.sh("exit 3")
    _, r = ctx.run(env=env)
    assert r.rc == 3, r


def test_without_notify_socket_nothing_changes(ctx, notify):
    _, out = notify
    ctx.sh('echo "${NOTIFY_SOCKET-unset}" > /out/env; [ -e /run/notify ] || echo none > /out/sock')
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    _, r = ctx.run(env=env)
    assert r.ok, r
    assert read(out, "env") == "unset" and read(out, "sock") == "none"
