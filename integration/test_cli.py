"""The command line as a client (Podman, containerd, a person) sees it."""

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import CALL_TIMEOUT, RUNTIME, base_config, runc_deviates, wait_for

STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
RFC3339_NANO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z$")


def test_version_exits_zero(ctx):
    r = ctx.rt("--version", glob=[])
    assert r.rc == 0, r
    assert r.out.strip(), "version output is empty"
    assert re.search(r"^spec: \d+\.\d+", r.out, re.M), r.out


@pytest.mark.kiln_only
def test_kiln_version_format(ctx):
    r = ctx.rt("--version", glob=[])
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0].startswith("kiln version "), lines
    assert any(l.startswith("spec: 1.3") for l in lines), lines
    assert "runc: 1.1.5 (command line)" in lines, lines


@pytest.mark.parametrize("form", ["equals", "space"])
def test_global_root_flag_forms(ctx, form):
    ctx.sh("sleep 30")
    glob = [f"--root={ctx.root}"] if form == "equals" else ["--root", ctx.root]
    ctx.save()
    cid = ctx.new_id()
    r = ctx.rt("create", "--bundle", ctx.bundle, cid, glob=glob)
    assert r.ok, r
    # The state lands under the given root, whichever form was used.
    assert os.path.isdir(os.path.join(ctx.root, cid)), os.listdir(ctx.root)
    r = ctx.rt("state", cid, glob=glob)
    assert r.ok and json.loads(r.out)["id"] == cid, r
    ctx.state(cid)
    assert ctx.rt("delete", "--force", cid, glob=glob).ok


@pytest.mark.parametrize("form", ["equals", "space"])
def test_global_log_flags_forms(ctx, form):
    log = os.path.join(ctx.dir, "log.json")
    if form == "equals":
        glob = [f"--root={ctx.root}", f"--log={log}", "--log-format=json"]
    else:
        glob = ["--root", ctx.root, "--log", log, "--log-format", "json"]
    r = ctx.rt("state", "kilntest-nonexistent", glob=glob)
    assert r.rc != 0, r
    with open(log) as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    assert lines, "no line in the --log file after an error"
    entries = [json.loads(l) for l in lines]
    errs = [e for e in entries if e.get("level") == "error"]
    assert errs, entries
    e = errs[-1]
    assert {"level", "msg", "time"} <= set(e), e
    assert e["msg"], e
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["time"]), e


def test_log_file_text_format(ctx):
    log = os.path.join(ctx.dir, "log.txt")
    r = ctx.rt("state", "kilntest-nonexistent", glob=["--root", ctx.root, "--log", log])
    assert r.rc != 0, r
    with open(log) as f:
        text = f.read()
    assert "error" in text, text


def test_create_bundle_long_and_short_flag(ctx):
    ctx.sh("sleep 30")
    ctx.save()
    a, b = ctx.new_id(), ctx.new_id()
    assert ctx.rt("create", "--bundle", ctx.bundle, a).ok
    assert ctx.rt("create", "-b", ctx.bundle, b).ok
    for cid in (a, b):
        st = ctx.state(cid)
        assert st["bundle"] == ctx.bundle, st
        assert st["status"] == "created", st
        ctx.delete(cid, force=True)


def test_create_flags_after_id(ctx):
    # `create ID --bundle B`, as the brief's clients write it; runc accepts it
    ctx.sh("sleep 30")
    ctx.save()
    cid = ctx.new_id()
    r = ctx.rt("create", cid, "--bundle", ctx.bundle)
    assert r.ok, r
    assert ctx.state(cid)["bundle"] == ctx.bundle
    ctx.delete(cid, force=True)


@pytest.mark.parametrize("cmd", ["state", "start", "kill", "delete", "create", "run"])
def test_missing_container_id_is_usage_error(ctx, cmd):
    r = ctx.rt(cmd, cwd=ctx.bundle)
    assert r.rc == 1, r
    assert r.err.strip(), r
    assert ctx.list_ids() == []


