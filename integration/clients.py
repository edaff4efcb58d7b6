"""Podman and containerd as clients of the runtime under test.

A local busybox OCI image (no registry), a Podman with a private configuration and storage,
and a private containerd daemon, all under the session's temporary directory. Each scenario
runs once with the runtime under test ($RUNTIME, kiln) and once with the apt `runc` as a
control: a scenario that fails with runc too is a problem of the test or the machine, not
of kiln. Everything is torn down even when a test fails, and teardown fails the test if a
container, process, mount, cgroup or runtime state entry was left behind.

See /work/shared/notes/clients.md (the machine's Podman 4.3 / containerd 1.6 configuration).
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import warnings

import pytest

from conftest import RUNTIME, RUNTIME_NAME, kill_leftover_processes, leftover_mounts, remove_cgroup_dir, run_to_files, wait_for

RUNC = "/usr/sbin/runc"
# Scenario parameters: (id, binary). The control always runs in the same session.
RUNTIMES = [(RUNTIME_NAME, RUNTIME), ("runc", RUNC)]
RUNTIME_IDS = [n for n, _ in RUNTIMES]

IMAGE = "localhost/busybox:latest"
TIMEOUT = 60
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The private CNI network for `--network bridge`: its own bridge, subnet and IPAM store, so
# that nothing is shared with the host's `podman` network.
BRIDGE = "kilntest-br0"
SUBNET_PREFIX = "10.231.7."

# Podman 4.3 sometimes prints nothing and exits 0 under load (clients.md): such a call is
# retried once, and the retries are counted and reported as a warning.
EMPTY_RETRIES = []



def stop_daemon(proc, name, timeout):
    """SIGTERM to a daemon the tests started, a bounded wait, then SIGKILL; the problem seen,
    if any."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
        return []
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return [f"{name} did not stop on SIGTERM"]

class Out:
    """The result of a client command: rc, stdout, stderr."""

    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err

    def __repr__(self):
        return f"{' '.join(self.cmd)}\n  rc={self.rc}\n  out={self.out!r}\n  err={self.err!r}"


def call(cmd, env=None, cwd=None, input=None, timeout=TIMEOUT):
    """Run cmd with its output in files (see conftest.run_to_files)."""
    cp = run_to_files(cmd, timeout, cwd=cwd, input=input, env=env)
    return Out(cmd, cp.returncode, cp.stdout, cp.stderr)


def call_pty(cmd, env=None, cwd=None, input=b"", timeout=TIMEOUT):
    """Run cmd with a pty as its stdin/stdout/stderr (as a user at a terminal would);
    returns (rc, everything read from the pty master)."""
    import pty
    import select

    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True)
    os.close(slave)
    if input:
        os.write(master, input)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave side is closed
                    break
                if not chunk:
                    break
                data += chunk
            elif p.poll() is not None:
                break
        else:
            p.kill()
        rc = p.wait(timeout=10)
    finally:
        os.close(master)
    return rc, data.decode(errors="replace")


# ---------------------------------------------------------------- the image


def build_oci_image(workdir, rootfs):
    """An OCI image layout at workdir/oci (tag `busybox`) with one layer, the busybox rootfs
    of hack/mkrootfs.sh, and an OCI archive of it at workdir/busybox.tar (for ctr)."""
    layout = os.path.join(workdir, "oci")
    layer = os.path.join(workdir, "layer.tar")
    archive = os.path.join(workdir, "busybox.tar")
    subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-cf", layer, "."],
                   check=True, timeout=120)
    for cmd in (
        ["umoci", "init", "--layout", layout],
        ["umoci", "new", "--image", f"{layout}:busybox"],
        ["umoci", "raw", "add-layer", "--image", f"{layout}:busybox", layer],
        ["umoci", "config", "--image", f"{layout}:busybox", "--config.cmd", "sh",
         "--config.env", PATH_ENV, "--config.workingdir", "/"],
        ["skopeo", "copy", "-q", f"oci:{layout}:busybox", f"oci-archive:{archive}:{IMAGE}"],
    ):
        r = call(cmd, timeout=120)
        assert r.rc == 0, r
    os.unlink(layer)
    return layout, archive


# ---------------------------------------------------------------- cgroups and network


def cgroup_roots():
    """The mount points of every cgroup hierarchy on this host (v1 controllers and v2)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                out.append(fields[4])
    return out


def cgroups_named(name):
    """Every cgroup directory called `name` (at any depth up to 3) in any hierarchy."""
    found = []
    for root in cgroup_roots():
        for dirpath, dirnames, _ in os.walk(root):
            if dirpath[len(root):].count("/") >= 3:
                dirnames[:] = []
                continue
            if name in dirnames:
                found.append(os.path.join(dirpath, name))
    return found


def cgroup_pids(d):
    """The pids in cgroup `d` and below it."""
    pids = []
    for root, _dirs, _files in os.walk(d):
        try:
            with open(os.path.join(root, "cgroup.procs")) as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def remove_session_cgroups(name, existed):
    """Removes the parent cgroups called `name` that this session created (they are shared by
    every container of the client, so they outlive the containers), even where a failed test
    left processes in them: those are reported, then killed. Returns the problems seen."""
    problems = []
    made = [d for d in cgroups_named(name) if d not in existed]
    busy = {d: pids for d in made if (pids := cgroup_pids(d))}
    if busy:
        problems.append(f"processes left in cgroups: {busy}")
    for d in made:
        remove_cgroup_dir(d)
    left = [d for d in cgroups_named(name) if d not in existed]
    if left:
        problems.append(f"cgroups left behind: {left}")
    return problems


def runtime_state_left(ids):
    """State entries of these container IDs left in the runtimes' default roots."""
    left = []
    for root in ("/run/kiln", "/run/runc"):
        for cid in ids:
            if os.path.exists(os.path.join(root, cid)):
                left.append(os.path.join(root, cid))
    return left


