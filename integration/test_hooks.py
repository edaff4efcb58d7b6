"""hooks: prestart, createRuntime, createContainer, startContainer,
poststart, poststop."""

import json
import os
import time

import pytest

from conftest import runc_deviates, wait_for

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]


def marker_hook(name, outdir):
    """A hook that saves the state it gets on stdin and appends its name to
    an order file. startContainer runs in the container, where outdir is
    bind-mounted at /hooks."""
    d = "/hooks" if name == "startContainer" else outdir
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f'cat > {d}/{name}.json; echo {name} >> {d}/order']}


def setup_markers(ctx):
    out = ctx.hostdir("hooks")
    ctx.add_mount({"destination": "/hooks", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.config["hooks"] = {h: [marker_hook(h, out)] for h in HOOKS}
    return out


def read_order(out):
    p = os.path.join(out, "order")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return f.read().split()


def read_state(out, name):
    with open(os.path.join(out, f"{name}.json")) as f:
        return json.load(f)


@runc_deviates("1.1.5 runs poststart hooks during create, before startContainer")
def test_hooks_order(ctx):
    out = setup_markers(ctx)
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    assert read_order(out) == ["prestart", "createRuntime", "createContainer"]
    ctx.start(cid)
    assert wait_for(lambda: len(read_order(out)) == 5, 5), read_order(out)
    assert read_order(out) == HOOKS[:5]
    ctx.delete(cid, force=True)
    assert read_order(out) == HOOKS


def test_hooks_state_on_stdin(ctx):
    out = setup_markers(ctx)
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    ctx.start(cid)
    assert wait_for(lambda: len(read_order(out)) == 5, 5), read_order(out)
    ctx.delete(cid, force=True)
    assert sorted(read_order(out)) == sorted(HOOKS)

    states = {h: read_state(out, h) for h in HOOKS}
    for h, st in states.items():
        assert st["id"] == cid, (h, st)
        assert st["bundle"] == ctx.bundle, (h, st)
        assert "ociVersion" in st, (h, st)
    for h in ("prestart", "createRuntime", "poststart"):
        assert states[h]["pid"] == pid, (h, states[h])
    assert states["prestart"]["status"] == "creating"
    assert states["createRuntime"]["status"] == "creating"
    assert states["createContainer"]["status"] == "creating"
    assert states["startContainer"]["status"] == "created"
    assert states["poststop"]["status"] == "stopped"


@runc_deviates("1.1.5 gives hooks run in the container the pid as seen there (1)")
def test_container_hooks_get_host_pid(ctx):
    out = setup_markers(ctx)
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    pid = ctx.state(cid)["pid"]
    ctx.start(cid)
    assert wait_for(lambda: "startContainer" in read_order(out), 5), read_order(out)
    got = {h: read_state(out, h)["pid"] for h in ("createContainer", "startContainer")}
    assert got == {"createContainer": pid, "startContainer": pid}
    ctx.delete(cid, force=True)


@runc_deviates("1.1.5 runs poststart hooks during create, so they see status created")
def test_poststart_sees_running(ctx):
    out = setup_markers(ctx)
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    assert wait_for(lambda: "poststart" in read_order(out), 5), read_order(out)
    assert read_state(out, "poststart")["status"] == "running"
    ctx.delete(cid, force=True)


@runc_deviates("1.1.5 runs poststart hooks during create, before startContainer")
def test_hooks_with_foreground_run(ctx):
    out = setup_markers(ctx)
    ctx.sh("echo ran")
    _, r = ctx.run()
    assert r.rc == 0 and r.out == "ran\n", r
    assert read_order(out) == HOOKS


def test_hooks_annotations_in_state(ctx):
    out = setup_markers(ctx)
    ctx.config["annotations"] = {"org.kiln.hook": "seen"}
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc == 0, r
    assert read_state(out, "createRuntime")["annotations"] == {"org.kiln.hook": "seen"}


def test_hook_args_and_env(ctx):
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh",
        "args": ["hook-argv0", "-c",
                 f'echo "$0|$1|$KILNVAR|$PATH" > {out}/args; '
                 f"/usr/bin/tr '\\0' '|' < /proc/$$/cmdline > {out}/cmdline", "one", "two words"],
        "env": ["KILNVAR=from-env", "PATH=/custom"],
    }]}
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc == 0, r
    with open(os.path.join(out, "args")) as f:
        # sh -c SCRIPT A B: $0 is A, $1 is B
        assert f.read() == "one|two words|from-env|/custom\n"
    with open(os.path.join(out, "cmdline")) as f:
        # args[0] is argv[0], not the path
        assert f.read().split("|")[:2] == ["hook-argv0", "-c"]