@pytest.mark.parametrize("args", [
    ["list", "--bogus"],
    ["--bogus", "list"],
    ["start", "a", "b"],
    ["--log-format", "xml", "list"],
])
def test_usage_errors_exit_1(ctx, args):
    # runc's status for every usage error (clap's default would be 2)
    r = ctx.rt(*args)
    assert r.rc == 1, r
    assert r.err.strip(), r
    assert ctx.list_ids() == []


@pytest.mark.kiln_only
@pytest.mark.parametrize("args,hint", [
    (["list", "--bogus"], "kiln list --help"),
    (["start"], "kiln start --help"),
    (["--log-format", "xml", "list"], "kiln --help"),
])
def test_usage_error_is_one_line_with_one_hint(ctx, args, hint):
    r = ctx.rt(*args)
    assert r.rc == 1, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].count("--help") == 1 and hint in lines[0], lines


@pytest.mark.parametrize("args", [["help", "start"], ["start", "--help"]])
def test_help_for_a_command(ctx, args):
    r = ctx.rt(*args, glob=[])
    assert r.rc == 0, r
    # the command's own usage, on stdout, and nothing on stderr
    assert re.search(r"^\s*(Usage: )?\S*(kiln|runc) start <", r.out, re.M), r.out
    assert r.err == "", r


def test_no_command_prints_help_on_stdout(ctx):
    r = ctx.rt(glob=[])
    assert r.rc == 0, r
    for cmd in ("create", "start", "delete", "exec"):
        assert re.search(rf"^\s+{cmd}\b", r.out, re.M), r.out


def test_unopenable_log_file_is_an_error(ctx):
    log = os.path.join(ctx.dir, "no-such-dir", "log.json")
    r = ctx.rt("list", glob=["--root", ctx.root, "--log", log, "--log-format", "json"])
    assert r.rc == 1, r
    assert log in r.err and "no such file" in r.err.lower(), r
    assert r.out == "", r


def test_create_default_bundle_is_cwd(ctx):
    ctx.sh("sleep 30")
    ctx.save()
    cid = ctx.new_id()
    r = ctx.rt("create", cid, cwd=ctx.bundle)
    assert r.ok, r
    st = ctx.state(cid)
    assert st["bundle"] == ctx.bundle, st
    assert st["rootfs"] == ctx.rootfs, st
    ctx.delete(cid, force=True)


def test_state_json_keys_and_format(ctx):
    ctx.sh("sleep 30")
    cid, _ = ctx.create()
    r = ctx.rt("state", cid)
    assert r.ok, r
    st = json.loads(r.out)
    keys = list(st)
    assert keys == STATE_KEYS, keys  # exactly these, in this order (no annotations)
    assert st["id"] == cid
    assert st["status"] == "created"
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert st["bundle"] == ctx.bundle
    assert st["rootfs"] == ctx.rootfs
    # the spec version the state complies with (the runtime's, not the config's)
    assert re.match(r"^1\.\d+\.\d+", st["ociVersion"]), st
    assert RFC3339_NANO_UTC.match(st["created"]), st["created"]
    # pid is the host pid of a live process
    assert os.path.exists(f"/proc/{st['pid']}")
    ctx.delete(cid, force=True)


def test_state_annotations_present_only_when_set(ctx):
    ctx.sh("sleep 30")
    ctx.config["annotations"] = {"org.kiln.test": "yes", "a": "b"}
    cid, _ = ctx.create()
    st = json.loads(ctx.rt("state", cid).out)
    # runc's order: annotations sit between created and owner
    assert list(st) == STATE_KEYS[:7] + ["annotations", "owner"], list(st)
    assert st["annotations"] == {"org.kiln.test": "yes", "a": "b"}
    ctx.delete(cid, force=True)


def test_state_pid_zero_when_stopped(ctx):
    ctx.sh("true")
    cid, _ = ctx.create()
    ctx.start(cid)
    assert ctx.wait_status(cid, "stopped"), ctx.rt("state", cid)
    st = json.loads(ctx.rt("state", cid).out)
    assert st["status"] == "stopped"
    assert st["pid"] == 0, st
    ctx.delete(cid)