def check_clean(base, ids, cgroup_parent, roots=(), allowed_mounts=(), scope=None):
    """What a client left behind after its containers were removed: processes and mounts
    under `base` (but `allowed_mounts`), cgroups <cgroup_parent>/<id>, runtime state entries
    of `ids`. With the systemd driver `scope` names each container's unit (a format string
    of its id, e.g. "libpod-{}.scope"): the cgroups are <cgroup_parent>/<unit>, and a unit
    systemd still lists is left behind too (and stopped)."""
    problems = []
    if scope is not None:
        problems += units_left([scope.format(cid) for cid in ids])

    def leftover_mounts_here():
        return [m for m in leftover_mounts([base]) if m not in allowed_mounts]

    procs = kill_leftover_processes([base], timeout=5)
    if procs:
        problems.append(f"processes left behind: {procs}")
    # The client's own cleanup (conmon's exit command, the shim) may still be unmounting.
    mounts = wait_for(lambda: not leftover_mounts_here(), timeout=5, interval=0.1) or \
        leftover_mounts_here()
    if mounts is not True and mounts:
        problems.append(f"mounts left behind: {mounts}")
    cgs = []
    for cid in ids:
        for root in cgroup_roots():
            d = os.path.join(root, cgroup_parent, cid if scope is None else scope.format(cid))
            if os.path.isdir(d):
                cgs.append(d)
    if cgs:
        problems.append(f"cgroups left behind: {cgs}")
        for d in cgs:
            remove_cgroup_dir(d)
    state = runtime_state_left(ids)
    for root in roots:
        for cid in ids:
            if os.path.exists(os.path.join(root, cid)):
                state.append(os.path.join(root, cid))
    if state:
        problems.append(f"runtime state left behind: {state}")
    return problems


def unmount_all(base):
    for mp in sorted(leftover_mounts([base]), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], timeout=10, stderr=subprocess.DEVNULL)


def units_left(units):
    """Those of `units` that systemd still lists (in any state), then stopped and their
    failed state reset, so that the next test starts clean. Returns the problems seen."""
    from test_systemd import systemctl, units_of

    left = sorted({u for unit in units for u in units_of(unit)})
    for unit in left:
        systemctl("stop", unit, check=False)
        systemctl("reset-failed", unit, check=False)
    return [f"units left behind: {left}"] if left else []


def iptables_rules_for(prefix):
    r = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=20)
    return [l for l in r.stdout.splitlines() if prefix in l]


def cni_nat_chains():
    r = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                       timeout=20)
    return {l[1:].split()[0] for l in r.stdout.splitlines() if l.startswith(":CNI-")}


def remove_cni_nat_chains(keep):
    """Remove the portmap plugin's nat chains (and the jumps to them) that this session made:
    the plugin empties them when a container goes, but never removes them."""
    r = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                       timeout=20)
    ours = cni_nat_chains() - set(keep)
    for line in r.stdout.splitlines():
        f = line.split()
        if line.startswith("-A ") and "-j" in f and f[f.index("-j") + 1] in ours \
                and f[1] not in ours:
            subprocess.run(["iptables", "-t", "nat", "-D", *shlex.split(line)[1:]],
                           timeout=20)
    for chain in ours:
        subprocess.run(["iptables", "-t", "nat", "-F", chain], timeout=20)
    for chain in ours:
        subprocess.run(["iptables", "-t", "nat", "-X", chain], timeout=20)


# ---------------------------------------------------------------- Podman


# Where each client puts its containers' cgroups, by cgroup driver: (parent, scope) for
# check_clean. cgroupfs: <parent>/<id> directories; systemd: the transient scope <scope> in
# the slice <parent> (Podman's machine.slice:libpod:ID, as Podman passes cgroupsPath).
PODMAN_CGROUPS = {"cgroupfs": ("libpod_parent", None), "systemd": ("machine.slice",
                                                                   "libpod-{}.scope")}
# ctr has no default cgroupsPath for the systemd driver (--runc-systemd-cgroup needs --cgroup
# slice:prefix:name): these tests give system.slice:ctr:ID.
CTR_SLICE, CTR_PREFIX = "system.slice", "ctr"


@pytest.fixture(scope="module")
def cgroup_manager():
    """The cgroup driver the module's clients are configured with: cgroupfs, or systemd
    (a module that overrides this fixture; it needs systemd as PID 1)."""
    return "cgroupfs"


