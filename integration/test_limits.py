"""Huge arrays in config.json: mounts, maskedPaths, readonlyPaths, seccomp syscall names, device
rules (linux.resources.devices), device nodes (linux.devices), hooks. Each is either handled
(the container works, and sees every entry) or refused before the container exists, in one
line that names the field and the limit, with exit 1 and nothing left behind (the ctx
teardown checks processes, mounts, state and cgroups).

The lists here are 20,000 long where that is handled, to keep the suite quick; the figures for
100,000 were measured by hand (see the issue). No test times anything: a runtime that is
quadratic in one of these lists fails here by its 60-second call timeout, not by a bound that a
loaded machine could break. The thousands of directories the tests need are made on tmpfs
(this project's disks discard on every rmdir: 20,000 of them take a minute to remove).
"""

import os
import re
import shutil
import tempfile

import pytest

from conftest import IS_KILN

# Handled lists are this long.
N = 20_000
# A runtime call over a list of N: generous, since a linear runtime takes a few seconds here.
LONG_CALL = 60


def mount_max():
    with open("/proc/sys/fs/mount-max") as f:
        return int(f.read())


def assert_refused(ctx, r, cid, field, *limit_words):
    """exit 1, one line naming `field` and (kiln's words) the limit, no container left."""
    assert r.rc == 1, r
    text = r.err.strip()
    assert "\n" not in text, f"more than one line: {r.err!r}"
    if IS_KILN:
        assert field in text, text
        for w in limit_words:
            assert w in text, text
    assert ctx.rt("state", cid).rc != 0
    assert not os.path.exists(os.path.join(ctx.root, cid))


def tmpfs_at(ctx, dest):
    """A tmpfs at `dest` in the container, for the mount points of the mounts below it."""
    ctx.add_mount({"destination": dest, "type": "tmpfs", "source": "tmpfs"})


def host_tmpfs_dir(ctx, dest):
    """A directory on the host's /dev/shm, bound at `dest` in the container; removed at the end."""
    d = tempfile.mkdtemp(prefix="kilntest-", dir="/dev/shm")
    ctx.cleanups.append(lambda: shutil.rmtree(d, ignore_errors=True))
    ctx.add_mount({"destination": dest, "type": "bind", "source": d, "options": ["rbind"]})
    return d


def run_inside(ctx, script):
    """A foreground run of `script` over the huge config; its stdout."""
    ctx.sh(script)
    _, r = ctx.run(timeout=LONG_CALL)
    assert r.rc == 0, r
    return r.out


# ------------------------------------------------------------------------------ mounts


def test_twenty_thousand_mounts_are_all_mounted(ctx):
    tmpfs_at(ctx, "/m")
    for i in range(N):
        ctx.add_mount({"destination": f"/m/{i}", "type": "tmpfs", "source": "tmpfs",
                       "options": ["size=4k"]})
    out = run_inside(ctx, "awk '$5 ~ \"^/m/\"' /proc/self/mountinfo | wc -l; "
                          f"echo x > /m/{N - 1}/f && cat /m/{N - 1}/f")
    assert out.split() == [str(N), "x"], out


def test_more_mounts_than_the_kernel_allows_are_refused(ctx):
    """/proc/sys/fs/mount-max bounds the mounts of one namespace: a list longer than that
    cannot work, and is refused naming the limit, not with ENOSPC's "No space left on
    device" after making as many mounts as fit."""
    tmpfs_at(ctx, "/m")
    for i in range(mount_max()):
        ctx.add_mount({"destination": f"/m/{i}", "type": "tmpfs", "source": "tmpfs"})
    ctx.sh("true")
    cid, r = ctx.create(check=False, timeout=LONG_CALL)
    assert_refused(ctx, r, cid, "mounts", "/proc/sys/fs/mount-max")


# ---------------------------------------------------------------- readonly and masked paths


def test_twenty_thousand_readonly_paths_are_all_read_only(ctx):
    ctx.config["root"]["readonly"] = False
    host = host_tmpfs_dir(ctx, "/ro")
    for i in range(N):
        os.makedirs(os.path.join(host, str(i)))
    ctx.config["linux"]["readonlyPaths"] += [f"/ro/{i}" for i in range(N)]
    out = run_inside(ctx, f"""
        awk '$5 ~ "^/ro/[0-9]+$" && $6 ~ "^ro(,|$)"' /proc/self/mountinfo | wc -l
        for d in /ro/0 /ro/{N // 2} /ro/{N - 1}; do touch $d/f 2>/dev/null && echo wrote || echo refused; done
        touch /ro/f && echo wrote""")
    assert out.split() == [str(N), "refused", "refused", "refused", "wrote"], out


def test_readonly_path_keeps_what_is_mounted_below_it(ctx):
    """As runc's recursive bind: a mount below a read-only path stays visible (and its own),
    whatever number of paths the list holds; a symlinked path is made read-only where it
    leads."""
    ctx.config["root"]["readonly"] = False
    for i in range(100):
        os.makedirs(os.path.join(ctx.rootfs, "ro", str(i)))
    os.symlink("/ro/1", os.path.join(ctx.rootfs, "rolink"))
    ctx.add_mount({"destination": "/ro/0/sub", "type": "tmpfs", "source": "tmpfs"})
    ctx.config["linux"]["readonlyPaths"] += ["/rolink"] + [f"/ro/{i}" for i in range(100)]
    out = run_inside(ctx, """
        for d in /ro/0 /ro/0/sub /ro/1 /ro/2; do touch $d/f 2>/dev/null && echo wrote || echo refused; done""")
    assert out.split() == ["refused", "wrote", "refused", "refused"], out