def test_list_empty(ctx):
    r = ctx.rt("list")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    r = ctx.rt("list", "--format", "json")
    assert r.rc == 0, r
    # runc prints `null` (a Go nil slice) for no containers; clients parse it.
    assert r.out.strip() == "null", r.out
    r = ctx.rt("list", "-q")
    assert r.rc == 0 and r.out.strip() == "", r


def test_list_table_json_quiet(ctx):
    ctx.sh("sleep 30")
    a, _ = ctx.create()
    b, _ = ctx.create()
    ctx.start(b)
    sa, sb = ctx.state(a), ctx.state(b)

    r = ctx.rt("list")
    assert r.ok, r
    lines = r.out.splitlines()
    header = lines[0]
    assert header.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    # columns line up: every field starts where its header does
    cols = [header.index(h) for h in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows = {}
    for line in lines[1:]:
        fields = line.split()
        rows[fields[0]] = fields
        starts = [m.start() for m in re.finditer(r"\S+", line)]
        assert starts == cols, (header, line)
    assert set(rows) == {a, b}, rows
    assert rows[a][1:4] == [str(sa["pid"]), "created", ctx.bundle]
    assert rows[b][1:4] == [str(sb["pid"]), "running", ctx.bundle]
    assert rows[a][4] == sa["created"]
    assert rows[a][5] == "root"

    r = ctx.rt("list", "--format", "json")
    assert r.ok, r
    arr = json.loads(r.out)
    assert isinstance(arr, list) and len(arr) == 2
    by = {e["id"]: e for e in arr}
    assert by[a]["status"] == "created" and by[b]["status"] == "running"
    assert by[a]["pid"] == sa["pid"] and by[a]["bundle"] == ctx.bundle
    assert by[a]["owner"] == "root"

    r = ctx.rt("list", "-q")
    assert r.ok and sorted(r.out.split()) == sorted([a, b]), r
    ctx.delete(a, force=True)
    ctx.delete(b, force=True)


def test_state_and_list_read_a_large_state_whole(ctx):
    # 200 KiB of annotations: the state the runtime keeps spans many pages.
    ctx.sh("sleep 30")
    big = {f"org.kiln.test.{i:03}": "x" * 1000 for i in range(200)}
    ctx.config["annotations"] = big
    cid, _ = ctx.create()
    assert ctx.state(cid)["annotations"] == big
    r = ctx.rt("list", "--format", "json")
    assert r.ok, r
    assert [e["annotations"] for e in json.loads(r.out) if e["id"] == cid] == [big]
    ctx.delete(cid, force=True)


def test_list_many_containers(ctx):
    ctx.sh("sleep 60")
    ids = [ctx.create()[0] for _ in range(12)]
    for cid in ids[::2]:
        ctx.start(cid)
    states = {cid: ctx.state(cid) for cid in ids}
    assert {s["status"] for s in states.values()} == {"created", "running"}

    r = ctx.rt("list", "-q")
    assert r.ok and r.out.split() == sorted(ids), r
    r = ctx.rt("list", "--format", "json")
    assert r.ok, r
    listed = json.loads(r.out)
    assert [e["id"] for e in listed] == sorted(ids)
    for e in listed:
        assert e == {**states[e["id"]], "owner": "root"}, e
    r = ctx.rt("list")
    assert r.ok, r
    rows = [line.split() for line in r.out.splitlines()[1:]]
    assert [row[:3] for row in rows] == [
        [cid, str(states[cid]["pid"]), states[cid]["status"]] for cid in sorted(ids)]
    for cid in ids:
        ctx.delete(cid, force=True)


def test_ps_of_many_processes(ctx):
    # 800 processes: their pids fill more than a page of cgroup.procs.
    ctx.sh("for i in $(seq 800); do sleep 100 & done; wait")
    cid, _ = ctx.create()
    ctx.start(cid)
    init = ctx.state(cid)["pid"]

    def pids():
        r = ctx.rt("ps", "--format", "json", cid)
        return json.loads(r.out) if r.ok else None
    assert wait_for(lambda: len(pids() or []) == 801, 30), pids()
    got = pids()
    assert init in got and len(set(got)) == 801, got
    r = ctx.rt("ps", cid, "-o", "pid,comm")
    assert r.ok, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"], lines[0]
    # The same processes (a child may not have exec'd sleep yet: its command is not checked).
    assert sorted(int(line.split()[0]) for line in lines[1:]) == sorted(got)
    ctx.delete(cid, force=True)


@pytest.mark.parametrize("sig,expect", [
    (None, 15), ("KILL", 9), ("SIGKILL", 9), ("9", 9), ("TERM", 15), ("SIGUSR1", 10), ("10", 10),
])
def test_kill_signal_forms(ctx, sig, expect):
    # The container reports which signal it got through a bind-mounted dir.
    out = ctx.hostdir("out")
    ctx.add_mount({"destination": "/out", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.sh(
        "for s in 1 2 3 10 12 15; do trap \"echo $s > /out/sig; exit 0\" $s; done; "
        "echo ready > /out/ready; "
        "while true; do sleep 0.05; done"
    )
    cid, _ = ctx.create()
    ctx.start(cid)
    assert ctx.wait_status(cid, "running")
    assert wait_for(lambda: os.path.exists(os.path.join(out, "ready")), 5)
    r = ctx.rt("kill", cid) if sig is None else ctx.rt("kill", cid, sig)
    assert r.ok, r
    if expect == 9:
        assert ctx.wait_status(cid, "stopped"), ctx.rt("state", cid)
        assert not os.path.exists(os.path.join(out, "sig"))
    else:
        assert wait_for(lambda: os.path.exists(os.path.join(out, "sig")), 5)
        assert wait_for(lambda: open(os.path.join(out, "sig")).read().strip() != "", 2)
        with open(os.path.join(out, "sig")) as f:
            assert f.read().strip() == str(expect)
        assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)


@pytest.mark.parametrize("flag", ["--all", "-a"])
def test_kill_all(ctx, flag):
    # Share the host pid namespace so that --all must find every process.
    ctx.drop_ns("pid")
    ctx.sh("sleep 100 & sleep 100 & sleep 100 & wait")
    cid, _ = ctx.create()
    ctx.start(cid)
    st = ctx.state(cid)
    # wait for the container's processes to be there
    from conftest import wait_for

    def children():
        out = []
        for e in os.listdir("/proc"):
            if e.isdigit():
                try:
                    with open(f"/proc/{e}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == st["pid"] and fields[0] != "Z":
                        out.append(int(e))
                except OSError:
                    pass
        return out

    kids = wait_for(lambda: len(children()) == 3 and children(), 5)
    assert kids, children()
    for k in kids:
        ctx.track(k)
    r = ctx.rt("kill", flag, cid, "KILL")
    assert r.ok, r
    assert ctx.wait_status(cid, "stopped")
    from conftest import pid_alive
    assert wait_for(lambda: not any(pid_alive(k) for k in kids), 5), \
        [k for k in kids if pid_alive(k)]
    ctx.delete(cid)


@pytest.mark.parametrize("flag", ["--force", "-f"])
def test_delete_force_running(ctx, flag):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    pid = ctx.state(cid)["pid"]
    r = ctx.rt("delete", flag, cid)
    assert r.ok, r
    ctx.assert_gone(cid, pid)


def test_run_foreground_exit_status(ctx):
    ctx.sh("echo hello; exit 7")
    _, r = ctx.run()
    assert r.rc == 7, r
    assert r.out == "hello\n", r


def test_run_foreground_stdin_passthrough(ctx):
    ctx.config["process"]["args"] = ["cat"]
    _, r = ctx.run(input="from stdin\n")
    assert r.rc == 0, r
    assert r.out == "from stdin\n"


def test_run_killed_by_signal_exit_status(ctx):
    # Without a pid namespace sh is not an init, so it can signal itself.
    ctx.drop_ns("pid")
    ctx.sh("kill -9 $$")
    _, r = ctx.run()
    assert r.rc == 128 + 9, r
    ctx.sh("kill -USR1 $$")
    _, r = ctx.run()
    assert r.rc == 128 + 10, r


def test_run_init_killed_from_host_exit_status(ctx):
    ctx.sh("sleep 100")
    ctx.save()
    cid = ctx.new_id()
    p = subprocess.Popen([RUNTIME, "--root", ctx.root, "run", "--bundle", ctx.bundle, cid],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, cwd=ctx.dir)
    try:
        from conftest import wait_for
        assert ctx.wait_status(cid, "running", 10)
        pid = ctx.state(cid)["pid"]
        os.kill(pid, 9)
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert rc == 128 + 9


def test_run_forwards_sigterm(ctx):
    out = ctx.hostdir("out")
    ctx.add_mount({"destination": "/out", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.sh("trap 'echo got-term > /out/t; exit 42' TERM; echo ready > /out/ready; "
           "while true; do sleep 0.05; done")
    ctx.save()
    cid = ctx.new_id()
    p = subprocess.Popen([RUNTIME, "--root", ctx.root, "run", "--bundle", ctx.bundle, cid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ctx.dir)
    try:
        from conftest import wait_for
        assert wait_for(lambda: os.path.exists(os.path.join(out, "ready")), 10)
        p.send_signal(15)
        o, e = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=10)
    assert p.returncode == 42, (p.returncode, e)
    with open(os.path.join(out, "t")) as f:
        assert f.read() == "got-term\n"
    # a foreground run deletes its container when it ends
    assert cid not in ctx.list_ids()


@pytest.mark.parametrize("flag", ["-d", "--detach"])
def test_run_detach(ctx, flag):
    ctx.sh("sleep 100")
    cid, r = ctx.run(flag)
    assert r.rc == 0, r
    st = ctx.state(cid)
    assert st["status"] == "running"
    assert os.path.exists(f"/proc/{st['pid']}")
    ctx.delete(cid, force=True)


def test_pid_file_create(ctx):
    ctx.sh("sleep 100")
    pf = os.path.join(ctx.dir, "pidfile")
    cid, _ = ctx.create(None, "--pid-file", pf)
    with open(pf) as f:
        content = f.read()
    assert content.strip().isdigit(), repr(content)
    pid = int(content)
    st = ctx.state(cid)
    assert pid == st["pid"]
    # it is the init process of the container: its pid namespace differs
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    ctx.delete(cid, force=True)


def test_pid_file_relative_and_run_detach(ctx):
    ctx.sh("sleep 100")
    cid, r = ctx.run("-d", "--pid-file", "rel.pid", cwd=ctx.dir)
    assert r.ok, r
    with open(os.path.join(ctx.dir, "rel.pid")) as f:
        assert int(f.read()) == ctx.state(cid)["pid"]
    ctx.delete(cid, force=True)


def test_preserve_fds(ctx):
    data = os.path.join(ctx.dir, "data")
    with open(data, "w") as f:
        f.write("preserved content\n")
    ctx.sh("ls -l /proc/self/fd/ >&2; cat <&3; cat <&4")
    ctx.save()
    fd3 = os.open(data, os.O_RDONLY)
    r_, w_ = os.pipe()
    os.write(w_, b"pipe content\n")
    os.close(w_)
    try:
        # pass_fds keeps fds at their numbers only if they are already 3/4;
        # use a small shell to place them.
        cid = ctx.new_id()
        cmd = (f"exec 3<&{fd3} 4<&{r_}; exec {RUNTIME} --root {ctx.root} run "
               f"--bundle {ctx.bundle} --preserve-fds 2 {cid}")
        cp = subprocess.run(["bash", "-c", cmd], pass_fds=(fd3, r_), capture_output=True,
                            text=True, timeout=CALL_TIMEOUT, cwd=ctx.dir)
    finally:
        os.close(fd3)
        os.close(r_)
    assert cp.returncode == 0, cp
    assert cp.stdout == "preserved content\npipe content\n", cp


def test_preserve_fds_not_given_closes_extra_fds(ctx):
    ctx.sh("test -e /proc/self/fd/3 && echo open || echo closed")
    ctx.save()
    cid = ctx.new_id()
    r_, w_ = os.pipe()
    try:
        cmd = (f"exec 3<&{r_}; exec {RUNTIME} --root {ctx.root} run "
               f"--bundle {ctx.bundle} {cid}")
        cp = subprocess.run(["bash", "-c", cmd], pass_fds=(r_,), capture_output=True,
                            text=True, timeout=CALL_TIMEOUT, cwd=ctx.dir)
    finally:
        os.close(r_)
        os.close(w_)
    assert cp.returncode == 0, cp
    assert cp.stdout == "closed\n", cp


def test_listen_fds(ctx):
    data = os.path.join(ctx.dir, "data")
    with open(data, "w") as f:
        f.write("socket-activated\n")
    ctx.sh('echo "LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID"; cat <&3')
    ctx.save()
    cid = ctx.new_id()
    fd = os.open(data, os.O_RDONLY)
    try:
        cmd = (f"exec 3<&{fd}; export LISTEN_FDS=1 LISTEN_PID=$$; exec {RUNTIME} --root "
               f"{ctx.root} run --bundle {ctx.bundle} {cid}")
        cp = subprocess.run(["bash", "-c", cmd], pass_fds=(fd,), capture_output=True,
                            text=True, timeout=CALL_TIMEOUT, cwd=ctx.dir)
    finally:
        os.close(fd)
    assert cp.returncode == 0, cp
    # The runtime passes the fd and the env on, with LISTEN_PID rewritten to
    # the container process (pid 1 in its pid namespace).
    assert cp.stdout == "LISTEN_FDS=1 LISTEN_PID=1\nsocket-activated\n", cp


# ------------------------------------------------------------------ spec


def runc_spec_reference(rootless):
    """What runc writes for `spec` (if runc is here), else the built-in copy."""
    runc = shutil.which("runc")
    if runc:
        import tempfile
        d = tempfile.mkdtemp()
        try:
            subprocess.run([runc, "spec"] + (["--rootless"] if rootless else []), cwd=d,
                           check=True, timeout=CALL_TIMEOUT)
            with open(os.path.join(d, "config.json")) as f:
                return json.load(f)
        finally:
            shutil.rmtree(d)
    if rootless:
        pytest.skip("no runc to compare `spec --rootless` with")
    c = base_config()
    c["process"]["terminal"] = True
    return c


def strip_version(c):
    c = dict(c)
    c.pop("ociVersion", None)
    return c


def test_spec_matches_runc(ctx, bare_dir):
    r = ctx.rt("spec", glob=[], cwd=bare_dir)
    assert r.rc == 0, r
    with open(os.path.join(bare_dir, "config.json")) as f:
        got = json.load(f)
    assert strip_version(got) == strip_version(runc_spec_reference(False))
    assert "ociVersion" in got


def test_spec_refuses_to_overwrite(ctx, bare_dir):
    p = os.path.join(bare_dir, "config.json")
    with open(p, "w") as f:
        f.write("keep me")
    r = ctx.rt("spec", glob=[], cwd=bare_dir)
    assert r.rc != 0, r
    assert r.err.strip(), r
    with open(p) as f:
        assert f.read() == "keep me"


def test_spec_rootless_matches_runc(ctx, bare_dir):
    r = ctx.rt("spec", "--rootless", glob=[], cwd=bare_dir)
    assert r.rc == 0, r
    with open(os.path.join(bare_dir, "config.json")) as f:
        got = json.load(f)
    assert strip_version(got) == strip_version(runc_spec_reference(True))
    assert "user" in [n["type"] for n in got["linux"]["namespaces"]]


@pytest.mark.parametrize("flag", ["--bundle", "-b"])
def test_spec_bundle_flag(ctx, bare_dir, flag):
    target = os.path.join(bare_dir, "b")
    os.mkdir(target)
    r = ctx.rt("spec", flag, target, glob=[], cwd=bare_dir)
    assert r.rc == 0, r
    assert not os.path.exists(os.path.join(bare_dir, "config.json"))
    with open(os.path.join(target, "config.json")) as f:
        assert strip_version(json.load(f)) == strip_version(runc_spec_reference(False))


def test_spec_output_runs(ctx, bare_dir):
    """A config written by `spec` (made non-interactive) runs in the runtime."""
    r = ctx.rt("spec", glob=[], cwd=ctx.bundle)
    assert r.rc == 0, r
    with open(os.path.join(ctx.bundle, "config.json")) as f:
        c = json.load(f)
    c["process"]["terminal"] = False
    c["process"]["args"] = ["sh", "-c", "echo spec-ok"]
    ctx.config = c
    _, r = ctx.run()
    assert r.rc == 0 and r.out == "spec-ok\n", r


# ------------------------------------------------------------------ features


def test_features(ctx):
    r = ctx.rt("features", glob=[])
    assert r.rc == 0, r
    f = json.loads(r.out)
    assert isinstance(f, dict)
    assert re.match(r"^1\.\d+\.\d+", f["ociVersionMin"]), f
    assert re.match(r"^1\.\d+\.\d+", f["ociVersionMax"]), f
    for h in ["prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop"]:
        assert h in f["hooks"], f["hooks"]
    for o in ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "private",
              "rprivate", "shared", "slave", "relatime", "strictatime"]:
        assert o in f["mountOptions"], o
    ns = f["linux"]["namespaces"]
    for n in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]:
        assert n in ns, ns
    caps = f["linux"].get("capabilities")
    if caps is not None:
        assert "CAP_SYS_ADMIN" in caps and "CAP_KILL" in caps


# ------------------------------------------------------------ logs on stderr and state files

# logrus's TextFormatter off a terminal; runc's --debug adds func= and file= after msg.
LOGRUS_TEXT = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)" '
                         r'level=(debug|info|warning|error)( msg=("(\\.|[^"\\])*"|[^ "]+))?( |$)')


def run_with_stdout(ctx, stdout_fd, *args, closed=()):
    """The runtime with its stdout on `stdout_fd`, and the fds in `closed` not open at all."""
    shut = " ".join(f"{n}<&-" for n in closed)
    cmd = ["bash", "-c", f'exec {shut} "$@"', "bash", RUNTIME, "--root", ctx.root, *args]
    return subprocess.run(cmd, stdout=stdout_fd, stderr=subprocess.PIPE, cwd=ctx.dir,
                          timeout=CALL_TIMEOUT, pass_fds=())


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["features"], ["list"],
                                  ["list", "-f", "json"], ["state", "CID"], ["ps", "-f", "json", "CID"]])