def test_hook_env_not_inherited(ctx):
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", f"env > {out}/env"], "env": ["ONLY=this"]}]}
    ctx.sh("true")
    env = dict(os.environ, KILN_SHOULD_NOT_LEAK="1")
    _, r = ctx.run(env=env)
    assert r.rc == 0, r
    with open(os.path.join(out, "env")) as f:
        names = {l.split("=", 1)[0] for l in f.read().splitlines()}
    assert "ONLY" in names
    assert "KILN_SHOULD_NOT_LEAK" not in names, names


def test_multiple_hooks_of_a_kind_run_in_order(ctx):
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo {i} >> {out}/order"]}
        for i in range(4)]}
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc == 0, r
    assert read_order(out) == ["0", "1", "2", "3"]


def assert_nothing_created(ctx, cid):
    assert ctx.rt("state", cid).rc != 0
    assert ctx.list_ids() == []


@pytest.mark.parametrize("kind", ["createRuntime", "prestart", "createContainer"])
def test_failing_create_hook_fails_create(ctx, kind):
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {kind: [{"path": "/bin/sh",
                                   "args": ["sh", "-c", "echo hook-failed >&2; exit 3"]}]}
    ctx.config["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": [
        "sh", "-c", "touch /hooks/started"]}]
    ctx.add_mount({"destination": "/hooks", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    assert r.err.strip(), r
    assert_nothing_created(ctx, cid)
    assert not os.path.exists(os.path.join(out, "started"))


def test_hook_timeout_fails_create(ctx):
    ctx.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                              "timeout": 1}]}
    ctx.sh("true")
    t0 = time.monotonic()
    cid, r = ctx.create(check=False, timeout=25)
    took = time.monotonic() - t0
    assert r.rc != 0, r
    assert took < 10, took
    assert_nothing_created(ctx, cid)


def test_hook_within_timeout_succeeds(ctx):
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", f"sleep 0.2; touch {out}/ok"], "timeout": 5}]}
    ctx.sh("true")
    _, r = ctx.run()
    assert r.rc == 0, r
    assert os.path.exists(os.path.join(out, "ok"))


def test_hook_missing_binary_fails_create(ctx):
    ctx.config["hooks"] = {"createRuntime": [{"path": "/nonexistent/hook"}]}
    ctx.sh("true")
    cid, r = ctx.create(check=False)
    assert r.rc != 0, r
    assert_nothing_created(ctx, cid)


def test_poststop_runs_on_delete_of_created_container(ctx):
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {"poststop": [marker_hook("poststop", out)]}
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    assert read_order(out) == []
    ctx.delete(cid, force=True)
    assert read_order(out) == ["poststop"]
    assert read_state(out, "poststop")["id"] == cid


def test_start_container_hook_runs_in_container(ctx):
    out = ctx.hostdir("hooks")
    ctx.add_mount({"destination": "/hooks", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.config["hooks"] = {
        "startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "readlink /proc/self/ns/mnt > /hooks/mnt; hostname > /hooks/host"]}],
        "createRuntime": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"readlink /proc/self/ns/mnt > {out}/rt-mnt"]}],
    }
    ctx.config["hostname"] = "hook-host"
    ctx.sh("readlink /proc/self/ns/mnt")
    _, r = ctx.run()
    assert r.rc == 0, r
    with open(os.path.join(out, "mnt")) as f:
        assert f.read() == r.out
    with open(os.path.join(out, "host")) as f:
        assert f.read() == "hook-host\n"
    with open(os.path.join(out, "rt-mnt")) as f:
        assert f.read().strip() == os.readlink("/proc/self/ns/mnt")


@runc_deviates("1.1.5 reports start as successful when a startContainer hook fails")
def test_failing_start_container_hook_fails_start(ctx):
    """The spec: a failing startContainer hook is an error and the program never runs."""
    out = ctx.hostdir("hooks")
    ctx.add_mount({"destination": "/hooks", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "echo start-hook-failed >&2; exit 4"]}]}
    ctx.sh("touch /hooks/program-ran")
    cid, _ = ctx.create()
    r = ctx.start(cid, check=False)
    assert r.rc != 0, r
    assert r.err.strip(), r
    assert ctx.wait_status(cid, "stopped")
    assert not os.path.exists(os.path.join(out, "program-ran"))
    ctx.delete(cid)


@runc_deviates("1.1.5 runs poststart hooks during create and only warns when one fails")
def test_failing_poststart_hook_fails_start_and_stops_the_container(ctx):
    """Runtime spec 1.3, as runc 1.2: a failing poststart hook fails `start`, naming the hook,
    and the container is stopped; `delete` then runs its poststop hooks."""
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo poststart-failed >&2; exit 5"]}],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {out}/poststop-ran"]}],
    }
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    r = ctx.start(cid, check=False)
    assert r.rc != 0, r
    assert "poststart" in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r
    assert ctx.wait_status(cid, "stopped")
    ctx.delete(cid)
    assert os.path.exists(os.path.join(out, "poststop-ran"))


