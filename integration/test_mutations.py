"""Structure-aware mutations of the base config: a few hundred configs, each one change away
from the config every test starts from (a wrong type, an extreme number, a control character
or 100 KB in a string, 10,000-deep nesting, a missing or an unknown field, broken JSON text).

For each, `create` either succeeds (then `delete -f` removes it) or fails as bad input must:
exit 1 with an error on stderr, no panic, nothing left behind (state, mounts, cgroups,
processes). The mutations are seeded (KILN_MUTATION_SEED, default 11): a failure names the
mutation, and the same seed makes the same configs again.
"""

import json
import os
import random

import pytest

from conftest import (base_config, leftover_cgroups, leftover_mounts, leftover_processes,
                      runc_deviates)

SEED = int(os.environ.get("KILN_MUTATION_SEED", "11"))
PER_KIND = 50

# Replaced, in the JSON text, by 10,000 nested arrays or objects: past serde_json's recursion
# limit (128) and at Go's (10,000).
DEEP_ARRAY = "__kiln_deep_array__"
DEEP_OBJECT = "__kiln_deep_object__"
DEPTH = 10_000

NUMBERS = [0, -1, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
           -2**63, -2**63 - 1, 10**400, 1.5, -0.0, 1e308, 4e-320]
STRINGS = ["", " ", "\0", "a\0b", "a\nb", "\r\n", "\x1b[31mred\x1b[0m\x1b]0;title\x07", "\t\x7f\x01",
           "x" * 100_000, "日本語\u200b\ufeff\u202e", "\ud800", "../../../../etc", "/proc/self/fd/0",
           "%s%n%x", "a=b=c", "/" + "d/" * 2000]
WRONG_TYPES = ["x", 1, -1, 1.5, True, None, [], {}, [1, "a"], {"k": "v"}]

# Fields the base config lacks, added with a number or a string. Not linux.cgroupsPath: a
# string such as ../../etc there would aim at the host's own cgroups.
EXTRA_NUMBERS = [("process", "oomScoreAdj"), ("process", "user", "umask"),
                 ("process", "user", "additionalGids", 0), ("process", "consoleSize", "height"),
                 ("process", "rlimits", 0, "soft"), ("process", "rlimits", 0, "hard"),
                 ("linux", "resources", "memory", "limit"), ("linux", "resources", "pids", "limit"),
                 ("linux", "resources", "cpu", "shares"), ("linux", "resources", "cpu", "quota"),
                 ("linux", "uidMappings", 0, "size"), ("linux", "devices", 0, "major")]
EXTRA_STRINGS = [("domainname",), ("process", "apparmorProfile"), ("process", "env", 0),
                 ("process", "args", 1), ("linux", "sysctl", "net.ipv4.ip_forward"),
                 ("linux", "sysctl", "kernel.shmmax"), ("annotations", "org.kiln.test"),
                 ("linux", "rootfsPropagation"), ("linux", "devices", 0, "path"),
                 ("mounts", 1, "options", 0)]


def leaves(v, path=()):
    """Every (path, value) of a JSON value, containers included, the root excepted."""
    if path:
        yield path, v
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        yield from leaves(x, path + (k,))


def put(cfg, path, value):
    """Sets path to value, making the dicts and lists on the way (a list index past the end
    appends)."""
    cur = cfg
    for i, k in enumerate(path):
        last = i == len(path) - 1
        nxt = value if last else ([] if isinstance(path[i + 1], int) else {})
        if isinstance(cur, list):
            if k >= len(cur):
                cur.append(nxt)
                k = len(cur) - 1
            elif last:
                cur[k] = value
        elif last or k not in cur or not isinstance(cur[k], (dict, list)):
            cur[k] = nxt
        cur = cur[k]


def delete(cfg, path):
    cur = cfg
    for k in path[:-1]:
        cur = cur[k]
    del cur[path[-1]]


def text_of(cfg):
    text = json.dumps(cfg)
    text = text.replace(json.dumps(DEEP_ARRAY), "[" * DEPTH + "]" * DEPTH)
    text = text.replace(json.dumps(DEEP_OBJECT), '{"a":' * DEPTH + "1" + "}" * DEPTH)
    return text.encode()


def name(path):
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def short(v):
    s = repr(v)
    return s if len(s) <= 40 else f"{s[:30]}...({len(s)} chars)"


def kind_of(v):
    return type(v).__name__ if not isinstance(v, bool) else "bool"


