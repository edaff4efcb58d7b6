"""Spec 1.3 fields and runc 1.2-1.5's command line (issue 13): what kiln does with each, seen
from the host and from inside the container."""

import json
import os
import signal
import socket
import threading
import re

import pytest

from conftest import runc_deviates
from test_cgroups import cg_read, start_detached


def test_version_names_libseccomp(ctx):
    r = ctx.rt("--version", glob=[])
    assert r.ok, r
    assert re.search(r"^libseccomp: \d+\.\d+\.\d+$", r.out, re.M), r.out


def test_global_criu_flag_is_accepted(ctx):
    # Older clients pass --criu before every command.
    r = ctx.rt("--criu", "/usr/sbin/criu", "--root", ctx.root, "list", glob=[])
    assert r.ok, r


def test_run_no_subreaper_is_accepted(ctx):
    ctx.sh("exit 3")
    _, r = ctx.run("--no-subreaper")
    assert r.rc == 3, r


@runc_deviates("runc 1.1.5 has no update --cpu-burst / --cpu-idle")
def test_update_cpu_burst_and_idle(ctx):
    cid, pid, _ = start_detached(ctx, "sleep 100")
    r = ctx.rt("update", "--cpu-period", "100000", "--cpu-quota", "50000",
               "--cpu-burst", "20000", "--cpu-idle", "1", cid)
    assert r.ok, r
    assert cg_read(pid, "cpu", "cpu.cfs_burst_us", "cpu.max.burst") == "20000"
    assert cg_read(pid, "cpu", "cpu.idle", "cpu.idle") == "1"
    r = ctx.rt("update", "--cpu-idle", "0", cid)
    assert r.ok, r
    assert cg_read(pid, "cpu", "cpu.idle", "cpu.idle") == "0"
    ctx.delete(cid, force=True)


def test_update_rdt_schemas_are_refused_naming_the_flag(ctx):
    cid, _, _ = start_detached(ctx, "sleep 100")
    r = ctx.rt("update", "--l3-cache-schema", "L3:0=f", cid)
    assert r.rc == 1 and re.search(r"l3.cache.schema", r.err, re.I), r
    ctx.delete(cid, force=True)


def rdt_refused(ctx, rdt):
    ctx.config["linux"]["intelRdt"] = rdt
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc == 1, r
    assert "intelRdt" in r.err, r
    assert cid not in ctx.list_ids()
    return r


def test_intel_rdt_schema_without_resctrl_is_refused(ctx):
    rdt_refused(ctx, {"l3CacheSchema": "L3:0=f"})


@runc_deviates("runc 1.1.5 ignores an intelRdt with only a closID when resctrl is absent")
def test_intel_rdt_closid_without_resctrl_is_refused_saying_why(ctx):
    r = rdt_refused(ctx, {"closID": "kilntest"})
    assert "resctrl" in r.err, r


def test_oci_version_1_3_0_is_accepted(ctx):
    ctx.config["ociVersion"] = "1.3.0"
    assert ctx.run_sh("echo ok").strip() == "ok"


@runc_deviates("runc 1.1.5 implements runtime-spec 1.0.2 and says so")
def test_features_oci_version_max_is_1_3_0_and_such_a_config_runs(ctx):
    r = ctx.rt("features", glob=[])
    assert r.rc == 0, r
    f = json.loads(r.out)
    assert f["ociVersionMax"] == "1.3.0", f["ociVersionMax"]
    ctx.config["ociVersion"] = f["ociVersionMax"]
    ctx.config["process"]["execCPUAffinity"] = {"initial": "0", "final": "0"}
    ctx.config["linux"]["memoryPolicy"] = {"mode": "MPOL_PREFERRED", "nodes": "0"}
    # The policy of init's own mappings (execCPUAffinity is for exec'd processes only).
    assert int(ctx.run_sh("grep -c prefer:0 /proc/self/numa_maps").strip()) > 0


@runc_deviates("runc 1.1.5 does not claim intelRdt in features, yet accepts a closID it does not apply")
def test_features_intel_rdt_claim_matches_create(ctx):
    r = ctx.rt("features", glob=[])
    assert r.ok, r
    claimed = json.loads(r.out)["linux"].get("intelRdt", {}).get("enabled", False)
    ctx.config["linux"]["intelRdt"] = {"closID": "kilntest"}
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.ok == claimed, (claimed, r)
    if r.ok:
        ctx.delete(cid, force=True)


