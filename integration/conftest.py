"""Fixtures for kiln's integration suite.

The runtime under test comes from $RUNTIME (default: target/release/kiln
under the repository root). Every test gets its own state root, its own
bundle (a copy of a busybox rootfs built once per session by
hack/mkrootfs.sh) and a config generated from a copy of what `runc spec`
writes. Teardown force-deletes whatever the test left and then fails the
test if any process, mount, state entry or cgroup of it survived.
"""

import copy
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.path.abspath(
    os.path.join(REPO, os.environ.get("RUNTIME", "target/release/kiln"))
)
RUNTIME_NAME = os.path.basename(RUNTIME)
IS_KILN = RUNTIME_NAME == "kiln"
IS_RUNC = RUNTIME_NAME == "runc"

# Podman and containerd fixtures (test_podman.py, test_containerd.py), defined once for the
# session: a fixture imported into two modules would be built twice.
pytest_plugins = ["clients"]

# Default timeout for one runtime call, seconds. Every subprocess call in
# the suite has a timeout.
CALL_TIMEOUT = 20

# What `runc spec` (1.1.5) writes, with process.terminal false so that a
# container can run without a console socket. Tests copy and mutate it.
BASE_CONFIG = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": [
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
        ],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    },
}


# Every container ID this session used, for the final cgroup check.
ALL_IDS = []


def base_config():
    return copy.deepcopy(BASE_CONFIG)


# ---------------------------------------------------------------- markers


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kiln_only: test of kiln's own behaviour; skipped for other runtimes"
    )
    config.addinivalue_line(
        "markers", "needs_cgroups: needs a runtime whose `features` reports cgroup support"
    )


def runtime_has_cgroups():
    """What the runtime itself claims in its OCI features document: a test of a cgroup
    feature runs as soon as the runtime says it has cgroups, and never against its word."""
    # Bounded, but not tight: kiln's features asks `criu check` (seconds in the qemu guest when
    # the machine is loaded, before its verdict is cached).
    r = subprocess.run([RUNTIME, "features"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return False
    cg = json.loads(r.stdout).get("linux", {}).get("cgroup", {})
    return bool(cg.get("v1") or cg.get("v2"))


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=f"kiln-specific; runtime is {RUNTIME_NAME}")
    no_cgroups = pytest.mark.skip(reason=f"{RUNTIME_NAME} features reports no cgroup support")
    has_cgroups = None
    for item in items:
        if "kiln_only" in item.keywords and not IS_KILN:
            item.add_marker(skip)
        if "needs_cgroups" in item.keywords:
            if has_cgroups is None:
                has_cgroups = runtime_has_cgroups()
            if not has_cgroups:
                item.add_marker(no_cgroups)


def runc_deviates(reason):
    """xfail (strict) for runc only: runc is known to deviate from the spec here."""
    return pytest.mark.xfail(IS_RUNC, reason=f"runc deviates: {reason}", strict=True)


def pytest_report_header(config):
    return f"runtime under test: {RUNTIME}"


def pytest_sessionstart(session):
    if not (os.path.isfile(RUNTIME) and os.access(RUNTIME, os.X_OK)):
        pytest.exit(
            f"runtime {RUNTIME} not found or not executable; build it "
            "(cargo build --release) or set RUNTIME=/path/to/runtime",
            returncode=4,
        )
    if os.geteuid() != 0:
        pytest.exit("the integration suite must run as root", returncode=4)


# ---------------------------------------------------------------- helpers


def cgroup_dirs_for(cid):
    """Every cgroup directory a runtime could have made for container `cid`:
    <hierarchy>/<id> at the hierarchy root and under this process's own
    cgroup in that hierarchy."""
    out = []
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    base = "/sys/fs/cgroup"
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            mnts = [os.path.join(base, "unified"), base]
        else:
            names = [c.replace("name=", "") for c in ctrls.split(",")]
            mnts = [os.path.join(base, n) for n in names]
            mnts.append(os.path.join(base, ctrls.replace("name=", "")))
        for m in mnts:
            out.append(os.path.join(m, cid))
            out.append(os.path.join(m, path.lstrip("/"), cid))
    return sorted(set(out))


def leftover_cgroups(ids):
    """The cgroups of `ids` that exist: named after an id, or after an id and a suffix of the
    test's own (`<id>-frozen`, `<id>-abs`)."""
    out = set()
    for cid in ids:
        for d in cgroup_dirs_for(cid):
            parent, name = os.path.split(d)
            try:
                entries = os.listdir(parent)
            except OSError:
                continue
            out.update(os.path.join(parent, e) for e in entries
                       if (e == name or e.startswith(name + "-")) and os.path.isdir(os.path.join(parent, e)))
    return sorted(out)


def remove_cgroup_dir(d):
    """Best effort: kill what is in it, then rmdir children bottom-up."""
    for root, dirs, _files in os.walk(d, topdown=False):
        try:
            with open(os.path.join(root, "cgroup.procs")) as f:
                for pid in f.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
        except OSError:
            pass
    deadline = time.monotonic() + 3
    for root, dirs, _files in os.walk(d, topdown=False):
        while True:
            try:
                os.rmdir(root)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)