class PodmanSession:
    """One private Podman (configuration, storage, CNI network) for the whole session, with
    `cgroup_manager` cgroupfs or systemd (Podman then passes --systemd-cgroup)."""

    def __init__(self, base, layout, cgroup_manager="cgroupfs"):
        self.base = base
        self.cgroup_parent, self.scope = PODMAN_CGROUPS[cgroup_manager]
        self.cwd = os.path.join(base, "cwd")  # conmon writes its `oom` marker into its cwd
        self.graph = os.path.join(base, "graph")
        self.run = os.path.join(base, "run")
        cni = os.path.join(base, "cni")
        for d in (self.cwd, cni, os.path.join(base, "tmp")):
            os.makedirs(d)
        self.cgroups_before = set(cgroups_named("libpod_parent"))
        self.nat_before = cni_nat_chains()
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            f.write(f"""
[containers]
# The host's hard limits are lower than Podman's defaults: setrlimit fails in every runtime.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# Otherwise Podman makes directories for the v1 controllers that are not mounted here.
cgroups = "no-conmon"
log_driver = "k8s-file"
# No network unless a test asks for one: a CNI bridge setup costs ~1 s per container.
netns = "none"
init_path = "/usr/bin/catatonit"

[engine]
cgroup_manager = "{cgroup_manager}"
events_logger = "file"
events_logfile_path = "{base}/events.log"
lock_type = "file"
tmp_dir = "{base}/tmp"
# Podman passes --log-format=json --log FILE only to runtimes named here; conmon then reads
# the runtime's error from that file.
runtime_supports_json = ["crun", "runc", "kiln"]

[network]
network_backend = "cni"
network_config_dir = "{cni}"
""")
        storage = os.path.join(base, "storage.conf")
        with open(storage, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{self.graph}"\n'
                    f'runroot = "{self.run}"\n')
        registries = os.path.join(base, "registries.conf")
        with open(registries, "w") as f:
            f.write("unqualified-search-registries = []\n")
        # The default network "podman", private: its own bridge, subnet and IPAM store.
        with open(os.path.join(cni, "podman.conflist"), "w") as f:
            json.dump({
                "cniVersion": "0.4.0",
                "name": "podman",
                "plugins": [
                    {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                     "hairpinMode": True,
                     "ipam": {"type": "host-local", "dataDir": os.path.join(base, "ipam"),
                              "routes": [{"dst": "0.0.0.0/0"}],
                              "ranges": [[{"subnet": SUBNET_PREFIX + "0/24",
                                           "gateway": SUBNET_PREFIX + "1"}]]}},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            }, f)
        self.env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage,
                        CONTAINERS_REGISTRIES_CONF=registries)
        self.env.pop("NOTIFY_SOCKET", None)
        r = call(["skopeo", "copy", "-q", f"oci:{layout}:busybox",
                  f"containers-storage:{IMAGE}"], env=self.env, cwd=self.cwd, timeout=120)
        assert r.rc == 0, r

    def podman(self, *args, **kw):
        return call(["podman", *[str(a) for a in args]], env=self.env, cwd=self.cwd, **kw)

    def ids(self):
        r = self.podman("ps", "-aq", "--no-trunc")
        return r.out.split() if r.rc == 0 else []

    def remove_all(self):
        """Remove every container (stopping it at once); returns their IDs."""
        ids = self.ids()
        if ids:
            self.podman("rm", "-af", "-t", "0", timeout=120)
        return ids

    def close(self):
        problems = []
        ids = self.remove_all()
        if ids:
            problems.append(f"containers left at the end: {ids}")
        # Unmounts the image layers and drops the storage.
        r = self.podman("system", "reset", "-f", timeout=120)
        if r.rc != 0:
            problems.append(f"podman system reset: {r}")
        problems += check_clean(self.base, ids, self.cgroup_parent, scope=self.scope)
        unmount_all(self.base)
        problems += remove_session_cgroups("libpod_parent", self.cgroups_before)
        # The CNI bridge outlives its containers; the portmap chains empty themselves.
        if os.path.exists(f"/sys/class/net/{BRIDGE}"):
            ifaces = os.listdir(f"/sys/class/net/{BRIDGE}/brif")
            if ifaces:
                problems.append(f"veths left on {BRIDGE}: {ifaces}")
            subprocess.run(["ip", "link", "del", BRIDGE], timeout=20)
        rules = iptables_rules_for(SUBNET_PREFIX)
        if rules:
            problems.append(f"iptables rules left behind: {rules}")
        remove_cni_nat_chains(self.nat_before)
        return problems


class Podman:
    """Podman with `--runtime BINARY`, for one test; remembers what to clean."""

    def __init__(self, session, name, binary):
        self.s = session
        self.name = name
        self.binary = binary

    def __call__(self, *args, **kw):
        return self.s.podman("--runtime", self.binary, *args, **kw)

    def out(self, *args, **kw):
        """Run; assert exit 0 and non-empty output (retrying once on Podman's empty-output
        glitch); return stdout."""
        r = self(*args, **kw)
        if r.rc == 0 and r.out == "" and r.err == "":
            EMPTY_RETRIES.append(" ".join(map(str, args)))
            r = self(*args, **kw)
        assert r.rc == 0 and r.out, r
        return r.out

    def pty(self, *args, **kw):
        return call_pty(["podman", "--runtime", self.binary, *map(str, args)],
                        env=self.s.env, cwd=self.s.cwd, **kw)

    def start_bg(self, *args):
        """`podman run -d ARGS`; returns the container ID."""
        r = self("run", "-d", *args)
        assert r.rc == 0 and r.out.strip(), r
        return r.out.strip()

    def inspect(self, cid, fmt):
        return self.out("inspect", "-f", fmt, cid).strip()

    def wait_running(self, cid, timeout=10):
        return wait_for(lambda: self("inspect", "-f", "{{.State.Status}}", cid).out.strip()
                        == "running", timeout, 0.2)

    def teardown(self):
        ids = self.s.remove_all()
        # The overlay driver keeps its home directory bind-mounted while the storage is in
        # use; the session's `podman system reset` unmounts it.
        return check_clean(self.s.base, ids, self.s.cgroup_parent, scope=self.s.scope,
                           allowed_mounts=[os.path.join(self.s.graph, "overlay")])


@pytest.fixture(scope="session")
def client_image(session_dir, rootfs_template):
    d = os.path.join(session_dir, "image")
    os.makedirs(d)
    return build_oci_image(d, rootfs_template)


# Module scope: the daemon and the storage go as soon as their module is done.
@pytest.fixture(scope="module")
def podman_session(session_dir, client_image, cgroup_manager):
    base = os.path.join(session_dir, "podman")
    os.makedirs(base)
    try:
        s = PodmanSession(base, client_image[0], cgroup_manager)
    except BaseException:
        unmount_all(base)
        raise
    try:
        yield s
    finally:
        problems = s.close()
        if EMPTY_RETRIES:
            warnings.warn(f"podman printed nothing and was retried {len(EMPTY_RETRIES)} "
                          f"times: {EMPTY_RETRIES}")
        assert not problems, "\n".join(problems)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=RUNTIMES, ids=RUNTIME_IDS)
