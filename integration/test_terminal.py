"""process.terminal with --console-socket: the runtime sends the pty master
over an AF_UNIX socket with SCM_RIGHTS, as Podman's conmon and containerd's
shim expect."""

import array
import os
import select
import socket
import tempfile
import threading
import time

import pytest


class ConsoleServer:
    """Listens on a unix socket, receives one fd (the pty master)."""

    def __init__(self):
        # unix socket paths are limited to 108 bytes: keep it short
        self.dir = tempfile.mkdtemp(prefix="kcs-")
        self.path = os.path.join(self.dir, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.master = None
        self.msg = None
        self.error = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(20)
                msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
                self.msg = msg
                assert len(fds) == 1, fds
                self.master = fds[0]
        except Exception as e:  # reported by wait_master
            self.error = e

    def wait_master(self, timeout=20):
        self.thread.join(timeout)
        assert self.error is None, self.error
        assert self.master is not None, "no pty master received on the console socket"
        return self.master

    def read_until_eof(self, timeout=10, stop=None):
        """Read from the master until the slave side is closed (EIO), or
        `stop` appears in the output, or `timeout` seconds pass."""
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.2)
            if not r:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every slave fd closed
                break
            if not chunk:
                break
            out += chunk
            if stop is not None and stop in out:
                break
        return out.decode(errors="replace")

    def close(self):
        if self.master is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.rmdir(self.dir)


@pytest.fixture
def console(ctx):
    s = ConsoleServer()
    ctx.cleanups.append(s.close)
    return s


def terminal_config(ctx, script):
    ctx.config["process"]["terminal"] = True
    ctx.sh(script)


def test_console_socket_create_start(ctx, console):
    terminal_config(ctx, "readlink /proc/self/fd/0; readlink /proc/self/fd/1; tty; "
                         "stat -c '%t %T' /dev/console; echo done-marker")
    cid, r = ctx.create(None, "--console-socket", console.path)
    master = console.wait_master()
    assert os.isatty(master)
    ctx.start(cid)
    out = console.read_until_eof()
    lines = [l.strip() for l in out.splitlines()]
    assert "done-marker" in lines, out
    assert lines[0] == "/dev/pts/0", out
    assert lines[1] == "/dev/pts/0", out
    assert lines[2] == "/dev/pts/0", out
    # /dev/console is the pty too (major 136 = 0x88)
    assert lines[3].split()[0] == "88", out
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


def test_console_socket_run_detach(ctx, console):
    terminal_config(ctx, "test -t 0 && test -t 1 && test -t 2 && echo all-ttys")
    cid, r = ctx.run("-d", "--console-socket", console.path)
    assert r.rc == 0, r
    console.wait_master()
    out = console.read_until_eof()
    assert "all-ttys" in out, out
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


def test_console_input(ctx, console):
    terminal_config(ctx, "read line; echo got:$line:end")
    cid, _ = ctx.create(None, "--console-socket", console.path)
    master = console.wait_master()
    ctx.start(cid)
    os.write(master, b"hello kiln\n")
    out = console.read_until_eof(stop=b":end")
    assert "got:hello kiln:end" in out, out
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


def test_console_size(ctx, console):
    terminal_config(ctx, "stty size")
    ctx.config["process"]["consoleSize"] = {"height": 33, "width": 111}
    cid, _ = ctx.create(None, "--console-socket", console.path)
    console.wait_master()
    ctx.start(cid)
    out = console.read_until_eof()
    assert out.split() == ["33", "111"], out
    ctx.delete(cid, force=True)


def test_console_owned_by_user_group_from_devpts(ctx, console):
    """As runc: the pty goes to the process's user, and keeps the group devpts gave it
    (gid=5, tty, in the base config's devpts options), not the process's group."""
    terminal_config(ctx, "stat -c '%u %g %a' $(tty)")
    ctx.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    cid, _ = ctx.create(None, "--console-socket", console.path)
    console.wait_master()
    ctx.start(cid)
    out = console.read_until_eof()
    assert out.split() == ["1000", "5", "620"], out
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


def test_terminal_without_console_socket_fails(ctx):
    terminal_config(ctx, "true")
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    assert r.err.strip(), r
    assert ctx.list_ids() == []


def test_console_socket_without_terminal_fails(ctx, console):
    ctx.sh("true")
    cid, r = ctx.create(None, "--console-socket", console.path, check=False)
    assert r.rc != 0, r
    assert ctx.list_ids() == []


def test_console_socket_bad_path_fails(ctx):
    terminal_config(ctx, "true")
    cid, r = ctx.create(None, "--console-socket", os.path.join(ctx.dir, "nosock"),
                        check=False)
    assert r.rc != 0, r
    assert ctx.list_ids() == []
