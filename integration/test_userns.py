"""User namespaces with several mapping ranges, and rootless containers.

As root: the runtime writes uid_map and gid_map itself, and the host sees the
container's ids through them. As an unprivileged user made for the test (its
own subordinate ids, XDG_RUNTIME_DIR and bundle): `spec --rootless`, `run`,
`list`, `delete`, mappings through newuidmap/newgidmap, and what cannot work
without privileges (a range not granted, limits without a delegated cgroup,
commands that need the container's cgroup) fails clearly and leaves nothing.
"""

import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import CALL_TIMEOUT, IS_KILN, RUNTIME, Result, pid_alive, run_to_files, wait_for
from test_faults import SEED as FAULT_SEED

ROOT_MAPS = [
    {"containerID": 0, "hostID": 100000, "size": 1000},
    {"containerID": 1000, "hostID": 200000, "size": 1000},
]


def host_ids(pid, field):
    """The real ids of `pid` as the host sees them (the Uid:/Gid: line of status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {field} line in /proc/{pid}/status")


def map_lines(text):
    return [l.split() for l in text.strip().splitlines()]


# ------------------------------------------------------------ as root


@pytest.mark.parametrize("uid,host", [(0, 100000), (1000, 200000), (1500, 200500)])
def test_several_ranges_as_root(ctx, uid, host):
    shared = ctx.hostdir("shared")
    os.chmod(shared, 0o777)
    # The container's root is not the owner of the rootfs: the mount point must exist.
    os.mkdir(os.path.join(ctx.rootfs, "shared"))
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = ROOT_MAPS
    ctx.config["linux"]["gidMappings"] = ROOT_MAPS
    ctx.config["process"]["user"] = {"uid": uid, "gid": uid}
    ctx.add_mount({"destination": "/shared", "type": "bind", "source": shared,
                   "options": ["rbind", "rw"]})
    ctx.sh("{ cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; id -g; }"
           " > /shared/out.tmp && touch /shared/made && mv /shared/out.tmp /shared/out"
           " && exec sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid = ctx.state(cid)["pid"]
    out = os.path.join(shared, "out")
    assert wait_for(lambda: os.path.exists(out), 5), "the container wrote nothing"
    with open(out) as f:
        uid_map, gid_map, ids = f.read().split("--\n")
    want = [["0", "100000", "1000"], ["1000", "200000", "1000"]]
    assert map_lines(uid_map) == want
    assert map_lines(gid_map) == want
    assert ids.split() == [str(uid), str(uid)]
    with open(f"/proc/{pid}/uid_map") as f:
        assert map_lines(f.read()) == want
    with open(f"/proc/{pid}/gid_map") as f:
        assert map_lines(f.read()) == want
    assert host_ids(pid, "Uid") == [host] * 4
    assert host_ids(pid, "Gid") == [host] * 4
    st = os.stat(os.path.join(shared, "made"))
    assert (st.st_uid, st.st_gid) == (host, host)
    ctx.delete(cid, force=True)
    ctx.assert_gone(cid, pid)


# ------------------------------------------------------------ rootless


class User:
    """An unprivileged user made for one test, running the runtime as itself."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.name = "kilnrl" + uuid.uuid4().hex[:8]
        self.uid = None

    def setup(self):
        ctx = self.ctx
        subprocess.run(["useradd", "--no-create-home", "--user-group",
                        "--shell", "/usr/sbin/nologin", self.name],
                       check=True, timeout=20)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.runtime = os.path.join(ctx.dir, "bin", os.path.basename(RUNTIME))
        self.sub_uid = self._subid("/etc/subuid")
        self.sub_gid = self._subid("/etc/subgid")
        self.xdg = os.path.join(ctx.dir, "xdg")
        os.mkdir(self.xdg, 0o700)
        os.chown(self.xdg, self.uid, self.gid)
        self.root = os.path.join(self.xdg, "kiln" if IS_KILN else os.path.basename(RUNTIME))
        # Its own copy of the runtime: the build tree may not be open to other users.
        os.mkdir(os.path.dirname(self.runtime), 0o755)
        shutil.copy(RUNTIME, self.runtime)
        os.chmod(self.runtime, 0o755)
        # The bundle directory is the user's (spec writes config.json); the rootfs stays
        # root's, read-only to the container as the rootless spec has it.
        os.chown(ctx.bundle, self.uid, self.gid)

    def _subid(self, path):
        """The user's subordinate range (useradd gives one where login.defs says so),
        or a new one from far above any that useradd hands out."""
        with open(path) as f:
            for line in f:
                name, start, count = line.strip().split(":")
                if name == self.name:
                    return int(start), int(count)
        start = 1_000_000_000 + (int(uuid.uuid4().hex[:6], 16) % 1000) * 65536
        with open(path, "a") as f:
            f.write(f"{self.name}:{start}:65536\n")
        return start, 65536

    def env(self, xdg=True):
        e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "USER": self.name}
        if xdg:
            e["XDG_RUNTIME_DIR"] = self.xdg
        return e

    def rt(self, *args, xdg=True, timeout=CALL_TIMEOUT, cgroup=None):
        """The runtime as this user, with its default --root; output in files, not pipes
        (a detached container keeps them open). `cgroup`: a cgroup v2 directory to start
        in, as a login session delegated to the user would."""
        cmd = self.cmd(*args)
        if cgroup is not None:
            cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] + cmd
        return Result(run_to_files(cmd, timeout, cwd=self.ctx.bundle, env=self.env(xdg), tmp=self.ctx.dir))

    def cmd(self, *args):
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                self.runtime] + [str(a) for a in args]

    def config(self):
        with open(os.path.join(self.ctx.bundle, "config.json")) as f:
            return json.load(f)

    def save(self, config):
        path = os.path.join(self.ctx.bundle, "config.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=1)
        os.chown(path, self.uid, self.gid)

    def spec(self, args):
        """`spec --rootless` as the user, made non-interactive with `args`."""
        r = self.rt("spec", "--rootless")
        assert r.ok, r
        c = self.config()
        c["process"]["terminal"] = False
        c["process"]["args"] = args
        self.save(c)
        return c

    def ids(self):
        r = self.rt("list", "-q", timeout=10)
        return r.out.split() if r.ok else []

    def pids(self):
        out = []
        for ent in os.listdir("/proc"):
            try:
                if ent.isdigit() and os.stat(f"/proc/{ent}").st_uid == self.uid:
                    out.append(int(ent))
            except OSError:
                pass
        return out

    def remove(self):
        """Everything setup made, whatever state a failed test left: its containers,
        its processes, the user, its group and its subordinate ids."""
        if self.uid is not None:
            if os.path.exists(self.runtime):
                for cid in self.ids():
                    self.rt("delete", "--force", cid, timeout=15)
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            wait_for(lambda: not self.pids(), 5)
        subprocess.run(["userdel", self.name], timeout=20, stderr=subprocess.DEVNULL)
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path) as f:
                lines = f.readlines()
            keep = [l for l in lines if not l.startswith(self.name + ":")]
            if keep != lines:
                with open(path, "w") as f:
                    f.writelines(keep)