def podman(request, podman_session):
    name, binary = request.param
    p = Podman(podman_session, name, binary)
    yield p
    problems = p.teardown()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- containerd


class Containerd:
    """A private containerd daemon (CRI disabled) with its own root, state and sockets."""

    NAMESPACE = "kilntest"

    def __init__(self, base):
        self.base = base
        self.sock = os.path.join(base, "c.sock")
        self.cgroups_before = set(cgroups_named(self.NAMESPACE))
        self.proc = None

    def start(self, archive):
        base = self.base
        conf = os.path.join(base, "config.toml")
        with open(conf, "w") as f:
            f.write(f"""version = 2
root = "{base}/root"
state = "{base}/state"
temp = "{base}/tmp"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
""")
        self.log = open(os.path.join(base, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, cwd=base)
        if not wait_for(lambda: self.ctr("version").rc == 0 if os.path.exists(self.sock)
                        else self.proc.poll() is not None, timeout=30, interval=0.1) \
                or self.proc.poll() is not None:
            raise RuntimeError(f"containerd did not start: {self.logtail()}")
        r = self.ctr("images", "import", archive, timeout=120)
        assert r.rc == 0, r

    def logtail(self):
        with open(os.path.join(self.base, "containerd.log"), errors="replace") as f:
            return f.read()[-3000:]

    def ctr(self, *args, **kw):
        return call(["ctr", "--address", self.sock, "--namespace", self.NAMESPACE,
                     *[str(a) for a in args]], cwd=self.base, **kw)

    def ids(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        r = self.ctr("containers", "ls", "-q")
        return r.out.split() if r.rc == 0 else []

    def remove_all(self):
        ids = self.ids()
        for cid in ids:
            self.ctr("tasks", "kill", "-s", "SIGKILL", "--all", cid, timeout=30)
        for cid in ids:
            wait_for(lambda: self.ctr("tasks", "delete", cid).rc != 0 and
                     cid not in self.ctr("tasks", "ls", "-q").out.split(), 10, 0.2)
            self.ctr("tasks", "delete", "--force", cid, timeout=30)
            self.ctr("containers", "delete", cid, timeout=30)
        return ids

    def close(self):
        problems = []
        ids = self.remove_all()
        if ids:
            problems.append(f"containers left at the end: {ids}")
        if self.proc is not None:
            problems += stop_daemon(self.proc, "containerd", 20)
            self.log.close()
        problems += check_clean(self.base, ids, self.NAMESPACE)
        unmount_all(self.base)
        problems += remove_session_cgroups(self.NAMESPACE, self.cgroups_before)
        return problems


class Ctr:
    """`ctr` with the runc v2 shim pointed at one runtime binary, for one test; with the
    systemd driver (`cgroup_manager`), --runc-systemd-cgroup (the shim's SystemdCgroup
    option) and each container in the scope CTR_SLICE:CTR_PREFIX:ID."""

    def __init__(self, daemon, name, binary, workdir, cgroup_manager="cgroupfs"):
        self.d = daemon
        self.name = name
        self.binary = binary
        # cgroupfs: ctr's default cgroupsPath, /NAMESPACE/ID.
        self.cgroup_parent, self.scope = (Containerd.NAMESPACE, None) \
            if cgroup_manager == "cgroupfs" else (CTR_SLICE, CTR_PREFIX + "-{}.scope")
        self.dir = workdir
        self.root = os.path.join(workdir, "runtime-root")
        self.fifos = os.path.join(workdir, "fifos")
        os.makedirs(self.fifos)
        self.n = 0

    def __call__(self, *args, **kw):
        return self.d.ctr(*args, **kw)

    def new_id(self):
        self.n += 1
        return f"kilntest-{self.name}-{os.getpid()}-{self.n}-{os.urandom(3).hex()}"

    def run_args(self, *opts, cid=None):
        """`ctr run` and its options for this runtime; the systemd driver needs the ID."""
        driver = [] if self.scope is None else [
            "--runc-systemd-cgroup", "--cgroup", f"{CTR_SLICE}:{CTR_PREFIX}:{cid}"]
        return ["run", "--runc-binary", self.binary, "--runc-root", self.root,
                "--fifo-dir", self.fifos, *driver, *opts]

    def unit(self, cid):
        """The container's systemd scope (systemd driver only)."""
        return self.scope.format(cid)

    def run(self, *opts_and_cmd, image=IMAGE, cid=None, opts=(), **kw):
        """Foreground `ctr run --rm [opts] IMAGE ID CMD...`; returns (id, Out)."""
        cid = cid or self.new_id()
        r = self(*self.run_args("--rm", *opts, cid=cid), image, cid, *opts_and_cmd, **kw)
        return cid, r

    def start_bg(self, *cmd, opts=()):
        """A detached task; waits until it is RUNNING; returns its ID."""
        cid = self.new_id()
        r = self(*self.run_args("-d", *opts, cid=cid), IMAGE, cid, *cmd)
        assert r.rc == 0, r
        assert wait_for(lambda: self.status(cid) == "RUNNING", 10, 0.1), self("tasks", "ls")
        return cid

    def status(self, cid):
        for line in self("tasks", "ls").out.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return f[2]
        return None

    def pid(self, cid):
        for line in self("tasks", "ls").out.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return int(f[1])
        return None

    def teardown(self):
        ids = self.d.remove_all()
        return check_clean(self.dir, ids, self.cgroup_parent, scope=self.scope, roots=[
            os.path.join(self.root, Containerd.NAMESPACE)])


@pytest.fixture(scope="module")
def containerd(session_dir, client_image):
    base = os.path.join(session_dir, "containerd")
    os.makedirs(base)
    d = Containerd(base)
    try:
        d.start(client_image[1])
        yield d
    finally:
        problems = d.close()
        assert not problems, "\n".join(problems)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=RUNTIMES, ids=RUNTIME_IDS)
def ctr(request, containerd, session_dir, cgroup_manager):
    name, binary = request.param
    work = tempfile.mkdtemp(prefix=f"ctr-{name}-", dir=session_dir)
    c = Ctr(containerd, name, binary, work, cgroup_manager)
    yield c
    problems = c.teardown()
    assert not problems, "\n".join(problems)
    shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- Docker


DOCKER = "/usr/bin/docker"  # Debian's docker.io 20.10 client (another `docker` may come first)
DOCKER_IMAGE = "kilntest/busybox:latest"
DOCKER_BRIDGE = "kilntest-dk0"
DOCKER_SUBNET_PREFIX = "10.231.9."
DOCKER_CGROUP_PARENT = "kilntest-docker"  # below the root of each hierarchy: --cgroup-parent /kilntest-docker


def docker_runtime_name(name):
    return f"kilntest-{name}"


class DockerSession:
    """A private dockerd (Debian's docker.io 20.10, with the containerd it starts itself): its
    own data-root, exec-root, socket, pidfile and config file, a bridge of its own, and no
    iptables rules at all (published ports go through docker-proxy), so it shares nothing with
    the host's Podman or another dockerd. Each runtime is registered with --add-runtime.
    `remap`: a user made for this daemon, with a subordinate id range, for --userns-remap
    (that daemon has no bridge: `--bridge none`)."""

    def __init__(self, base, remap=None):
        self.base = base
        self.remap = remap
        self.sock = os.path.join(base, "d.sock")
        self.pidfile = os.path.join(base, "d.pid")
        self.cgroups_before = set(cgroups_named(DOCKER_CGROUP_PARENT))
        self.proc = None
        self.log = None

    def start(self, rootfs):
        base = self.base
        conf = os.path.join(base, "daemon.json")
        with open(conf, "w") as f:
            f.write("{}\n")  # not /etc/docker/daemon.json
        if self.remap:
            network = ["--bridge", "none", "--userns-remap", f"{self.remap}:{self.remap}"]
        else:
            network = ["--bridge", DOCKER_BRIDGE]
            if os.path.exists(f"/sys/class/net/{DOCKER_BRIDGE}"):  # ours, from a killed run
                subprocess.run(["ip", "link", "del", DOCKER_BRIDGE], timeout=20)
            subprocess.run(["ip", "link", "add", DOCKER_BRIDGE, "type", "bridge"], check=True,
                           timeout=20)
            subprocess.run(["ip", "addr", "add", DOCKER_SUBNET_PREFIX + "1/24", "dev",
                            DOCKER_BRIDGE], check=True, timeout=20)
            subprocess.run(["ip", "link", "set", DOCKER_BRIDGE, "up"], check=True, timeout=20)
        cmd = ["dockerd", "--config-file", conf, "--data-root", f"{base}/data",
               "--exec-root", f"{base}/exec", "-H", f"unix://{self.sock}",
               "--pidfile", self.pidfile, *network, "--iptables=false",
               "--ip-masq=false", "--ip-forward=false", "--storage-driver", "overlay2",
               "--exec-opt", "native.cgroupdriver=cgroupfs",
               "--cgroup-parent", "/" + DOCKER_CGROUP_PARENT, "--log-level", "warn"]
        # (once each: with RUNTIME=runc both parameters are the same runtime)
        for name, binary in dict(RUNTIMES).items():
            cmd += ["--add-runtime", f"{docker_runtime_name(name)}={binary}"]
        self.log = open(os.path.join(base, "dockerd.log"), "wb")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, cwd=base, env=env)
        if not wait_for(lambda: self.docker("version").rc == 0 if os.path.exists(self.sock)
                        else self.proc.poll() is not None, timeout=60, interval=0.1) \
                or self.proc.poll() is not None:
            raise RuntimeError(f"dockerd did not start: {self.logtail()}")
        tarball = os.path.join(base, "rootfs.tar")
        subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-cf", tarball, "."],
                       check=True, timeout=120)
        r = self.docker("import", "-c", f"ENV {PATH_ENV}", "-c", 'CMD ["sh"]', tarball,
                        DOCKER_IMAGE, timeout=120)
        assert r.rc == 0, r
        os.unlink(tarball)

    def runtime_root(self):
        """The shim's --root for every runtime (dockerd 20.10 names it after runc)."""
        return os.path.join(self.base, "exec", "runtime-runc", "moby")

    def containers_left(self, ids):
        """What the containers `ids` left: their shims and processes (running in the task
        directories and the overlay mounts), mounts, cgroups and runtime state."""
        tasks = os.path.join(self.base, "exec", "containerd", "daemon",
                             "io.containerd.runtime.v2.task")
        overlay = self.own_mounts()[-1]
        problems = check_clean(overlay, ids, DOCKER_CGROUP_PARENT, roots=[self.runtime_root()],
                               allowed_mounts=[overlay])
        procs = kill_leftover_processes([tasks], ids, timeout=5)
        if procs:
            problems.append(f"shims left behind: {procs}")
        return problems

    def own_mounts(self):
        """What dockerd itself keeps mounted while it runs, and leaves behind when it stops:
        its default network namespace and its data-root (and the overlay2 home within),
        which it makes private mounts of their own."""
        data = os.path.join(self.base, "data")
        if self.remap:  # the remapped daemon's storage is data-root/UID.GID
            data = os.path.join(data, f"{self.remap_start()}.{self.remap_start('/etc/subgid')}")
        return [os.path.join(self.base, "exec", "netns", "default"),
                os.path.join(self.base, "data"), data, os.path.join(data, "overlay2")]

    def remap_start(self, path="/etc/subuid"):
        """Where the remapped root's ids start on the host: the user's first range."""
        with open(path) as f:
            for line in f:
                name, start, _ = line.strip().split(":")
                if name == self.remap:
                    return int(start)
        raise AssertionError(f"{self.remap} has no range in {path}")

    def logtail(self):
        with open(os.path.join(self.base, "dockerd.log"), errors="replace") as f:
            return f.read()[-3000:]

    def docker(self, *args, **kw):
        return call([DOCKER, "-H", f"unix://{self.sock}", *[str(a) for a in args]],
                    cwd=self.base, **kw)

    def ids(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        r = self.docker("ps", "-aq", "--no-trunc")
        return r.out.split() if r.rc == 0 else []

    def remove_all(self):
        ids = self.ids()
        if ids:
            self.docker("rm", "-f", *ids, timeout=120)
        return ids

    def shims(self):
        """containerd shims (and docker-proxy, containerd) that name this daemon's dirs."""
        found = []
        for ent in os.listdir("/proc"):
            if not ent.isdigit():
                continue
            try:
                with open(f"/proc/{ent}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.base in cmdline and int(ent) != (self.proc.pid if self.proc else -1):
                found.append(f"{ent} {cmdline.strip()}")
        return found

    def close(self):
        problems = []
        ids = self.remove_all()
        if ids:
            problems.append(f"containers left at the end: {ids}")
        if self.proc is not None:
            problems += stop_daemon(self.proc, "dockerd", 30)
            self.log.close()
        left = wait_for(lambda: not self.shims(), timeout=10, interval=0.1) or self.shims()
        if left is not True and left:
            problems.append(f"processes of dockerd left behind: {left}")
            for p in left:
                try:
                    os.kill(int(p.split()[0]), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        problems += check_clean(self.base, ids, DOCKER_CGROUP_PARENT,
                                roots=[self.runtime_root()], allowed_mounts=self.own_mounts())
        unmount_all(self.base)
        problems += remove_session_cgroups(DOCKER_CGROUP_PARENT, self.cgroups_before)
        if not self.remap and os.path.exists(f"/sys/class/net/{DOCKER_BRIDGE}"):
            ifaces = os.listdir(f"/sys/class/net/{DOCKER_BRIDGE}/brif")
            if ifaces:
                problems.append(f"veths left on {DOCKER_BRIDGE}: {ifaces}")
            subprocess.run(["ip", "link", "del", DOCKER_BRIDGE], timeout=20)
        rules = iptables_rules_for(DOCKER_SUBNET_PREFIX)
        if rules:
            problems.append(f"iptables rules left behind: {rules}")
        return problems


class Docker:
    """`docker` with `--runtime` one of the registered runtimes, for one test."""

    def __init__(self, session, name, binary):
        self.s = session
        self.name = name
        self.binary = binary
        self.runtime = docker_runtime_name(name)

    def __call__(self, *args, **kw):
        return self.s.docker(*args, **kw)

    def run(self, *args, **kw):
        """`docker run --runtime R ARGS`."""
        return self("run", "--runtime", self.runtime, *args, **kw)

    def out(self, *args, **kw):
        r = self.run("--rm", *args, **kw)
        assert r.rc == 0, r
        return r.out

    def start_bg(self, *args):
        r = self.run("-d", *args)
        assert r.rc == 0 and r.out.strip(), r
        cid = r.out.strip()
        assert self.wait_status(cid, "running"), self("inspect", cid)
        return cid

    def inspect(self, cid, fmt):
        r = self("inspect", "-f", fmt, cid)
        assert r.rc == 0, r
        return r.out.strip()

    def wait_status(self, cid, status, timeout=10):
        return wait_for(lambda: self("inspect", "-f", "{{.State.Status}}", cid).out.strip()
                        == status, timeout, 0.1)

    def pty(self, *args, **kw):
        return call_pty([DOCKER, "-H", f"unix://{self.s.sock}", "run", "--runtime",
                         self.runtime, *map(str, args)], cwd=self.s.base, **kw)

    def teardown(self):
        return self.s.containers_left(self.s.remove_all())


@pytest.fixture(scope="module")
def docker_session(session_dir, rootfs_template):
    base = os.path.join(session_dir, "docker")
    os.makedirs(base)
    s = DockerSession(base)
    try:
        s.start(rootfs_template)
        yield s
    finally:
        problems = s.close()
        assert not problems, "\n".join(problems)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def docker_remap_session(session_dir, rootfs_template):
    """A second private dockerd with --userns-remap, for a user made here with a subordinate
    range (useradd's, or one far above any that useradd hands out); the user and its ranges go
    at the end."""
    base = os.path.join(session_dir, "docker-remap")
    os.makedirs(base)
    user = "kilndk" + os.urandom(4).hex()
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell",
                    "/usr/sbin/nologin", user], check=True, timeout=20)
    problems = []
    try:
        start = 1_100_000_000 + int.from_bytes(os.urandom(2), "big") % 1000 * 65536
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path) as f:
                has = any(l.startswith(user + ":") for l in f)
            if not has:
                with open(path, "a") as f:
                    f.write(f"{user}:{start}:65536\n")
        s = DockerSession(base, remap=user)
        try:
            s.start(rootfs_template)
            yield s
        finally:
            problems = s.close()
    finally:
        # The user and its ranges go whatever the daemon did.
        subprocess.run(["userdel", user], timeout=20, stderr=subprocess.DEVNULL)
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path) as f:
                lines = f.readlines()
            with open(path, "w") as f:
                f.writelines(l for l in lines if not l.startswith(user + ":"))
    assert not problems, "\n".join(problems)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=RUNTIMES, ids=RUNTIME_IDS)