def env_names(path):
    with open(path) as f:
        return {l.split("=", 1)[0] for l in f.read().splitlines() if "=" in l}


def test_runtime_hooks_without_env_inherit_the_runtime_environment(ctx):
    # Tools configured only through the environment (a hook's DEBUG, PATH for helpers) rely
    # on it, as runc's hooks get its environment when `env` is absent.
    out = ctx.hostdir("hooks")
    ctx.config["hooks"] = {h: [{"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}/{h}.env"]}]
                           for h in ("prestart", "createRuntime", "poststart", "poststop")}
    ctx.sh("true")
    env = dict(os.environ, KILN_HOOK_MARKER="from-the-caller")
    _, r = ctx.run(env=env)
    assert r.rc == 0, r
    for h in ("prestart", "createRuntime", "poststart", "poststop"):
        assert "KILN_HOOK_MARKER" in env_names(os.path.join(out, f"{h}.env")), h


@runc_deviates("1.1.5's init gives its hooks the container process's env; newer runc clears "
               "it (init's os.Clearenv), so they start with an empty one")
def test_container_hooks_without_env_get_an_empty_environment(ctx):
    out = setup_markers(ctx)
    ctx.config["hooks"] = {
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}/createContainer.env"]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "env > /hooks/startContainer.env"]}],
    }
    ctx.sh("true")
    _, r = ctx.run(env=dict(os.environ, KILN_HOOK_MARKER="from-the-caller"))
    assert r.rc == 0, r
    for h in ("createContainer", "startContainer"):
        names = env_names(os.path.join(out, f"{h}.env"))
        # Neither the runtime's environment nor the process's (TERM=xterm in config.json).
        assert "KILN_HOOK_MARKER" not in names and "TERM" not in names, (h, names)


@runc_deviates("1.1.5 passes the caller's fds of `delete` on to the poststop hooks")
def test_hooks_get_none_of_the_callers_fds(ctx):
    # The runtime's caller holds a file at fd 50 for every command; no hook may get it.
    out = ctx.hostdir("hooks")
    ctx.add_mount({"destination": "/hooks", "type": "bind", "source": out,
                   "options": ["rbind", "rw"]})
    ctx.config["hooks"] = {}
    for name in HOOKS:
        d = "/hooks" if name == "startContainer" else out
        ctx.config["hooks"][name] = [{"path": "/bin/sh", "args": [
            "sh", "-c", f"[ -e /proc/$$/fd/50 ] && echo {name} >> {d}/leaked; "
                        f"echo {name} >> {d}/order"]}]
    ctx.sh("sleep 100")
    ctx.save()
    cid = ctx.new_id()
    with open(os.path.join(ctx.dir, "caller-file"), "w") as f:
        for args in (["create", "--bundle", ctx.bundle, cid], ["start", cid],
                     ["delete", "--force", cid]):
            r = ctx.rt_with_fds({50: f}, *args)
            assert r.ok, r
    assert sorted(read_order(out)) == sorted(HOOKS)
    leaked = os.path.join(out, "leaked")
    assert not os.path.exists(leaked), open(leaked).read()


def test_hook_working_directories(ctx):
    # runc chdirs into the bundle for `create`, into the rootfs (host path) for
    # createContainer, and init is in process.cwd for startContainer; delete stays where its
    # caller is.
    out = setup_markers(ctx)
    cwd = lambda h, d=out: {"path": "/bin/sh", "args": ["sh", "-c", f"pwd -P > {d}/{h}.cwd"]}
    ctx.config["hooks"] = {h: [cwd(h, "/hooks" if h == "startContainer" else out)] for h in HOOKS}
    ctx.config["process"]["cwd"] = "/hooks"
    ctx.sh("sleep 100")
    cid, _ = ctx.create()
    ctx.start(cid)
    ctx.delete(cid, force=True)

    def seen(h):
        with open(os.path.join(out, f"{h}.cwd")) as f:
            return f.read().strip()
    real = os.path.realpath
    assert seen("prestart") == real(ctx.bundle)
    assert seen("createRuntime") == real(ctx.bundle)
    assert seen("createContainer") == real(ctx.rootfs)
    assert seen("startContainer") == "/hooks"
    # (poststart: runc 1.1.5 runs it in `create`, see test_hooks_order.)
    assert seen("poststop") == real(ctx.dir)
