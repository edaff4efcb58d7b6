"""Spec 1.3's placement of a container's processes (issue 13): `process.execCPUAffinity` for
exec'd processes and `linux.memoryPolicy` for all of them, seen from inside the container
(/proc/self/status, /proc/self/numa_maps) and in what `create` and `exec` report. This host
has 2 CPUs and one NUMA node."""

import json
import os
import re

import pytest

from conftest import CALL_TIMEOUT, Result, run_to_files, runc_deviates, wait_for


def cpus_of(status_text):
    return re.search(r"^Cpus_allowed_list:\s*(\S+)", status_text, re.M).group(1)


def host_cpus():
    with open("/sys/devices/system/cpu/online") as f:
        return f.read().strip()


def start(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    return cid


def refused(ctx, field):
    """create fails on one line naming `field`, and leaves no container behind."""
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc == 1 and field in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert cid not in ctx.list_ids()
    return r


needs_two_cpus = pytest.mark.skipif(os.cpu_count() < 2, reason="needs 2 CPUs")

# ---------------------------------------------------------------- execCPUAffinity


@needs_two_cpus
@runc_deviates("runc 1.1.5 ignores process.execCPUAffinity")
def test_exec_runs_on_final_and_starts_on_initial(ctx):
    ctx.config["process"]["execCPUAffinity"] = {"initial": "0", "final": "1"}
    cid = start(ctx)
    try:
        # Init is not an exec'd process: it keeps every CPU of its cpuset.
        with open(f"/proc/{ctx.state(cid)['pid']}/status") as f:
            assert cpus_of(f.read()) == host_cpus()
        r = ctx.rt("--debug", "exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
        assert r.ok, r
        assert cpus_of(r.out) == "1", r
        # The setup, before the cgroup, ran on "initial" (runc's debug line).
        assert "affinity: 0x1" in r.err, r
    finally:
        ctx.delete(cid, force=True)


@needs_two_cpus
@runc_deviates("runc 1.1.5 ignores execCPUAffinity")
def test_exec_process_file_affinity_is_its_own(ctx):
    cid = start(ctx)
    try:
        for initial, final, mask in [("1", "0", "0x2"), ("0-1", "1", "0x3")]:
            proc = {"args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
                    "execCPUAffinity": {"initial": initial, "final": final}}
            path = os.path.join(ctx.dir, "process.json")
            with open(path, "w") as f:
                json.dump(proc, f)
            r = ctx.rt("--debug", "exec", "--process", path, cid)
            assert r.ok, r
            assert cpus_of(r.out) == final, r
            assert f"affinity: {mask}" in r.err, r
    finally:
        ctx.delete(cid, force=True)


@needs_two_cpus
@pytest.mark.needs_cgroups
@runc_deviates("runc 1.1.5 ignores execCPUAffinity (and its exec --ignore-paused hangs)")
def test_exec_into_a_paused_container_gets_final_once_resumed(ctx):
    ctx.config["process"]["execCPUAffinity"] = {"final": "1"}
    cid = start(ctx)
    try:
        assert ctx.rt("pause", cid).ok
        pid_file = os.path.join(ctx.dir, "exec.pid")
        r = ctx.rt("exec", "-d", "--ignore-paused", "--pid-file", pid_file, cid, "sleep", "100")
        assert r.ok, r
        with open(pid_file) as f:
            pid = int(f.read())
        ctx.track(pid)
        assert ctx.rt("resume", cid).ok

        def ran_pinned():
            with open(f"/proc/{pid}/status") as f:
                text = f.read()
            return "\tsleep\n" in text and cpus_of(text) == "1"
        assert wait_for(ran_pinned, 5)
    finally:
        ctx.delete(cid, force=True)


def pinned(ctx, *args):
    """The runtime run under `taskset -c 0`, as a caller pinned to one CPU runs it."""
    cmd = ["taskset", "-c", "0", ctx.runtime, "--root", ctx.root, *map(str, args)]
    return Result(run_to_files(cmd, CALL_TIMEOUT, cwd=ctx.dir, tmp=ctx.dir))


@needs_two_cpus
@runc_deviates("runc 1.1.5 passes on the CPU affinity it was started with")
def test_the_runtimes_own_affinity_is_not_inherited(ctx):
    """Init, and an exec'd process without execCPUAffinity, get every CPU of the container's
    cpuset, not the pinning of the runtime's caller."""
    ctx.sh("grep Cpus_allowed_list /proc/self/status")
    ctx.save()
    r = pinned(ctx, "run", "--bundle", ctx.bundle, ctx.new_id())
    assert r.rc == 0, r
    assert cpus_of(r.out) == host_cpus(), r
    cid = start(ctx)
    try:
        r = pinned(ctx, "exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
        assert r.ok, r
        assert cpus_of(r.out) == host_cpus(), r
    finally:
        ctx.delete(cid, force=True)


@pytest.mark.parametrize("field,value,why", [
    ("initial", "0-99999999", "99999999 is above"),
    ("final", "3-1", "3-1"),
])
@runc_deviates("runc 1.1.5 ignores execCPUAffinity")
def test_a_bad_cpu_list_is_refused_naming_the_field(ctx, field, value, why):
    ctx.config["process"]["execCPUAffinity"] = {field: value}
    r = refused(ctx, f"process.execCPUAffinity.{field}")
    assert why in r.err, r


@runc_deviates("runc 1.1.5 ignores execCPUAffinity")
def test_garbage_in_a_cpu_list_is_refused_naming_the_field(ctx):
    # oci-spec's own check of the format, when the config is read.
    ctx.config["process"]["execCPUAffinity"] = {"initial": "0,x"}
    r = refused(ctx, "process.execCPUAffinity")
    assert "0,x" in r.err, r


@runc_deviates("runc 1.1.5 ignores execCPUAffinity")
def test_exec_on_a_cpu_the_host_lacks_fails_naming_the_field(ctx):
    cid = start(ctx)
    try:
        proc = {"args": ["true"], "cwd": "/", "execCPUAffinity": {"final": "1000"}}
        path = os.path.join(ctx.dir, "process.json")
        with open(path, "w") as f:
            json.dump(proc, f)
        r = ctx.rt("exec", "--process", path, cid)
        assert r.rc != 0 and "execCPUAffinity.final" in r.err, r
        assert "Invalid argument" in r.err, r
        # The container is untouched.
        assert ctx.state(cid)["status"] == "running"
    finally:
        ctx.delete(cid, force=True)


# ---------------------------------------------------------------- memoryPolicy


def policy_seen(text):
    """The policy numa_maps shows for the first mapping: the task's, which every mapping
    without one of its own follows ("bind:0", "prefer:0", "interleave:0", "default")."""
    return text.split()[1]


@pytest.mark.parametrize("mode,shown", [
    ("MPOL_BIND", "bind:0"),
    ("MPOL_PREFERRED", "prefer:0"),
    ("MPOL_INTERLEAVE", "interleave:0"),
])
@runc_deviates("runc 1.1.5 ignores linux.memoryPolicy")
def test_memory_policy_applies_to_init_and_exec(ctx, mode, shown):
    ctx.config["linux"]["memoryPolicy"] = {"mode": mode, "nodes": "0"}
    assert policy_seen(ctx.run_sh("head -n1 /proc/self/numa_maps")) == shown
    cid = start(ctx)
    try:
        r = ctx.rt("exec", cid, "head", "-n1", "/proc/self/numa_maps")
        assert r.ok, r
        assert policy_seen(r.out) == shown, r
    finally:
        ctx.delete(cid, force=True)


@runc_deviates("runc 1.1.5 ignores linux.memoryPolicy")
def test_memory_policy_flags_reach_the_kernel(ctx):
    ctx.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0",
                                           "flags": ["MPOL_F_STATIC_NODES"]}
    out = ctx.run_sh("head -n1 /proc/self/numa_maps")
    assert policy_seen(out) == "bind=static:0", out


def test_no_memory_policy_leaves_the_default(ctx):
    assert policy_seen(ctx.run_sh("head -n1 /proc/self/numa_maps")) == "default"


@runc_deviates("runc 1.1.5 ignores linux.memoryPolicy")
def test_a_node_the_host_lacks_is_refused_by_the_kernel(ctx):
    ctx.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "1"}
    r = refused(ctx, "linux.memoryPolicy")
    assert "Invalid argument" in r.err and "MPOL_BIND" in r.err, r


@pytest.mark.parametrize("policy,field", [
    ({"mode": "MPOL_NOSUCH", "nodes": "0"}, "linux.memoryPolicy.mode"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOSUCH"]}, "linux.memoryPolicy.flags"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0-x"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0",
      "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}, "linux.memoryPolicy.flags"),
])
@runc_deviates("runc 1.1.5 ignores linux.memoryPolicy")
def test_a_bad_memory_policy_is_refused_naming_the_field(ctx, policy, field):
    ctx.config["linux"]["memoryPolicy"] = policy
    refused(ctx, field)