def docker_remap(request, docker_remap_session):
    name, binary = request.param
    d = Docker(docker_remap_session, name, binary)
    yield d
    problems = d.teardown()
    assert not problems, "\n".join(problems)


@pytest.fixture(params=RUNTIMES, ids=RUNTIME_IDS)
def docker(request, docker_session):
    name, binary = request.param
    d = Docker(docker_session, name, binary)
    yield d
    problems = d.teardown()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- containerd's CRI


CRI_CGROUP_PARENT = "kilntest-cri"
# With the systemd driver each pod is a slice, as kubelet's systemd driver makes them
# (/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice): here
# /kilntestcri.slice/kilntestcri-pod<uid>.slice. containerd gives a container below a parent
# named *.slice the cgroupsPath <parent's last part>:cri-containerd:<id>.
CRI_SLICE = "kilntestcri.slice"
CRI_PAUSE = "localhost/pause:latest"


def build_pause_archive(workdir, rootfs):
    """The sandbox ("pause") image: the busybox rootfs again, sleeping for ever."""
    archive = os.path.join(workdir, "pause.tar")
    layout = os.path.join(workdir, "pause-oci")
    layer = os.path.join(workdir, "pause-layer.tar")
    subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-cf", layer, "."],
                   check=True, timeout=120)
    for cmd in (
        ["umoci", "init", "--layout", layout],
        ["umoci", "new", "--image", f"{layout}:pause"],
        ["umoci", "raw", "add-layer", "--image", f"{layout}:pause", layer],
        ["umoci", "config", "--image", f"{layout}:pause", "--config.cmd", "sleep",
         "--config.cmd", "2147483647", "--config.env", PATH_ENV],
        ["skopeo", "copy", "-q", f"oci:{layout}:pause", f"oci-archive:{archive}:{CRI_PAUSE}"],
    ):
        r = call(cmd, timeout=120)
        assert r.rc == 0, r
    os.unlink(layer)
    shutil.rmtree(layout)
    return archive