def proc_starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        return data.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def leftover_processes(paths, ids, tracked):
    """Processes (other than us) whose cwd, root or cmdline mention one of
    `paths`, which sit in a cgroup named after one of `ids`, or which are
    one of the `tracked` (pid, starttime) pairs and still alive."""
    found = []
    me = os.getpid()
    for ent in os.listdir("/proc"):
        if not ent.isdigit() or int(ent) == me:
            continue
        pid = int(ent)
        why = None
        try:
            for link in ("cwd", "root"):
                try:
                    t = os.readlink(f"/proc/{pid}/{link}")
                except OSError:
                    continue
                if any(t == p or t.startswith(p + "/") for p in paths):
                    why = f"{link}={t}"
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            if why is None and any(p in cmd for p in paths):
                why = "cmdline"
            if why is None and ids:
                with open(f"/proc/{pid}/cgroup") as f:
                    cg = f.read()
                for cid in ids:
                    if f"/{cid}\n" in cg or f"/{cid}/" in cg:
                        why = f"cgroup of {cid}"
        except OSError:
            continue
        if why is not None:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()[0]
            if st == "Z":
                # A zombie still waiting for its parent (e.g. the test's own
                # unreaped child) is not a runaway container process.
                continue
            found.append(f"pid {pid} ({why}): {cmd.strip()}")
    for pid, start in tracked:
        if proc_starttime(pid) == start:
            line = f"pid {pid} (tracked container process)"
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            if not any(l.startswith(f"pid {pid} ") for l in found):
                found.append(line)
    return found


def kill_leftover_processes(paths, ids=(), tracked=(), timeout=3):
    """Waits up to `timeout` for the processes of `leftover_processes` to go (a killed one
    takes a moment to be reaped), then kills those that stay and returns them."""
    procs = wait_for(lambda: not leftover_processes(paths, ids, tracked), timeout=timeout) or \
        leftover_processes(paths, ids, tracked)
    if procs is True:
        return []
    for p in procs:
        try:
            os.kill(int(p.split()[1]), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    return procs


def leftover_mounts(paths):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if any(mp == p or mp.startswith(p + "/") for p in paths):
                out.append(mp)
    return out


def wait_for(pred, timeout=5.0, interval=0.02):
    """Poll pred() until it returns a true value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def compile_static(session_dir, name, source):
    """A static program for a container's rootfs, for what busybox cannot do (raw syscalls, a
    datagram to a unix socket): `name`.c compiled with gcc in the session's directory. Skips
    without gcc; returns the executable's path and gcc's result, for the caller to judge."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = os.path.join(session_dir, f"{name}.c")
    exe = os.path.join(session_dir, name)
    with open(src, "w") as f:
        f.write(source)
    r = subprocess.run(["gcc", "-static", "-O1", "-o", exe, src], capture_output=True,
                       text=True, timeout=120)
    return exe, r


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def session_dir():
    d = tempfile.mkdtemp(prefix="kilntest-")
    os.chmod(d, 0o755)  # a container in a user namespace must reach its bundle
    yield d
    # Session-level final check, after every test's own teardown.
    procs = leftover_processes([d], [], [])
    mounts = leftover_mounts([d])
    cgs = leftover_cgroups(ALL_IDS)
    for d in cgs:
        remove_cgroup_dir(d)
    for p in procs:
        pid = int(p.split()[1])
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if not mounts:
        shutil.rmtree(d, ignore_errors=True)
    assert not procs, f"processes left after the session: {procs}"
    assert not mounts, f"mounts left after the session: {mounts}"
    assert not cgs, f"cgroups left after the session: {cgs}"