def test_twenty_thousand_masked_paths_are_all_masked(ctx):
    host = host_tmpfs_dir(ctx, "/mdir")
    for i in range(N // 2):
        os.makedirs(os.path.join(host, str(i)))
        with open(os.path.join(host, str(i), "secret"), "w") as f:
            f.write("secret\n")
        with open(os.path.join(host, f"f{i}"), "w") as f:
            f.write("secret\n")
    ctx.config["linux"]["maskedPaths"] += [f"/mdir/{i}" for i in range(N // 2)]
    ctx.config["linux"]["maskedPaths"] += [f"/mdir/f{i}" for i in range(N // 2)]
    last = N // 2 - 1
    out = run_inside(ctx, f"cat /mdir/f0 /mdir/f{last} | wc -c; ls -A /mdir/0 /mdir/{last} | "
                          "grep -c secret; awk '$5 ~ \"^/mdir/\"' /proc/self/mountinfo | wc -l")
    assert out.split() == ["0", "0", str(N)], out


# ------------------------------------------------------------------------------ seccomp


def syscall_names():
    with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as f:
        return re.findall(r"#define __NR_(\w+) ", f.read())


def test_twenty_thousand_seccomp_names_are_all_filtered(ctx):
    """One rule naming 20,000 syscalls: every real name (given again and again) and names no
    kernel has; the ones the shell needs to start are left out."""
    spare = {"mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "symlink", "symlinkat",
             "link", "linkat", "chmod", "fchmodat", "truncate"}
    names = [n for n in syscall_names() if n in spare]
    listed = [names[i % len(names)] if i % 2 else f"no_such_call_{i}" for i in range(N)]
    ctx.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": listed, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    ctx.config["root"]["readonly"] = False
    out = run_inside(ctx, "mkdir /newdir 2>&1; ln -s / /newlink 2>&1; echo done")
    assert out.count("Operation not permitted") == 2, out
    assert out.strip().endswith("done"), out


def test_seccomp_rules_beyond_the_kernels_program_size_are_refused(ctx):
    """A seccomp program holds at most 4096 instructions (BPF_MAXINSNS): 5000 distinct rules
    cannot fit. Refused in create, naming the limit (runc only fails when the kernel refuses
    the program, with "invalid argument")."""
    ctx.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 10 + i, "op": "SCMP_CMP_EQ"}]}
                     for i in range(5000)],
    }
    ctx.sh("true")
    cid, r = ctx.create(check=False, timeout=LONG_CALL)
    assert_refused(ctx, r, cid, "linux.seccomp.syscalls", "4096", "BPF_MAXINSNS")


# ------------------------------------------------------------------------------ devices

# kiln's limit on linux.resources.devices.
MAX_DEVICE_RULES = 10_000


def device_rules(n):
    """Deny all, then n-1 allows of char devices no host has (major 200+)."""
    return [{"allow": False, "access": "rwm"}] + [
        {"allow": True, "type": "c", "major": 200 + i // 1000, "minor": i % 1000, "access": "r"}
        for i in range(n - 1)]


def v1_devices_list(cid):
    with open("/proc/self/cgroup") as f:
        own = [l.split(":", 2)[2] for l in f.read().splitlines() if l.split(":")[1] == "devices"]
    for base in (own[0].lstrip("/") if own else "", ""):
        path = os.path.join("/sys/fs/cgroup/devices", base, cid, "devices.list")
        if os.path.exists(path):
            with open(path) as f:
                return f.read().splitlines()
    return None


@pytest.mark.needs_cgroups
def test_ten_thousand_device_rules_are_all_written(ctx):
    ctx.config["linux"]["resources"]["devices"] = device_rules(MAX_DEVICE_RULES)
    ctx.sh("sleep 100")
    cid, _ = ctx.create(timeout=LONG_CALL)
    listed = v1_devices_list(cid)
    assert listed is not None, "this host has the v1 devices controller"
    assert "c 200:0 r" in listed and f"c 209:{998} r" in listed, listed[:20]
    assert len(listed) >= MAX_DEVICE_RULES - 1
    ctx.delete(cid, force=True)


@pytest.mark.kiln_only
def test_device_rules_beyond_the_limit_are_refused(ctx):
    ctx.config["linux"]["resources"]["devices"] = device_rules(MAX_DEVICE_RULES + 1)
    ctx.sh("true")
    cid, r = ctx.create(check=False, timeout=LONG_CALL)
    assert_refused(ctx, r, cid, "linux.resources.devices", "10001 rules", "limit of 10000")


def test_twenty_thousand_device_nodes_are_all_made(ctx):
    ctx.config["linux"]["devices"] = [
        {"path": f"/dev/n/{i}", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
         "uid": 0, "gid": 0} for i in range(N)]
    out = run_inside(ctx, f"ls /dev/n | wc -l; ls -l /dev/n/{N - 1} | cut -c1")
    assert out.split() == [str(N), "c"], out


# ------------------------------------------------------------------------------ hooks

MAX_HOOKS = 1000


def test_a_thousand_hooks_all_run(ctx):
    log = os.path.join(ctx.dir, "hooks.log")
    ctx.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo {i} >> {log}"]} for i in range(MAX_HOOKS)]}
    run_inside(ctx, "true")
    with open(log) as f:
        assert f.read().split() == [str(i) for i in range(MAX_HOOKS)]


@pytest.mark.kiln_only
def test_more_hooks_than_the_limit_are_refused(ctx):
    """Each hook is a process run in turn: 100,000 of them would hold create for minutes.
    runc runs them all."""
    ctx.config["hooks"] = {"poststart": [{"path": "/bin/true"}] * (MAX_HOOKS + 1)}
    ctx.sh("true")
    cid, r = ctx.create(check=False, timeout=LONG_CALL)
    assert_refused(ctx, r, cid, "hooks.poststart", f"{MAX_HOOKS + 1} hooks", "limit of 1000")