class CriContainerd:
    """A private containerd with its CRI plugin on, driven as kubelet drives it (gRPC, CRI v1,
    through the messages of integration/cri.proto): a runtime handler `kilntest-NAME` per
    runtime (runc v2 shim with BinaryName), the cgroupfs driver or the systemd one (the
    handlers' SystemdCgroup = true, pods in slices), no CNI (pods use the host's network),
    the sandbox image a local busybox that sleeps."""

    def __init__(self, base, cgroup_manager="cgroupfs"):
        self.base = base
        self.sock = os.path.join(base, "c.sock")
        self.systemd = cgroup_manager == "systemd"
        # The directory every pod's cgroup is in: kubelet's to make and remove.
        self.parent = CRI_SLICE if self.systemd else CRI_CGROUP_PARENT
        self.cgroups_before = set(cgroups_named(self.parent))
        self.proc = None
        self.pods = []

    def start(self, rootfs, layout):
        import grpc  # python3-grpcio (hack/setup)
        from grpc_tools import protoc  # python3-grpc-tools

        base = self.base
        gen = os.path.join(base, "gen")
        os.makedirs(gen)
        here = os.path.dirname(os.path.abspath(__file__))
        assert protoc.main(["protoc", f"-I{here}", f"--python_out={gen}",
                            f"--grpc_python_out={gen}", os.path.join(here, "cri.proto")]) == 0
        import importlib
        import sys
        sys.path.insert(0, gen)
        try:
            self.pb = importlib.import_module("cri_pb2")
            rpc = importlib.import_module("cri_pb2_grpc")
        finally:
            sys.path.remove(gen)
        for d in ("cni-bin", "cni-conf"):
            os.makedirs(os.path.join(base, d))
        runtimes = "".join(f"""
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{cri_handler(name)}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{cri_handler(name)}.options]
        BinaryName = "{binary}"
        Root = "{base}/root-{name}"
        SystemdCgroup = {str(self.systemd).lower()}
""" for name, binary in dict(RUNTIMES).items())
        conf = os.path.join(base, "config.toml")
        with open(conf, "w") as f:
            f.write(f"""version = 2
root = "{base}/root"
state = "{base}/state"
temp = "{base}/tmp"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{CRI_PAUSE}"
  disable_apparmor = true
  # this machine's processes may not lower their oom_score_adj (the sandbox asks for -998)
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{base}/cni-bin"
    conf_dir = "{base}/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{cri_handler("runc")}"
{runtimes}""")
        self.log = open(os.path.join(base, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, cwd=base)
        self.channel = grpc.insecure_channel(f"unix://{self.sock}")
        self.rt = rpc.RuntimeServiceStub(self.channel)

        def up():
            if self.proc.poll() is not None:
                return True
            try:
                self.rt.Version(self.pb.VersionRequest(version="v1"), timeout=2)
                return True
            except grpc.RpcError:
                return False
        if not wait_for(up, timeout=30, interval=0.1) or self.proc.poll() is not None:
            raise RuntimeError(f"containerd did not start: {self.logtail()}")
        pause = build_pause_archive(base, rootfs)
        busybox = os.path.join(base, "busybox.tar")
        r = call(["skopeo", "copy", "-q", f"oci:{layout}:busybox",
                  f"oci-archive:{busybox}:{IMAGE}"], timeout=120)
        assert r.rc == 0, r
        for archive in (pause, busybox):
            r = call(["ctr", "--address", self.sock, "--namespace", "k8s.io", "images",
                      "import", archive], cwd=base, timeout=120)
            assert r.rc == 0, r

    def logtail(self):
        with open(os.path.join(self.base, "containerd.log"), errors="replace") as f:
            return f.read()[-3000:]

    def remove_pods(self):
        """Stop and remove every pod this session ran (and with it its containers)."""
        import grpc
        left = list(self.pods)
        for pod in left:
            try:
                self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=pod),
                                       timeout=60)
                self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod),
                                         timeout=60)
            except grpc.RpcError:
                pass
        self.pods.clear()
        return left

    def close(self):
        problems = []
        if self.proc is not None:
            self.remove_pods()
            self.channel.close()
            problems += stop_daemon(self.proc, "containerd", 20)
            self.log.close()
        problems += check_clean(self.base, [], self.parent)
        unmount_all(self.base)
        if self.systemd and not self.cgroups_before:
            # The top slice systemd made for the first pod slice in it (kubelet's kubepods.slice).
            from test_systemd import systemctl
            systemctl("stop", CRI_SLICE, check=False)
        problems += remove_session_cgroups(self.parent, self.cgroups_before)
        return problems

    def remove_pod_cgroup(self, pod):
        """Remove pod cgroup directory `pod`, as kubelet does once the pod is gone: the
        directory, or with the systemd driver the pod's slice unit."""
        if self.systemd:
            from test_systemd import systemctl
            systemctl("stop", os.path.basename(pod), check=False)
            systemctl("reset-failed", os.path.basename(pod), check=False)
        else:
            remove_cgroup_dir(pod)