@pytest.fixture(scope="session")
def rootfs_template(session_dir):
    d = os.path.join(session_dir, "rootfs")
    subprocess.run(
        [os.path.join(REPO, "hack", "mkrootfs.sh"), d],
        check=True,
        timeout=180,
        stdout=subprocess.DEVNULL,
    )
    assert os.path.exists(os.path.join(d, "bin", "sh"))
    return d


def run_to_files(cmd, timeout, cwd=None, input=None, stdin=None, pass_fds=(), env=None, tmp=None):
    """Run `cmd` and return a CompletedProcess with its text output. The output goes to
    files, not pipes: a detached container (or its monitor: conmon, the shim) inherits
    them and would hold a pipe open forever. `tmp`: where the files are made."""
    with tempfile.TemporaryFile(dir=tmp) as fo, tempfile.TemporaryFile(dir=tmp) as fe:
        if input is not None:
            stdin = subprocess.PIPE
        elif stdin is None:
            stdin = subprocess.DEVNULL
        p = subprocess.Popen(cmd, cwd=cwd, stdin=stdin, stdout=fo, stderr=fe,
                             pass_fds=pass_fds, env=env)
        try:
            p.communicate(input=input.encode() if input is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
            raise
        fo.seek(0)
        fe.seek(0)
        return subprocess.CompletedProcess(cmd, p.returncode, fo.read().decode(errors="replace"),
                                           fe.read().decode(errors="replace"))


class Result:
    def __init__(self, cp):
        self.rc = cp.returncode
        self.out = cp.stdout if cp.stdout is not None else ""
        self.err = cp.stderr if cp.stderr is not None else ""
        self.args = cp.args

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r}, args={self.args!r})"

    @property
    def ok(self):
        return self.rc == 0