def test_a_reader_that_went_away_ends_the_runtime_by_sigpipe(ctx, args):
    """`runtime list | head -1` with the reader gone: the runtime dies of SIGPIPE, as runc's Go
    runtime does on its stdout, quietly, not with a panic or an error of its own."""
    ctx.sh("sleep 30")
    cid, _ = ctx.create()
    r, w = os.pipe()
    os.close(r)
    try:
        p = run_with_stdout(ctx, w, *[cid if a == "CID" else a for a in args])
    finally:
        os.close(w)
    assert p.returncode == -13, (p.returncode, p.stderr)
    assert p.stderr == b"", p.stderr


@runc_deviates("with stdio closed, Go's runtime opens its own fds (an epoll) on 0-2, and the "
               "container's process inherits them")
def test_closed_stdio_is_opened_on_dev_null(ctx):
    """A caller that closed stdin, stdout and stderr: what create opens (state files, the
    config) must not land on fds 0-2, so the container is whole, and its process finds
    /dev/null there (it inherits the runtime's stdio)."""
    ctx.sh("sleep 30")
    ctx.save()
    cid = ctx.new_id()
    p = run_with_stdout(ctx, subprocess.DEVNULL, "create", "--bundle", ctx.bundle, cid,
                        closed=(0, 1, 2))
    assert p.returncode == 0, p
    st = ctx.state(cid)
    assert st["status"] == "created", st
    assert os.readlink(f"/proc/{st['pid']}/fd/1") == "/dev/null"
    assert ctx.rt("start", cid).ok
    wait_for(lambda: ctx.state(cid)["status"] == "running")
    fds = {n: os.readlink(f"/proc/{st['pid']}/fd/{n}") for n in range(3)}
    assert fds == {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"}, fds


def test_error_without_log_is_a_logrus_text_line(ctx):
    # Scripts grep runc's stderr for level=error.
    r = ctx.rt("state", "kilntest-nonexistent")
    assert r.rc != 0, r
    lines = r.err.splitlines()
    assert len(lines) == 1 and LOGRUS_TEXT.match(lines[0]), r
    assert " level=error msg=" in lines[0] and "does not exist" in lines[0], r
    assert r.err.endswith('"\n'), r


def test_debug_lines_are_logrus_text_lines(ctx):
    ctx.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kiln_no_such_syscall", "mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    ctx.sh("true")
    ctx.save()
    r = ctx.rt("--debug", "run", "--bundle", ctx.bundle, ctx.new_id())
    assert r.rc == 0, r
    lines = [l for l in r.err.splitlines() if l]
    assert lines and all(LOGRUS_TEXT.match(l) for l in lines), r
    assert any(" level=debug " in l for l in lines), r


def test_log_file_json_lines_stay_json(ctx):
    log = os.path.join(ctx.dir, "log.json")
    r = ctx.rt("state", "kilntest-nonexistent", glob=["--root", ctx.root, "--log", log, "--log-format", "json"])
    assert r.rc != 0, r
    with open(log) as f:
        entries = [json.loads(l) for l in f.read().splitlines()]
    assert [e["level"] for e in entries] == ["error"] and "does not exist" in entries[0]["msg"], entries
    # The error also reaches stderr for whoever runs it by hand, without logrus's decoration.
    assert "does not exist" in r.err and "level=" not in r.err, r


def test_state_files_are_private(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    mode = lambda p: os.stat(p).st_mode & 0o7777
    assert mode(ctx.root) == 0o700
    assert mode(os.path.join(ctx.root, cid)) == 0o711
    assert mode(os.path.join(ctx.root, cid, "state.json")) == 0o600
    ctx.delete(cid, force=True)


def as_nobody(ctx, *args):
    """The runtime as an unprivileged user: its own copy, the build tree may be closed."""
    exe = os.path.join(ctx.dir, "bin", os.path.basename(RUNTIME))
    if not os.path.exists(exe):
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        shutil.copy(RUNTIME, exe)
        os.chmod(exe, 0o755)
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "--root", ctx.root]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=CALL_TIMEOUT,
                          cwd="/", env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("cmd", [["state"], ["kill"], ["list"]])
def test_another_users_root_is_refused(ctx, cmd):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    r = as_nobody(ctx, *cmd, *([] if cmd == ["list"] else [cid]))
    assert r.returncode != 0 and r.stdout == "", r
    assert len(r.stderr.splitlines()) == 1 and ctx.root in r.stderr, r
    assert ctx.state(cid)["status"] == "created"
    ctx.delete(cid, force=True)


@pytest.mark.parametrize("cmd", [["state"], ["list"]])
def test_a_root_another_user_cannot_reach_is_refused(ctx, cmd):
    # Below a directory private to root, the user cannot even look at the state root.
    private = ctx.hostdir("private")
    os.chmod(private, 0o700)
    ctx.root = os.path.join(private, "state")
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    r = as_nobody(ctx, *cmd, *([] if cmd == ["list"] else [cid]))
    assert r.returncode != 0 and r.stdout == "", r
    assert len(r.stderr.splitlines()) == 1 and ctx.root in r.stderr, r
    assert "does not exist" not in r.stderr, r
    ctx.delete(cid, force=True)


@runc_deviates("runc reports the EACCES of the first file it opens, not whose root it is")
def test_another_users_root_error_names_the_owner(ctx):
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    r = as_nobody(ctx, "state", cid)
    assert r.returncode != 0, r
    assert "belongs to uid 0" in r.stderr and "does not exist" not in r.stderr, r
    ctx.delete(cid, force=True)