def cri_handler(name):
    return f"kilntest-{name}"


class Cri:
    """One runtime handler of the CRI containerd, for one test: pods and containers as kubelet
    makes them."""

    def __init__(self, daemon, name, binary):
        self.d = daemon
        self.pb = daemon.pb
        self.rt = daemon.rt
        self.name = name
        self.binary = binary
        self.handler = cri_handler(name)
        self.n = 0

    def run_pod(self, pid="POD", ipc="POD"):
        """A pod on the host's network (no CNI here), its own pid and ipc namespaces, its
        cgroup /kilntest-cri/podUID (systemd: /kilntestcri.slice/kilntestcri-podUID.slice);
        returns (pod id, its config)."""
        pb = self.pb
        self.n += 1
        uid = os.urandom(8).hex()
        parent = f"/{CRI_SLICE}/{CRI_SLICE[:-len('.slice')]}-pod{uid}.slice" if self.d.systemd \
            else f"/{CRI_CGROUP_PARENT}/pod{uid}"
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"pod-{self.name}-{self.n}", uid=uid,
                                           namespace="kilntest"),
            log_directory=os.path.join(self.d.base, "logs", uid),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(
                        network=pb.NODE, pid=getattr(pb, pid), ipc=getattr(pb, ipc)))))
        pod = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(
            config=config, runtime_handler=self.handler), timeout=60).pod_sandbox_id
        self.d.pods.append(pod)
        return pod, config

    def create(self, pod, sandbox, name, command, **linux):
        pb = self.pb
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=IMAGE),
            command=command, log_path=f"{name}.log", linux=pb.LinuxContainerConfig(**linux))
        return self.rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=pod, config=config, sandbox_config=sandbox),
            timeout=60).container_id

    def start(self, cid):
        self.rt.StartContainer(self.pb.StartContainerRequest(container_id=cid), timeout=60)

    def status(self, cid):
        return self.rt.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid),
                                       timeout=30).status

    def exec(self, cid, *cmd, timeout=10):
        return self.rt.ExecSync(self.pb.ExecSyncRequest(container_id=cid, cmd=list(cmd),
                                                        timeout=timeout), timeout=timeout + 30)

    def stop(self, cid, timeout=2):
        self.rt.StopContainer(self.pb.StopContainerRequest(container_id=cid, timeout=timeout),
                              timeout=timeout + 30)

    def remove(self, cid):
        self.rt.RemoveContainer(self.pb.RemoveContainerRequest(container_id=cid), timeout=30)

    def remove_pod(self, pod):
        self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod),
                                 timeout=60)
        self.d.pods.remove(pod)

    def teardown(self):
        pods = self.d.remove_pods()
        problems = check_clean(os.path.join(self.d.base, "state"), [], self.d.parent,
                               roots=[os.path.join(self.d.base, f"root-{self.name}", "k8s.io")])
        # The runtime removes its containers' cgroups (scopes); the pods' own (their parents)
        # are kubelet's to remove, so the test removes them, and fails on a container's left.
        for parent in cgroups_named(self.d.parent):
            if parent in self.d.cgroups_before:
                continue
            for pod in os.listdir(parent):
                pod = os.path.join(parent, pod)
                if not os.path.isdir(pod):
                    continue
                kids = [e for e in os.listdir(pod) if os.path.isdir(os.path.join(pod, e))]
                if kids:
                    problems.append(f"container cgroups left behind in {pod}: {kids}")
                if pids := cgroup_pids(pod):
                    problems.append(f"processes left in {pod}: {pids}")
                self.d.remove_pod_cgroup(pod)
                if os.path.exists(pod):
                    problems.append(f"pod cgroup left behind: {pod}")
        if pods:
            problems.append(f"pods the test did not remove: {pods}")
        return problems


@pytest.fixture(scope="module")
def cri_containerd(session_dir, rootfs_template, client_image, cgroup_manager):
    base = os.path.join(session_dir, "cri")
    os.makedirs(base)
    d = CriContainerd(base, cgroup_manager)
    try:
        d.start(rootfs_template, client_image[0])
        yield d
    finally:
        problems = d.close()
        assert not problems, "\n".join(problems)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=RUNTIMES, ids=RUNTIME_IDS)
def cri(request, cri_containerd):
    name, binary = request.param
    c = Cri(cri_containerd, name, binary)
    yield c
    problems = c.teardown()
    assert not problems, "\n".join(problems)