class Ctx:
    """One test's world: a state root, a bundle, and the runtime."""

    def __init__(self, base, rootfs_template):
        self.dir = base
        self.root = os.path.join(base, "state")
        self.bundle = os.path.join(base, "bundle")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        os.makedirs(self.bundle)
        subprocess.run(
            ["cp", "-a", rootfs_template, self.rootfs], check=True, timeout=60
        )
        self.config = base_config()
        self.ids = []
        self.tracked = []
        self.cleanups = []
        self.runtime = RUNTIME
        # Global flags every call passes after --root, as a client configured for them does
        # (containerd's SystemdCgroup passes --systemd-cgroup to every runc call).
        self.flags = []

    # -- identifiers and config

    def new_id(self):
        cid = "kilntest-t" + uuid.uuid4().hex[:10]
        self.ids.append(cid)
        ALL_IDS.append(cid)
        return cid

    def save(self, config=None, bundle=None):
        with open(os.path.join(bundle or self.bundle, "config.json"), "w") as f:
            json.dump(self.config if config is None else config, f, indent=1)

    def sh(self, script):
        self.config["process"]["args"] = ["sh", "-c", script]
        return self

    def add_mount(self, m):
        self.config["mounts"].append(m)

    def ns_types(self):
        return [n["type"] for n in self.config["linux"]["namespaces"]]

    def drop_ns(self, t):
        self.config["linux"]["namespaces"] = [
            n for n in self.config["linux"]["namespaces"] if n["type"] != t
        ]

    def hostdir(self, name):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        return d

    # -- running the runtime

    def rt(self, *args, glob=None, timeout=CALL_TIMEOUT, cwd=None, input=None,
           pass_fds=(), env=None, stdin=None):
        """Run `RUNTIME [--root R] args...` and return a Result.

        glob: the global flags; default ["--root", root] and self.flags."""
        g = ["--root", self.root, *self.flags] if glob is None else list(glob)
        cmd = [self.runtime] + g + [str(a) for a in args]
        return Result(run_to_files(cmd, timeout, cwd=cwd or self.dir, input=input,
                                   stdin=stdin, pass_fds=pass_fds, env=env, tmp=self.dir))

    def rt_with_fds(self, fds, *args, env=""):
        """`rt` with `fds` ({number: a file object of ours}) open at those numbers, as a shim
        or systemd hands its fds over; `env`: shell words run before the exec (the runtime
        keeps the shell's pid, as LISTEN_PID wants)."""
        high = {n: fcntl.fcntl(f.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for n, f in fds.items()}
        try:
            moves = " ".join(f"{n}>&{h} {h}>&-" for n, h in high.items())
            cmd = ["bash", "-c", f'{env} exec {moves} "$@"', "bash", self.runtime,
                   "--root", self.root, *map(str, args)]
            return Result(run_to_files(cmd, CALL_TIMEOUT, cwd=self.dir,
                                       pass_fds=tuple(high.values()), tmp=self.dir))
        finally:
            for h in high.values():
                os.close(h)

    def state(self, cid):
        r = self.rt("state", cid)
        assert r.ok, r
        st = json.loads(r.out)
        if st.get("pid"):
            self.track(st["pid"])
        return st

    def track(self, pid):
        start = proc_starttime(pid)
        if start is not None and (pid, start) not in self.tracked:
            self.tracked.append((pid, start))

    def create(self, cid=None, *extra, save=True, check=True, bundle=None, **kw):
        if save:
            self.save()
        cid = cid or self.new_id()
        r = self.rt("create", "--bundle", bundle or self.bundle, *extra, cid, **kw)
        if check:
            assert r.ok, r
            self.state(cid)
        return cid, r

    def start(self, cid, check=True):
        r = self.rt("start", cid)
        if check:
            assert r.ok, r
        return r

    def run(self, *extra, cid=None, save=True, timeout=CALL_TIMEOUT, **kw):
        """Foreground `run`; returns (id, Result)."""
        if save:
            self.save()
        cid = cid or self.new_id()
        r = self.rt("run", "--bundle", self.bundle, *extra, cid, timeout=timeout, **kw)
        return cid, r

    def run_sh(self, script, **kw):
        """Run `sh -c script` in the foreground; assert success; return stdout."""
        self.sh(script)
        _, r = self.run(**kw)
        assert r.rc == 0, r
        return r.out

    def wait_status(self, cid, status, timeout=5.0):
        def check():
            r = self.rt("state", cid)
            return r.ok and json.loads(r.out)["status"] == status
        return wait_for(check, timeout)

    def delete(self, cid, force=False):
        r = self.rt("delete", *(["--force"] if force else []), cid)
        assert r.ok, r
        return r

    def assert_gone(self, cid, pid):
        """After a delete: not listed, its init exited, and `state` no longer knows it."""
        assert cid not in self.list_ids()
        assert wait_for(lambda: not pid_alive(pid), 5)
        assert self.rt("state", cid).rc != 0

    def list_ids(self):
        r = self.rt("list", "-q", timeout=10)
        if r.rc != 0:
            return []
        return [l for l in r.out.split() if l]

    # -- teardown

    def teardown(self):
        problems = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep going: the checks below matter more
                problems.append(f"cleanup {fn}: {e}")
        ids = self.list_ids() if os.path.isdir(self.root) else []
        for cid in ids:
            try:
                self.rt("delete", "--force", cid, timeout=15)
            except subprocess.TimeoutExpired:
                problems.append(f"delete --force {cid} timed out")
        procs = kill_leftover_processes([self.dir], self.ids, self.tracked)
        if procs:
            problems.append(f"processes left behind: {procs}")
        mounts = leftover_mounts([self.dir])
        if mounts:
            problems.append(f"mounts left behind: {mounts}")
            for mp in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", mp], timeout=10,
                               stderr=subprocess.DEVNULL)
        # kiln's cache of compiled seccomp programs stays, as it would in a real state root.
        left = [e for e in os.listdir(self.root) if e != ".cache"] if os.path.isdir(self.root) else []
        if left:
            problems.append(f"state root not empty: {left}")
        cgs = wait_for(lambda: not leftover_cgroups(self.ids), timeout=2) or \
            leftover_cgroups(self.ids)
        if cgs is not True and cgs:
            problems.append(f"cgroups left behind: {cgs}")
            for d in cgs:
                remove_cgroup_dir(d)
        return problems


@pytest.fixture
def ctx(session_dir, rootfs_template, request):
    base = tempfile.mkdtemp(prefix="t-", dir=session_dir)
    os.chmod(base, 0o755)
    c = Ctx(base, rootfs_template)
    yield c
    problems = c.teardown()
    if not problems and not leftover_mounts([base]):
        shutil.rmtree(base, ignore_errors=True)
    assert not problems, "\n".join(problems)


@pytest.fixture
def bare_dir(session_dir):
    """An empty scratch directory (not a bundle)."""
    d = tempfile.mkdtemp(prefix="d-", dir=session_dir)
    yield d
    shutil.rmtree(d, ignore_errors=True)