class FdListener:
    """A unix socket that takes one fd sent with SCM_RIGHTS, in a thread (bounded)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.fds = []
        self.thread = threading.Thread(target=self._take)
        self.thread.start()

    def _take(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(10)
                _, self.fds, _, _ = socket.recv_fds(conn, 64, 4)
        except OSError:
            pass

    def close(self):
        self.thread.join(15)
        self.sock.close()
        for fd in self.fds:
            os.close(fd)


def fdinfo_pid(fd):
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return int(re.search(r"^Pid:\s*(-?\d+)", f.read(), re.M).group(1))


@runc_deviates("runc 1.1.5 has no --pidfd-socket")
def test_create_sends_init_pidfd(ctx):
    listener = FdListener(os.path.join(ctx.dir, "pidfd.sock"))
    ctx.cleanups.append(listener.close)
    ctx.sh("sleep 100")
    cid, _ = ctx.create(None, "--pidfd-socket", listener.path)
    listener.thread.join(10)
    assert len(listener.fds) == 1, listener.fds
    assert fdinfo_pid(listener.fds[0]) == ctx.state(cid)["pid"]
    signal.pidfd_send_signal(listener.fds[0], signal.SIGKILL)
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


@runc_deviates("runc 1.1.5 has no --pidfd-socket")
def test_run_sends_init_pidfd(ctx):
    listener = FdListener(os.path.join(ctx.dir, "pidfd.sock"))
    ctx.cleanups.append(listener.close)
    ctx.sh("echo $$")
    _, r = ctx.run("--pidfd-socket", listener.path)
    assert r.rc == 0, r
    listener.thread.join(10)
    assert len(listener.fds) == 1, listener.fds
    # The process has exited and was reaped: its pidfd says so.
    assert fdinfo_pid(listener.fds[0]) == -1


@runc_deviates("runc 1.1.5 has no --pidfd-socket")
def test_pidfd_socket_missing_leaves_nothing(ctx):
    ctx.sh("true")
    cid, r = ctx.create(None, "--pidfd-socket", os.path.join(ctx.dir, "nosuch.sock"), check=False)
    assert r.rc == 1 and "--pidfd-socket" in r.err, r
    assert cid not in ctx.list_ids()


@runc_deviates("runc 1.1.5 has no --pidfd-socket")
def test_exec_sends_the_process_pidfd(ctx):
    listener = FdListener(os.path.join(ctx.dir, "pidfd.sock"))
    ctx.cleanups.append(listener.close)
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    pidfile = os.path.join(ctx.dir, "exec.pid")
    r = ctx.rt("exec", "-d", "--pid-file", pidfile, "--pidfd-socket", listener.path,
               cid, "sleep", "100")
    assert r.ok, r
    listener.thread.join(10)
    assert len(listener.fds) == 1, listener.fds
    with open(pidfile) as f:
        pid = int(f.read())
    ctx.track(pid)
    assert fdinfo_pid(listener.fds[0]) == pid
    ctx.delete(cid, force=True)


@runc_deviates("runc 1.1.5's features do not mention netDevices, which it ignores")
def test_features_net_devices_and_memory_policy_claims_match_create(ctx):
    r = ctx.rt("features", glob=[])
    assert r.ok, r
    linux = json.loads(r.out)["linux"]
    for field, value, claimed in [
        ("netDevices", {"kilnnosuch0": {}}, linux["netDevices"]["enabled"]),
        ("memoryPolicy", {"mode": "MPOL_PREFERRED"},
         "MPOL_PREFERRED" in linux["memoryPolicy"]["modes"]),
    ]:
        config = json.loads(json.dumps(ctx.config))
        config["linux"][field] = value
        config["process"]["args"] = ["true"]
        ctx.save(config)
        cid, r = ctx.create(None, save=False, check=False)
        if claimed:
            # A claimed field is applied: the missing device is then refused by name.
            assert r.ok or "kilnnosuch0" in r.err, (field, r)
        else:
            assert r.rc == 1 and field in r.err, (field, r)
        if r.ok:
            ctx.delete(cid, force=True)