@pytest.fixture
def user(ctx):
    u = User(ctx)
    try:
        u.setup()
        yield u
    finally:
        u.remove()
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            assert u.name not in f.read()
    with pytest.raises(KeyError):
        pwd.getpwnam(u.name)
    assert not u.pids()


def test_rootless_spec_run_list_delete(user):
    cfg = user.spec(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"])
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert cfg["linux"]["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    r = user.rt("run", "fg")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[:2] == ["0", "0"]
    assert map_lines("\n".join(lines[2:])) == [["0", str(user.uid), "1"]]
    assert not os.path.exists(os.path.join(user.root, "fg")), "run without --keep deletes"

    cfg["process"]["args"] = ["sleep", "100"]
    user.save(cfg)
    r = user.rt("run", "--detach", "bg")
    assert r.rc == 0, r
    st = os.stat(os.path.join(user.root, "bg", "state.json"))
    assert st.st_uid == user.uid
    assert not os.path.exists("/run/kiln/bg")
    r = user.rt("state", "bg")
    assert r.ok, r
    pid = json.loads(r.out)["pid"]
    user.ctx.track(pid)
    assert host_ids(pid, "Uid") == [user.uid] * 4
    assert host_ids(pid, "Gid") == [user.gid] * 4
    with open(f"/proc/{pid}/uid_map") as f:
        assert map_lines(f.read()) == [["0", str(user.uid), "1"]]
    r = user.rt("list")
    assert r.ok, r
    row = [l.split() for l in r.out.splitlines() if l.startswith("bg ")]
    assert row and row[0][2] == "running" and row[0][-1] == user.name, r.out
    r = user.rt("delete", "--force", "bg")
    assert r.ok, r
    assert wait_for(lambda: not pid_alive(pid), 5)
    assert user.ids() == []
    assert os.listdir(user.root) == []


def test_rootless_subordinate_ranges(user):
    sub_u, sub_g = user.sub_uid[0], user.sub_gid[0]
    cfg = user.spec(["sleep", "100"])
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                   {"containerID": 1, "hostID": sub_u, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                   {"containerID": 1, "hostID": sub_g, "size": 65536}]
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    user.save(cfg)
    r = user.rt("run", "--detach", "sub")
    assert r.rc == 0, r
    pid = json.loads(user.rt("state", "sub").out)["pid"]
    user.ctx.track(pid)
    assert host_ids(pid, "Uid") == [sub_u + 999] * 4
    assert host_ids(pid, "Gid") == [sub_g + 999] * 4
    with open(f"/proc/{pid}/uid_map") as f:
        assert map_lines(f.read()) == [["0", str(user.uid), "1"], ["1", str(sub_u), "65536"]]
    with open(f"/proc/{pid}/gid_map") as f:
        assert map_lines(f.read()) == [["0", str(user.gid), "1"], ["1", str(sub_g), "65536"]]
    assert user.rt("delete", "--force", "sub").ok
    assert wait_for(lambda: not pid_alive(pid), 5)


def test_rootless_range_not_granted_fails_and_leaves_nothing(user):
    start, count = user.sub_uid
    cfg = user.spec(["true"])
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                   {"containerID": 1, "hostID": start + count, "size": 1000}]
    user.save(cfg)
    r = user.rt("run", "nope")
    assert r.rc != 0, r
    if IS_KILN:
        assert len(r.err.strip().splitlines()) == 1, r
        assert "linux.uidMappings" in r.err and "newuidmap" in r.err and "/etc/subuid" in r.err, r
    assert user.ids() == []
    assert not os.path.exists(os.path.join(user.root, "nope"))


def test_rootless_memory_limit_without_delegation_fails(user):
    cfg = user.spec(["true"])
    cfg["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    user.save(cfg)
    r = user.rt("run", "limited")
    assert r.rc != 0, r
    if IS_KILN:
        assert len(r.err.strip().splitlines()) == 1, r
        assert "linux.resources" in r.err and "delegate" in r.err, r
    else:
        assert "cannot set memory limit" in r.err, r
    assert user.ids() == []
    assert not os.path.exists(os.path.join(user.root, "limited"))


def test_rootless_without_cgroup_ps_pause_kill_all_fail(user):
    user.spec(["sleep", "100"])
    r = user.rt("run", "--detach", "nocg")
    assert r.rc == 0, r
    pid = json.loads(user.rt("state", "nocg").out)["pid"]
    user.ctx.track(pid)
    for args in (["ps", "nocg"], ["pause", "nocg"], ["kill", "--all", "nocg", "KILL"]):
        r = user.rt(*args)
        assert r.rc != 0, r
        if IS_KILN:
            assert len(r.err.strip().splitlines()) == 1, r
            assert "no cgroup" in r.err, r
    assert pid_alive(pid)
    assert json.loads(user.rt("state", "nocg").out)["status"] == "running"
    # The container's init still takes signals, and delete ends it.
    assert user.rt("kill", "nocg", "KILL").ok
    assert wait_for(lambda: not pid_alive(pid), 5)
    assert user.rt("delete", "nocg").ok
    assert user.ids() == []


def test_rootless_create_killed_at_any_moment_leaves_no_process(user):
    """Without a cgroup to search, a `create` killed at any moment (during init's setup, its
    hooks, or before it saved init's pid in state.json) still leaves init findable: `delete
    --force` ends every process of the container."""
    user.spec(["sleep", "100"])
    seed = FAULT_SEED
    rng = random.Random(f"{seed}-rootless-create")
    times = []
    for i in range(3):
        t0 = time.monotonic()
        assert user.rt("create", f"t{i}").ok
        times.append(time.monotonic() - t0)
        assert user.rt("delete", "--force", f"t{i}").ok
    r = user.rt("create", "nocg")
    assert r.ok, r
    assert user.rt("ps", "nocg").rc != 0, "the container must have no cgroup for this test"
    assert user.rt("delete", "--force", "nocg").ok
    span = sorted(times)[1]
    for i in range(40):
        cid = f"k{i}"
        delay = rng.uniform(0, span * 1.1)
        with tempfile.TemporaryFile(dir=user.ctx.dir) as out:
            p = subprocess.Popen(user.cmd("create", cid), cwd=user.ctx.bundle, env=user.env(),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            time.sleep(delay)
            p.kill()
            p.wait(timeout=CALL_TIMEOUT)
        where = f"seed {seed}, trial {i}, killed after {delay * 1000:.1f} ms"
        r = user.rt("delete", "--force", cid)
        assert r.rc == 0, f"{where}: {r}"
        assert wait_for(lambda: not user.pids(), 3), f"{where}: left {user.pids()}"
        assert not os.path.lexists(os.path.join(user.root, cid)), f"{where}: state left"


@pytest.mark.kiln_only
def test_rootless_without_xdg_runtime_dir_needs_root_flag(user):
    r = user.rt("list", xdg=False)
    assert r.rc != 0, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert "XDG_RUNTIME_DIR" in r.err and "--root" in r.err, r
    r = user.rt("--root", os.path.join(user.xdg, "elsewhere"), "list", "-q", xdg=False)
    assert r.ok and r.out == "", r


@pytest.mark.kiln_only
def test_rootless_sysfs_without_a_network_namespace_is_explained(user):
    cfg = user.spec(["true"])
    for m in cfg["mounts"]:
        if m["destination"] == "/sys":
            m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])
    user.save(cfg)
    r = user.rt("run", "sysfs")
    assert r.rc != 0 and len(r.err.strip().splitlines()) == 1, r
    assert "mount sysfs" in r.err and "network namespace" in r.err, r
    assert user.ids() == []


@pytest.mark.kiln_only
def test_rootless_additional_gids_need_mapped_groups(user):
    cfg = user.spec(["id", "-G"])
    cfg["process"]["user"]["additionalGids"] = [0]
    user.save(cfg)
    r = user.rt("run", "gids")
    # With setgroups denied, the groups cannot be set: say so rather than drop them.
    assert r.rc != 0 and "process.user.additionalGids" in r.err and len(r.err.strip().splitlines()) == 1, r
    assert user.ids() == []


def pure_cgroup_v2():
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@pytest.mark.kiln_only
@pytest.mark.skipif(not pure_cgroup_v2(), reason="needs a pure cgroup v2 host to delegate a subtree (hack/test runs this in the v2 guest)")
def test_rootless_delegated_cgroup_v2(user):
    # What systemd's Delegate= gives a user: a subtree it owns, with controllers enabled, and
    # its session in a leaf of it. The container's cgroup goes beside the session.
    base = f"/sys/fs/cgroup/kilntest-deleg-{user.name}"
    session = os.path.join(base, "session")
    os.mkdir(base)
    try:
        with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
            f.write("+memory +pids")
        os.mkdir(session)
        for p in (base, *(os.path.join(base, f) for f in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"))):
            os.chown(p, user.uid, user.gid)
        cfg = user.spec(["sleep", "100"])
        cfg["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
        user.save(cfg)
        r = user.rt("run", "--detach", "deleg", cgroup=session)
        assert r.ok, r
        pid = json.loads(user.rt("state", "deleg").out)["pid"]
        user.ctx.track(pid)
        container = os.path.join(base, "deleg")
        assert open(f"/proc/{pid}/cgroup").read().strip() == "0::" + container[len("/sys/fs/cgroup"):]
        assert open(os.path.join(container, "memory.max")).read().strip() == str(64 << 20)
        assert open(os.path.join(container, "pids.max")).read().strip() == "50"
        r = user.rt("ps", "deleg")
        assert r.ok and "sleep" in r.out, r
        assert user.rt("delete", "--force", "deleg").ok
        assert not os.path.exists(container)
    finally:
        for d in (os.path.join(base, "deleg"), session, base):
            if os.path.isdir(d):
                for pid in open(os.path.join(d, "cgroup.procs")).read().split():
                    os.kill(int(pid), signal.SIGKILL)
                wait_for(lambda: not open(os.path.join(d, "cgroup.procs")).read().strip(), 5)
                os.rmdir(d)


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_bind_source_the_mapped_root_cannot_reach(ctx, kind):
    """A bind source below a host directory of mode 0700 (owned by the host's root, which the
    container's root is not): opened with the host's privileges, it still mounts, and (a shared
    mount on the host) receives the host's mounts but sends none back, as a bind of a source
    the container could reach would."""
    locked = ctx.hostdir("locked")
    os.chmod(locked, 0o700)
    src = os.path.join(locked, "data")
    if kind == "dir":
        os.mkdir(src)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", src], check=True, timeout=10)
        ctx.cleanups.append(lambda: subprocess.run(["umount", "-l", src], timeout=10))
        subprocess.run(["mount", "--make-shared", src], check=True, timeout=10)
        with open(os.path.join(src, "hello"), "w") as f:
            f.write("hi\n")
        dest, path = "/data", "/data/hello"
    else:
        with open(src, "w") as f:
            f.write("hi\n")
        dest, path = "/data", "/data"
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = ROOT_MAPS
    ctx.config["linux"]["gidMappings"] = ROOT_MAPS
    ctx.add_mount({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "ro"]})
    # The container's root does not own the rootfs: the mount point must exist.
    if kind == "dir":
        os.mkdir(os.path.join(ctx.rootfs, "data"))
    else:
        open(os.path.join(ctx.rootfs, "data"), "w").close()
    out = ctx.run_sh(f"cat {path}; touch {path} 2>/dev/null || echo read-only; "
                     "grep ' /data ' /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines[:2] == ["hi", "read-only"], out
    optional = lines[2].split(" - ")[0].split()[6:]
    assert not any(f.startswith("shared:") for f in optional), lines[2]
    if kind == "dir":
        assert any(f.startswith("master:") for f in optional), lines[2]


def test_rootless_without_a_user_namespace_is_explained(user):
    cfg = user.spec(["true"])
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "user"]
    for k in ("uidMappings", "gidMappings"):
        cfg["linux"].pop(k, None)
    user.save(cfg)
    r = user.rt("--rootless", "true", "run", "nouserns")
    assert r.rc != 0 and len(r.err.strip().splitlines()) == 1, r
    assert "rootless container requires user namespaces" in r.err, r
    assert user.ids() == [] and not user.pids()


def _userns_with_oom_score_adj(ctx, adj):
    ctx.config["linux"]["namespaces"].append({"type": "user"})
    ctx.config["linux"]["uidMappings"] = ROOT_MAPS
    ctx.config["linux"]["gidMappings"] = ROOT_MAPS
    ctx.config["process"]["oomScoreAdj"] = adj
    return ctx.run_sh("cat /proc/self/oom_score_adj").strip()


def test_oom_score_adj_unchanged_in_a_user_namespace(ctx):
    # Podman sets the value the runtime already has; writing it from inside the user
    # namespace fails (EACCES) though it changes nothing.
    with open("/proc/self/oom_score_adj") as f:
        current = int(f.read())
    assert _userns_with_oom_score_adj(ctx, current) == str(current)


def test_oom_score_adj_raised_in_a_user_namespace(ctx):
    with open("/proc/self/oom_score_adj") as f:
        raised = min(int(f.read()) + 100, 1000)
    assert _userns_with_oom_score_adj(ctx, raised) == str(raised)