def mutate(kind, rng):
    """One mutation of the base config: (what it did, config.json's bytes)."""
    cfg = base_config()
    paths = [p for p, _ in leaves(cfg)]
    if kind == "wrong-type":
        path, old = rng.choice(list(leaves(cfg)))
        value = rng.choice([v for v in WRONG_TYPES if kind_of(v) != kind_of(old)])
        put(cfg, path, value)
        return f"{name(path)} = {short(value)}", text_of(cfg)
    if kind == "number":
        numeric = [p for p, v in leaves(cfg) if kind_of(v) in ("int", "float")]
        path = rng.choice(numeric + EXTRA_NUMBERS)
        value = rng.choice(NUMBERS)
        put(cfg, path, value)
        return f"{name(path)} = {short(value)}", text_of(cfg)
    if kind == "string":
        strings = [p for p, v in leaves(cfg) if isinstance(v, str)]
        path = rng.choice(strings + EXTRA_STRINGS)
        value = rng.choice(STRINGS)
        put(cfg, path, value)
        return f"{name(path)} = {short(value)}", text_of(cfg)
    if kind == "nesting":
        path = rng.choice(paths)
        deep = rng.choice([DEEP_ARRAY, DEEP_OBJECT])
        put(cfg, path, deep)
        return f"{name(path)} = {deep}", text_of(cfg)
    if kind == "missing":
        path = rng.choice([p for p in paths if not isinstance(p[-1], int)] + [("root",), ("process",)])
        delete(cfg, path)
        return f"no {name(path)}", text_of(cfg)
    if kind == "unknown":
        dicts = [()] + [p for p, v in leaves(cfg) if isinstance(v, dict)]
        path = rng.choice(dicts) + (rng.choice(["kilnUnknown", "", "\n", "Process", "x" * 1000]),)
        value = rng.choice(WRONG_TYPES)
        put(cfg, path, value)
        return f"{short(name(path))} = {short(value)}", text_of(cfg)
    assert kind == "text", kind
    text = text_of(cfg)
    how = rng.choice(["truncate", "byte", "duplicate", "garbage", "bom", "empty", "raw-newline"])
    at = rng.randrange(len(text))
    if how == "truncate":
        return f"text cut at byte {at}", text[:at]
    if how == "byte":
        b = bytes([rng.choice([0, 0x0a, 0x1b, 0x7f, 0x80, 0xc3, 0xff, ord('"'), ord("\\")])])
        return f"byte {b!r} at {at}", text[:at] + b + text[at:]
    if how == "duplicate":
        return "ociVersion twice", text.replace(b'{"ociVersion"', b'{"ociVersion": 5, "ociVersion"', 1)
    if how == "garbage":
        return "garbage after the document", text + b" {}"
    if how == "bom":
        return "a byte-order mark first", b"\xef\xbb\xbf" + text
    if how == "empty":
        return "empty file", b""
    return "a raw newline in the hostname", text.replace(b'"runc"', b'"ru\nnc"', 1)


def mutations(kind):
    rng = random.Random(f"{SEED}/{kind}")
    return [mutate(kind, rng) for _ in range(PER_KIND)]


def leftovers(ctx, cid):
    found = []
    if os.path.isdir(ctx.root) and os.listdir(ctx.root):
        found.append(f"state: {os.listdir(ctx.root)}")
    found += [f"mount {m}" for m in leftover_mounts([ctx.dir])]
    found += [f"cgroup {c}" for c in leftover_cgroups([cid])]
    found += leftover_processes([ctx.dir], [cid], [])
    return found


def panicked(err):
    # Rust's panic message and runc's Go panic.
    return "panicked" in err or "goroutine " in err or err.startswith("panic: ")


# kind -> run_mutations' result: the tests share one run of each kind's mutations.
_RUNS = {}


def run_mutations(ctx, kind):
    """Creates each mutation (and deletes what was created), once per session. Returns the
    problems found, and the errors that are not one short line (apart: runc's are not all)."""
    if kind not in _RUNS:
        _RUNS[kind] = _run_mutations(ctx, kind)
    return _RUNS[kind]


def _run_mutations(ctx, kind):
    cid = ctx.new_id()
    problems, long_errors = [], []
    for what, text in mutations(kind):
        with open(os.path.join(ctx.bundle, "config.json"), "wb") as f:
            f.write(text)
        r = ctx.rt("create", "--bundle", ctx.bundle, cid)
        if r.rc not in (0, 1) or panicked(r.err):
            problems.append(f"{what}: exit {r.rc}: {r.err[:300]!r}")
        if r.rc == 0:
            d = ctx.rt("delete", "--force", cid)
            if d.rc != 0:
                problems.append(f"{what}: created, but delete --force: {d!r}")
        elif not r.err.strip():
            problems.append(f"{what}: exit {r.rc} and no error on stderr")
        elif r.err.count("\n") != 1 or not r.err.endswith("\n") or len(r.err.encode()) >= 1024:
            long_errors.append(f"{what}: {len(r.err.encode())} bytes, "
                               f"{r.err.count(chr(10))} lines: {r.err[:200]!r}")
        left = leftovers(ctx, cid)
        if left:
            problems.append(f"{what}: left behind: {left}")
            break  # the next create would only fail on what this one left
    return problems, long_errors


KINDS = ["wrong-type", "number", "string", "nesting", "missing", "unknown", "text"]


@pytest.mark.parametrize("kind", KINDS)
def test_mutated_config_is_created_or_refused_cleanly(ctx, kind):
    problems, _ = run_mutations(ctx, kind)
    assert not problems, "\n".join(problems)


@runc_deviates("its errors quote whole values (300 KB for a 100 KB path), and warning lines "
               "come before them (an unknown capability, a relative mount destination)")
def test_mutated_config_errors_are_one_short_line(ctx):
    problems, long_errors = [], []
    for kind in KINDS:
        p, l = run_mutations(ctx, kind)
        problems += p
        long_errors += l
    assert not problems, "\n".join(problems)
    assert not long_errors, "\n".join(long_errors)


def test_mutations_are_seeded():
    # The report of a failure names a mutation that the same seed makes again.
    assert mutations("text") == mutations("text")
    assert len({t for _, t in mutations("wrong-type")}) > PER_KIND // 2
