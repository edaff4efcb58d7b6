//! The device controller of cgroup v2. The unified hierarchy has no `devices.allow` file; instead
//! the kernel runs the BPF programs of type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to a cgroup and
//! to its ancestors for every mknod and open of a device, and refuses (EPERM) unless all of them
//! return 1. kiln compiles `linux.resources.devices` into one such program per cgroup.
//!
//! # The program's shape
//!
//! OCI rules are evaluated in order and the last matching rule wins; a device that no rule matches
//! is denied. The program therefore has one block per rule, laid out from the last rule to the
//! first, so the first block that matches decides, which is the last matching rule:
//!
//! ```text
//! prologue:  r3 = ctx->access_type >> 16           (struct bpf_cgroup_dev_ctx, in r1)
//! rule n:    if (ctx->access_type & 0xffff) != type  goto rule n-1   (a test only for what
//!            if ctx->major != major                  goto rule n-1    the rule restricts)
//!            if ctx->minor != minor                  goto rule n-1
//!            if !(r3 & access)                       goto rule n-1   (not about what is asked)
//!            allow only: r3 &= ~access; if r3        goto rule n-1
//!            return allow(n)
//! rule n-1:  ...
//! default:   return 0
//! ```
//!
//! One request can ask for several kinds of access at once (an `open(O_RDWR)` asks for read and
//! write together), and each kind is decided by the last rule that names it: r3 holds the kinds
//! not decided yet. A deny of any of them denies the request; an allow decides the kinds it names
//! and leaves the rest to earlier rules. So `allow c *:* rwm` then `deny c 1:3 w` refuses an
//! O_RDWR open of 1:3 (a mere "requested ⊆ rule" test, as in runc's and crun's programs, would let
//! it through), and `allow c 1:3 r` then `allow c 1:3 w` allows it (as the v1 controller does).
//! For a request of one kind, which is what mknod and most opens are, this is plain "last match
//! wins". A rule of access `rwm` needs no access test, and an allow of `rwm` decides everything.
//!
//! A rule that matches every request (type `a` or none, no major, no minor, access `rwm`) ends the
//! program: nothing before it can be reached (the verifier would even refuse the dead code), so its
//! verdict becomes the default. A spec that ends with "allow all" is thus `return 1`, and the usual
//! "deny all, then allow a few" is one block per allowed device. Blocks right before the default
//! that give the default's verdict are dropped too: matching or not, the answer is the same.
//!
//! # Where this differs from runc
//!
//! runc first runs the rules through an emulation of the v1 controller: any rule of type `a`
//! resets to "allow all" or "deny all" whatever its major, minor and access, and a deny that would
//! punch a hole into an allowed wildcard (`allow c *:* rwm`, then `deny c 1:3 w`) is refused as an
//! error, since v1 could not enforce it. kiln takes the rules literally, as crun does: `a 1:3 r`
//! means "block or char device 1:3, read", and the hole is punched. A missing `access` means any
//! access, as a missing type, major or minor means any of those (so `{"allow": false}` denies
//! everything, as in runc); an empty one matches nothing. Type `u` (unbuffered char) is a char
//! device; type `p` (FIFO) is refused, since the kernel never asks the device controller about
//! FIFOs and such a rule could only mislead.
//!
//! # Replacing the program
//!
//! The new program is attached with `BPF_F_ALLOW_MULTI` next to the old ones and only then are the
//! old ones detached: while both are attached both must allow, so there is no moment without a
//! filter. An old program attached without `BPF_F_ALLOW_MULTI` (exclusively, not by a runc-like
//! runtime) forbids attaching a second one; the kernel's exclusive attach replaces it atomically
//! instead, so that is what happens there, keeping the cgroup in its exclusive mode.

use std::ffi::c_long;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// A device program loaded (verified by the kernel) for a set of rules, not attached to any
/// cgroup yet: the verifier's work, the dearest part of applying rules, done ahead of time.
pub struct Loaded {
    insns: Vec<Insn>,
    fd: OwnedFd,
}

impl Loaded {
    pub fn new(rules: &[LinuxDeviceCgroup]) -> io::Result<Loaded> {
        let insns = program(rules)?;
        let fd = load(&insns)?;
        Ok(Loaded { insns, fd })
    }
}

/// Replaces the device program of the cgroup v2 directory `cgroup` (an open O_DIRECTORY fd) with one that
/// enforces `rules` (OCI semantics as runc: rules are evaluated in order and the LAST matching rule wins;
/// a device matching no rule is denied). Attaches the new program first (BPF_F_ALLOW_MULTI), then detaches
/// every program that was attached to this cgroup before, so there is no window without a filter.
/// `loaded` is used when it is the program of these very rules, and is loaded afresh otherwise.
pub fn apply(
    cgroup: BorrowedFd<'_>,
    rules: &[LinuxDeviceCgroup],
    loaded: Option<Loaded>,
) -> io::Result<()> {
    let insns = program(rules)?;
    let prog = match loaded {
        Some(l) if l.insns == insns => l.fd,
        _ => load(&insns)?,
    };
    let before = query(cgroup)?;
    if !before.ids.is_empty() && before.flags & BPF_F_ALLOW_MULTI == 0 {
        // Attaching with the same flags as the exclusive program swaps it for ours in one step.
        return attach(cgroup, prog.as_fd(), before.flags).map_err(|e| {
            context(
                e,
                "BPF_PROG_ATTACH device filter (replacing an exclusive one)",
            )
        });
    }
    attach(cgroup, prog.as_fd(), BPF_F_ALLOW_MULTI)
        .map_err(|e| context(e, "BPF_PROG_ATTACH device filter"))?;
    for id in before.ids {
        // ENOENT: gone already, detached by someone else, which is all that was wanted; or held
        // by a bpf_link, which belongs to whoever holds the link and stays (all programs must
        // allow, so one left over can only deny more, never less).
        let old = match prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(context(e, &format!("BPF_PROG_GET_FD_BY_ID {id}"))),
        };
        match detach(cgroup, old.as_fd()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(context(
                    e,
                    &format!("BPF_PROG_DETACH old device filter {id}"),
                ));
            }
        }
    }
    Ok(())
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, access_type being
// (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One rule, reduced to what the program tests. None is a wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Matcher {
    /// DEV_BLOCK or DEV_CHAR.
    typ: Option<u32>,
    major: Option<u32>,
    minor: Option<u32>,
    /// The ACC_* kinds of access the rule allows or denies.
    access: u32,
}

impl Matcher {
    fn matches_everything(&self) -> bool {
        self.typ.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

/// Ok(None) for a valid rule that can match no request at all.
fn parse(rule: &LinuxDeviceCgroup) -> io::Result<Option<Matcher>> {
    let invalid = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device rule \"{rule}\": {why}"),
        )
    };
    let typ = match rule.typ() {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
        Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(DEV_CHAR),
        Some(LinuxDeviceType::P) => {
            return Err(invalid(
                "type p (FIFO) is not a device the cgroup controls".into(),
            ));
        }
    };
    let mut never = false;
    let mut number = |name: &str, n: Option<i64>| match n {
        None | Some(-1) => Ok(None),
        Some(n) if n < 0 || n > i64::from(u32::MAX) => Err(invalid(format!("invalid {name} {n}"))),
        Some(n) => {
            // The kernel's majors have 12 bits and minors 20, so a number beyond i32::MAX (which
            // the program's sign-extended 32-bit immediates cannot hold) names no device.
            never |= n > i64::from(i32::MAX);
            Ok(Some(n as u32))
        }
    };
    let major = number("major", rule.major())?;
    let minor = number("minor", rule.minor())?;
    let access = match rule.access() {
        None => ACC_ALL,
        Some(s) => s.chars().try_fold(0, |bits, c| match c {
            'r' => Ok(bits | ACC_READ),
            'w' => Ok(bits | ACC_WRITE),
            'm' => Ok(bits | ACC_MKNOD),
            c => Err(invalid(format!("unknown access {c:?}"))),
        })?,
    };
    if never || access == 0 {
        return Ok(None);
    }
    Ok(Some(Matcher {
        typ,
        major,
        minor,
        access,
    }))
}

// ---------------------------------------------------------------------------------------------
// Instructions
// ---------------------------------------------------------------------------------------------

/// struct bpf_insn.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// `__u8 dst_reg:4, src_reg:4`; see [`Insn::new`].
    regs: u8,
    off: i16,
    imm: i32,
}

const _: () = assert!(size_of::<Insn>() == 8);

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        // C allocates bit-fields from the least significant bit on little-endian ABIs and from
        // the most significant one on big-endian ABIs, so dst_reg is the low nibble only on the
        // former.
        let regs = if cfg!(target_endian = "little") {
            dst | src << 4
        } else {
            dst << 4 | src
        };
        Self {
            code,
            regs,
            off,
            imm,
        }
    }
    /// dst = *(u32 *)(src + off)
    const fn load_word(dst: u8, src: u8, off: i16) -> Self {
        Self::new(BPF_LDX | BPF_W | BPF_MEM, dst, src, off, 0)
    }
    /// dst = (u32)dst & imm
    const fn and32(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
    }
    /// dst = (u32)dst >> imm
    const fn rsh32(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm)
    }
    /// dst = imm
    const fn mov64(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
    }
    /// if dst != (i64)imm: skip `off` instructions
    const fn jne(dst: u8, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
    }
    /// if dst == (i64)imm: skip `off` instructions
    const fn jeq(dst: u8, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm)
    }
    /// dst = (u32)src
    const fn mov32_reg(dst: u8, src: u8) -> Self {
        Self::new(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
    }
    const fn exit() -> Self {
        Self::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }
}

fn verdict(allow: bool) -> [Insn; 2] {
    [Insn::mov64(R0, i32::from(allow)), Insn::exit()]
}

/// The device filter for `rules`; see the module documentation for its shape. Every rule is
/// checked, even one that an "allow all" after it makes unreachable: a spec is valid or not
/// whatever its order.
///
/// How many rules the kernel takes is up to its verifier: Linux 6.18 takes about 2700 rules with
/// an access other than `rwm` and 4000 without (beyond, it says "the sequence of 8193 jumps is
/// too complex"); runc's and crun's layout runs out of its budget just short of 1000.
fn program(rules: &[LinuxDeviceCgroup]) -> io::Result<Vec<Insn>> {
    let parsed = rules
        .iter()
        .map(|r| Ok((parse(r)?, r.allow())))
        .collect::<io::Result<Vec<_>>>()?;

    // Last rule first, up to the first (from the end) that matches everything.
    let mut blocks = Vec::new();
    let mut default = false;
    for &(matcher, allow) in parsed.iter().rev() {
        let Some(m) = matcher else { continue };
        if m.matches_everything() {
            default = allow;
            break;
        }
        blocks.push((m, allow));
    }
    while blocks.last().is_some_and(|&(_, allow)| allow == default) {
        blocks.pop();
    }

    let mut insns = Vec::new();
    if !blocks.is_empty() {
        // r3: the kinds of access asked for and not decided yet.
        insns.extend([Insn::load_word(R3, R1, 0), Insn::rsh32(R3, 16)]);
    }
    for (m, allow) in blocks {
        // The tests that go on to the next block, whose distance is known once the block is.
        let mut to_next = Vec::new();
        let mut test = |insns: &mut Vec<Insn>, load: &[Insn], jump: Insn| {
            insns.extend_from_slice(load);
            to_next.push(insns.len());
            insns.push(jump);
        };
        // Each test loads what it compares into r2, rather than a prologue loading everything
        // once: then only r3 lives from one block into the next, the verifier can tell that the
        // states reaching a block by different paths are alike and check the block once, and
        // checking costs time linear in the rules instead of quadratic (a thousand rules would
        // exhaust its budget). parse() keeps only numbers up to i32::MAX, so `as` is exact.
        if let Some(t) = m.typ {
            test(
                &mut insns,
                &[Insn::load_word(R2, R1, 0), Insn::and32(R2, 0xffff)],
                Insn::jne(R2, t as i32, 0),
            );
        }
        if let Some(major) = m.major {
            test(
                &mut insns,
                &[Insn::load_word(R2, R1, 4)],
                Insn::jne(R2, major as i32, 0),
            );
        }
        if let Some(minor) = m.minor {
            test(
                &mut insns,
                &[Insn::load_word(R2, R1, 8)],
                Insn::jne(R2, minor as i32, 0),
            );
        }
        if m.access != ACC_ALL {
            // Whether the rule is about any kind of access still undecided.
            let access = m.access as i32;
            test(
                &mut insns,
                &[Insn::mov32_reg(R2, R3), Insn::and32(R2, access)],
                Insn::jeq(R2, 0, 0),
            );
            if allow {
                // Those it allows are decided; earlier rules decide the others.
                test(&mut insns, &[Insn::and32(R3, !access)], Insn::jne(R3, 0, 0));
            }
        }
        insns.extend(verdict(allow));
        let end = insns.len();
        for i in to_next {
            // A block has at most 16 instructions: the distance always fits.
            insns[i].off = (end - i - 1) as i16;
        }
    }
    insns.extend(verdict(default));
    Ok(insns)
}

// ---------------------------------------------------------------------------------------------
// bpf(2)
// ---------------------------------------------------------------------------------------------

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The BPF_PROG_LOAD part of union bpf_attr.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The BPF_PROG_ATTACH / BPF_PROG_DETACH part.
#[repr(C)]
#[derive(Clone, Copy)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// The BPF_PROG_QUERY part.
#[repr(C)]
#[derive(Clone, Copy)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    /// Explicit, so that no byte handed to the kernel is uninitialized padding.
    _pad: u32,
}

/// union bpf_attr. The kernel writes its answers (BPF_PROG_QUERY's count and flags, and in newer
/// kernels more) at their offsets in its own union, which grows with every release, whatever
/// size it is told; so this one is not cut to the fields kiln sets but padded to 512 bytes, far
/// past any kernel's so far (144 in this project's headers). The kernel accepts a larger union as
/// long as the excess is zero.
#[repr(C)]
union Attr {
    // Every variant is plain integers without padding (see the asserts), so writing one into a
    // zeroed Attr leaves every byte initialized.
    load: ProgLoad,
    attach: Attach,
    query: Query,
    prog_id: u32,
    bytes: [u64; 64],
}

const _: () = assert!(size_of::<ProgLoad>() == 64 && size_of::<Attach>() == 16);
const _: () = assert!(size_of::<Query>() == 32 && size_of::<Attr>() == 512);

impl Attr {
    fn zeroed() -> Self {
        Attr { bytes: [0; 64] }
    }
}

/// # Safety
///
/// Every pointer in `attr` that `cmd` reads or writes through must be valid for the lengths
/// that `attr` gives with it, for the duration of the call.
unsafe fn bpf(cmd: libc::c_int, attr: &mut Attr) -> io::Result<c_long> {
    // SAFETY: `Attr` is union bpf_attr's layout (repr(C), 512 bytes, the size passed), fully
    // initialised (`Attr::zeroed`, then its fields); what it points to is the caller's promise.
    unsafe { crate::sys::bpf(cmd, attr) }
}

/// Wraps an fd that a successful bpf(2) call just returned.
fn owned(fd: c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other(format!("bpf(2) returned fd {fd}")))?;
    // SAFETY: a bpf(2) command that creates an fd returns a new one (O_CLOEXEC), owned by no one
    // else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load_attr(insns: &[Insn], log: &mut [u8], log_level: u32) -> io::Result<OwnedFd> {
    const LICENSE: &[u8] = b"Apache\0"; // no GPL-only helper is called
    let mut prog_name = [0; 16];
    prog_name[..12].copy_from_slice(b"kiln_devices");
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "device filter too long"))?;
    let mut attr = Attr::zeroed();
    attr.load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level,
        log_size: u32::try_from(log.len()).unwrap_or(u32::MAX),
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        kern_version: 0,
        prog_flags: 0,
        prog_name,
    };
    // The verifier gives up with EAGAIN when a signal interrupts it; libbpf retries the same way.
    let mut attempts = 5;
    loop {
        // SAFETY: insns (insn_cnt instructions), the NUL-terminated license and the log buffer
        // (log_size bytes, or none) are borrowed for this whole function.
        match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts > 1 => attempts -= 1,
            r => return owned(r?),
        }
    }
}

/// Loads the filter. Without a log first, since a log costs the verifier time; on failure again
/// with one, whose end (where the verifier says why) goes into the error.
fn load(insns: &[Insn]) -> io::Result<OwnedFd> {
    let e = match load_attr(insns, &mut [], 0) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut msg = format!("BPF_PROG_LOAD device filter: {e}");
    if e.raw_os_error() == Some(libc::EPERM) {
        msg += " (needs CAP_BPF or CAP_SYS_ADMIN; before Linux 5.11 also RLIMIT_MEMLOCK)";
    } else {
        // EACCES and EINVAL for a refused program, E2BIG or EFAULT for one too complex (see
        // `program`): only the log tells.
        msg += &format!("; verifier log:\n{}", verifier_log(insns));
    }
    Err(io::Error::new(e.kind(), msg))
}

/// The last lines of the verifier's log: it traces every instruction of the failing path, then
/// says what is wrong.
fn verifier_log(insns: &[Insn]) -> String {
    // Kernels before 5.2 refuse a log of 16 MiB or more.
    const MAX: usize = 8 << 20;
    const TAIL: usize = 4 << 10;
    let mut log = vec![0u8; 64 << 10];
    loop {
        match load_attr(insns, &mut log, 1) {
            Ok(_) => return "(none: the program loaded the second time)".into(),
            // The log did not fit: before Linux 6.4 the kernel keeps its start, not its end.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && log.len() < MAX => {
                log = vec![0; log.len() * 2];
            }
            Err(_) => break,
        }
    }
    let len = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..len]);
    let text = text.trim_end();
    if text.len() <= TAIL {
        return text.to_string();
    }
    let mut start = text.len() - TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    // From the first whole line on.
    let tail = tail.split_once('\n').map_or(tail, |(_, rest)| rest);
    format!("...\n{tail}")
}

fn attach_attr(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>, flags: u32) -> Attr {
    let mut attr = Attr::zeroed();
    attr.attach = Attach {
        // fds are never negative; the kernel's field is a u32.
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
    };
    attr
}

fn attach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    let mut attr = attach_attr(cgroup, prog, flags);
    // SAFETY: BPF_PROG_ATTACH reads fds only, no pointers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// Detaching names the program by fd; the flags must be 0 (newer kernels refuse others).
fn detach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = attach_attr(cgroup, prog, 0);
    // SAFETY: BPF_PROG_DETACH reads fds only, no pointers.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::zeroed();
    attr.prog_id = id;
    // SAFETY: BPF_PROG_GET_FD_BY_ID reads an id only, no pointers.
    owned(unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?)
}

/// The device programs attached to the cgroup itself (not inherited), and the flags they were
/// attached with (0 where none, or one exclusively).
#[derive(Debug)]
struct Attached {
    ids: Vec<u32>,
    flags: u32,
}

fn query(cgroup: BorrowedFd<'_>) -> io::Result<Attached> {
    // 64 is the kernel's limit per cgroup and attach type (BPF_CGROUP_MAX_PROGS) since 5.x;
    // ENOSPC tells the real count should that ever grow.
    let mut ids = vec![0u32; 64];
    for _ in 0..4 {
        let mut attr = Attr::zeroed();
        attr.query = Query {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            _pad: 0,
        };
        // SAFETY: prog_ids has room for prog_cnt u32s and lives until after the call.
        let r = unsafe { bpf(BPF_PROG_QUERY, &mut attr) };
        // SAFETY: every byte of `attr` is initialized and any bit pattern is a valid Query.
        let Query {
            prog_cnt,
            attach_flags,
            ..
        } = unsafe { attr.query };
        match r {
            Ok(_) => {
                ids.truncate(prog_cnt as usize);
                return Ok(Attached {
                    ids,
                    flags: attach_flags,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && prog_cnt as usize > ids.len() => {
                ids = vec![0; (prog_cnt as usize).min(1 << 16)];
            }
            Err(e) => return Err(context(e, "BPF_PROG_QUERY device filters")),
        }
    }
    Err(io::Error::other(
        "BPF_PROG_QUERY device filters: the list keeps growing",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator: `next(n)` is in 0..n.
    fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        typ: Option<char>,
        major: Option<i64>,
        minor: Option<i64>,
        access: Option<&str>,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow);
        if let Some(t) = typ {
            b = b.typ(match t {
                'a' => LinuxDeviceType::A,
                'b' => LinuxDeviceType::B,
                'c' => LinuxDeviceType::C,
                'u' => LinuxDeviceType::U,
                _ => LinuxDeviceType::P,
            });
        }
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        if let Some(a) = access {
            b = b.access(a);
        }
        b.build().unwrap()
    }

    /// `allow c 1:3 rwm`-like shorthand; `*` or a missing field is a wildcard.
    fn r(text: &str) -> LinuxDeviceCgroup {
        let words: Vec<&str> = text.split(' ').collect();
        let allow = words[0] == "allow";
        let num = |s: &str| {
            if s == "*" {
                None
            } else {
                Some(s.parse().unwrap())
            }
        };
        let (major, minor) = match words.get(2) {
            Some(mm) => {
                let (a, b) = mm.split_once(':').unwrap();
                (num(a), num(b))
            }
            None => (None, None),
        };
        rule(
            allow,
            words.get(1).and_then(|t| t.chars().next()),
            major,
            minor,
            words.get(3).copied(),
        )
    }

    /// Runs a device program the way the kernel would, for the opcodes `program` emits. Panics on
    /// anything the verifier would refuse that matters here: a jump out of the program, a
    /// backward jump, an unknown opcode, reading a register never written.
    fn run(insns: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access << 16 | typ, major, minor];
        let mut regs: [Option<u64>; 11] = [None; 11];
        regs[1] = Some(0); // the context pointer
        let mut pc = 0;
        loop {
            let i = insns[pc];
            pc += 1;
            let (dst, src) = if cfg!(target_endian = "little") {
                (usize::from(i.regs & 0xf), usize::from(i.regs >> 4))
            } else {
                (usize::from(i.regs >> 4), usize::from(i.regs & 0xf))
            };
            let imm64 = i64::from(i.imm) as u64;
            let get = |regs: &[Option<u64>; 11], r: usize| {
                regs[r].expect("read of an unwritten register")
            };
            let mut jump = |cond: bool| {
                assert!(i.off >= 0, "backward jump");
                if cond {
                    pc += i.off as usize;
                }
                assert!(pc < insns.len(), "jump out of the program");
            };
            match i.code {
                0x61 => {
                    assert_eq!(src, 1);
                    assert!(i.off >= 0 && i.off % 4 == 0 && i.off < 12);
                    regs[dst] = Some(u64::from(ctx[i.off as usize / 4]));
                }
                0x54 => regs[dst] = Some(u64::from(get(&regs, dst) as u32 & i.imm as u32)),
                0x74 => regs[dst] = Some(u64::from((get(&regs, dst) as u32) >> i.imm)),
                0xb7 => regs[dst] = Some(imm64),
                0x55 => jump(get(&regs, dst) != imm64),
                0xbc => regs[dst] = Some(u64::from(get(&regs, src) as u32)),
                0x15 => jump(get(&regs, dst) == imm64),
                0x95 => return get(&regs, 0),
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    /// What the rules mean, written without the program's tricks: each kind of access asked for
    /// is decided by the last rule that matches the device and names that kind.
    fn expected(
        rules: &[LinuxDeviceCgroup],
        typ: u32,
        access: u32,
        major: u32,
        minor: u32,
    ) -> bool {
        let device = |r: &LinuxDeviceCgroup| {
            let t = match r.typ() {
                None | Some(LinuxDeviceType::A) => true,
                Some(LinuxDeviceType::B) => typ == DEV_BLOCK,
                Some(_) => typ == DEV_CHAR,
            };
            let n = |want: Option<i64>, got: u32| {
                matches!(want, None | Some(-1)) || want == Some(i64::from(got))
            };
            t && n(r.major(), major) && n(r.minor(), minor)
        };
        let names = |r: &LinuxDeviceCgroup, kind: u32| {
            r.access()
                .as_deref()
                .is_none_or(|a| access_bits(a) & kind != 0)
        };
        [ACC_MKNOD, ACC_READ, ACC_WRITE]
            .into_iter()
            .filter(|kind| access & kind != 0)
            .all(|kind| {
                rules
                    .iter()
                    .rev()
                    .find(|r| device(r) && names(r, kind))
                    .is_some_and(|r| r.allow())
            })
    }

    fn access_bits(access: &str) -> u32 {
        access
            .chars()
            .map(|c| match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => ACC_MKNOD,
            })
            .fold(0, |a, b| a | b)
    }

    /// Every reachable instruction: the verifier refuses programs with dead code.
    fn assert_no_dead_code(insns: &[Insn]) {
        let mut reached = vec![false; insns.len()];
        let mut todo = vec![0];
        while let Some(pc) = todo.pop() {
            if pc >= insns.len() || reached[pc] {
                continue;
            }
            reached[pc] = true;
            match insns[pc].code {
                0x95 => {}
                0x55 | 0x15 => todo.extend([pc + 1, pc + 1 + insns[pc].off as usize]),
                _ => todo.push(pc + 1),
            }
        }
        assert!(reached.iter().all(|&r| r), "dead code in {insns:?}");
        assert_eq!(insns.last().map(|i| i.code), Some(0x95));
    }

    const TYPES: [u32; 2] = [DEV_BLOCK, DEV_CHAR];
    const MAJORS: [u32; 5] = [0, 1, 5, 136, 4095];
    const MINORS: [u32; 5] = [0, 3, 5, 7, 1048575];

    fn check_against_meaning(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
        let insns = program(rules).unwrap();
        assert_no_dead_code(&insns);
        for typ in TYPES {
            for access in 1..=ACC_ALL {
                for major in MAJORS {
                    for minor in MINORS {
                        let got = run(&insns, typ, access, major, minor);
                        let want = expected(rules, typ, access, major, minor);
                        assert_eq!(
                            got,
                            u64::from(want),
                            "{rules:?}: type {typ} access {access} {major}:{minor}"
                        );
                    }
                }
            }
        }
        insns
    }

    fn allowed(insns: &[Insn], typ: char, major: u32, minor: u32, access: &str) -> bool {
        let t = if typ == 'b' { DEV_BLOCK } else { DEV_CHAR };
        run(insns, t, access_bits(access), major, minor) == 1
    }

    #[test]
    fn insn_layout() {
        let i = Insn::load_word(R2, R1, 4);
        // SAFETY: Insn is repr(C), 8 bytes, no padding.
        let bytes: [u8; 8] = unsafe { std::mem::transmute(i) };
        assert_eq!(bytes[0], 0x61);
        if cfg!(target_endian = "little") {
            assert_eq!(bytes, [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn no_rules_denies_everything() {
        assert_eq!(program(&[]).unwrap(), verdict(false));
    }

    #[test]
    fn allow_all_last_is_return_1() {
        let rules = [
            r("deny a *:* rwm"),
            r("allow c 1:3 rw"),
            r("allow a *:* rwm"),
        ];
        assert_eq!(check_against_meaning(&rules), verdict(true));
        // A missing type, numbers or access are wildcards too; access order does not matter.
        assert_eq!(
            program(&[r("deny c 1:3 r"), rule(true, None, None, None, Some("mwr"))]).unwrap(),
            verdict(true)
        );
        assert_eq!(
            program(&[rule(true, None, Some(-1), Some(-1), None)]).unwrap(),
            verdict(true)
        );
        assert_eq!(program(&[r("allow"), r("deny")]).unwrap(), verdict(false));
    }

    #[test]
    fn deny_all_then_allow_some() {
        let rules = [
            r("deny a *:* rwm"),
            r("allow c 1:3 rwm"),
            r("allow c 1:5 r"),
            r("allow c 136:* rwm"),
            r("allow b *:0 m"),
        ];
        let insns = check_against_meaning(&rules);
        // Prologue; blocks of tests (type 3, number 2, access 3, allowed access 2) and the
        // verdict (2); the default.
        assert_eq!(
            insns.len(),
            2 + (3 + 2 + 3 + 2 + 2) + (3 + 2 + 2) + (3 + 2 + 2 + 3 + 2 + 2) + (3 + 2 + 2 + 2) + 2
        );
        assert!(allowed(&insns, 'c', 1, 3, "rwm"));
        assert!(allowed(&insns, 'c', 1, 5, "r"));
        assert!(!allowed(&insns, 'c', 1, 5, "rw"));
        assert!(!allowed(&insns, 'c', 1, 5, "m"));
        assert!(!allowed(&insns, 'c', 1, 7, "r"));
        assert!(!allowed(&insns, 'b', 1, 3, "r"));
        assert!(allowed(&insns, 'c', 136, 42, "rw"));
        assert!(allowed(&insns, 'b', 8, 0, "m"));
        assert!(!allowed(&insns, 'b', 8, 0, "r"));
    }

    #[test]
    fn later_deny_overrides_earlier_allow() {
        let rules = [r("allow c *:* rwm"), r("deny c 1:3 w")];
        let insns = check_against_meaning(&rules);
        assert!(allowed(&insns, 'c', 1, 3, "r"));
        assert!(!allowed(&insns, 'c', 1, 3, "w"));
        assert!(!allowed(&insns, 'c', 1, 3, "rw"));
        assert!(allowed(&insns, 'c', 1, 9, "w"));
        assert!(!allowed(&insns, 'b', 1, 9, "w"));
        // ... and a later allow the deny back.
        let insns =
            check_against_meaning(&[r("allow c *:* rwm"), r("deny c 1:3 w"), r("allow c 1:* rw")]);
        assert!(allowed(&insns, 'c', 1, 3, "w"));
    }

    #[test]
    fn each_kind_of_access_is_decided_by_its_own_last_rule() {
        let insns = check_against_meaning(&[r("deny"), r("allow c 1:3 r"), r("allow c 1:3 w")]);
        assert!(allowed(&insns, 'c', 1, 3, "rw"));
        assert!(!allowed(&insns, 'c', 1, 3, "rwm"));
        let insns = check_against_meaning(&[r("allow c 1:3 rw"), r("deny c 1:3 w")]);
        assert!(allowed(&insns, 'c', 1, 3, "r"));
        assert!(!allowed(&insns, 'c', 1, 3, "rw"));
        let insns =
            check_against_meaning(&[r("allow c 1:3 rw"), r("deny c 1:* w"), r("allow c *:3 r")]);
        assert!(!allowed(&insns, 'c', 1, 3, "rw"));
        assert!(allowed(&insns, 'c', 1, 3, "r"));
    }

    #[test]
    fn allow_all_then_deny_some_defaults_to_allow() {
        let rules = [r("allow a"), r("deny c 1:3 rwm"), r("deny b 8:*")];
        let insns = check_against_meaning(&rules);
        assert_eq!(*insns.last().unwrap(), Insn::exit());
        assert_eq!(insns[insns.len() - 2], Insn::mov64(R0, 1));
        assert!(!allowed(&insns, 'c', 1, 3, "r"));
        assert!(allowed(&insns, 'c', 1, 5, "r"));
        assert!(!allowed(&insns, 'b', 8, 1, "r"));
    }

    #[test]
    fn wildcards() {
        for rules in [
            vec![r("allow a 1:3 r")],
            vec![r("allow c *:3 rw")],
            vec![r("allow c 5:* m"), r("deny c 5:1 m")],
            vec![rule(true, Some('b'), Some(-1), Some(7), Some("r"))],
            vec![rule(true, Some('u'), Some(1), None, Some("w"))],
        ] {
            check_against_meaning(&rules);
        }
        let insns = program(&[r("allow a 1:3 r")]).unwrap();
        assert!(allowed(&insns, 'b', 1, 3, "r") && allowed(&insns, 'c', 1, 3, "r"));
    }

    #[test]
    fn redundant_blocks_before_the_default_are_dropped() {
        // Denies before everything else, with deny by default, decide nothing.
        let insns =
            check_against_meaning(&[r("deny c 1:5 r"), r("deny b 8:0 r"), r("allow c 1:3 rwm")]);
        assert_eq!(insns.len(), 2 + 9 + 2);
        // Nor do allows that just follow an allow-all.
        let insns = check_against_meaning(&[r("allow"), r("allow c 1:5 r"), r("deny c 1:3 rwm")]);
        assert_eq!(insns.len(), 2 + 9 + 2);
    }

    #[test]
    fn rules_that_match_nothing() {
        // Empty access; numbers no kernel device has.
        assert_eq!(
            program(&[rule(true, Some('c'), Some(1), Some(3), Some(""))]).unwrap(),
            verdict(false)
        );
        assert_eq!(
            program(&[rule(true, Some('c'), Some(1 << 31), None, None)]).unwrap(),
            verdict(false)
        );
        assert_eq!(
            program(&[rule(
                true,
                Some('c'),
                None,
                Some(u32::MAX.into()),
                Some("rwm")
            )])
            .unwrap(),
            verdict(false)
        );
        // ... and do not hide the allow-all before them.
        assert_eq!(
            program(&[r("allow a"), rule(false, None, Some(1 << 31), None, None)]).unwrap(),
            verdict(true)
        );
    }

    #[test]
    fn invalid_rules_are_errors() {
        for bad in [
            rule(
                true,
                Some('c'),
                Some(i64::from(u32::MAX) + 1),
                Some(3),
                Some("rwm"),
            ),
            rule(true, Some('c'), Some(1), Some(-2), Some("rwm")),
            rule(true, Some('c'), Some(i64::MIN), None, Some("rwm")),
            rule(true, Some('c'), Some(i64::MAX), None, Some("rwm")),
            rule(true, Some('c'), Some(1), Some(3), Some("rwx")),
            rule(true, Some('c'), Some(1), Some(3), Some("r w")),
            rule(true, Some('p'), Some(1), Some(3), Some("rwm")),
        ] {
            let e = program(std::slice::from_ref(&bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            // Even where an allow-all after it makes it moot.
            assert!(program(&[bad, r("allow a *:* rwm")]).is_err());
        }
    }

    /// Random rule lists over small domains, so that rules overlap often.
    #[test]
    fn random_rule_lists_mean_what_they_say() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let accesses = [
            None,
            Some("r"),
            Some("w"),
            Some("m"),
            Some("rw"),
            Some("rm"),
            Some("wm"),
            Some("rwm"),
        ];
        for _ in 0..3000 {
            let len = next(6) as usize;
            let rules: Vec<_> = (0..len)
                .map(|_| {
                    let typ = [None, Some('a'), Some('b'), Some('c'), Some('u')][next(5) as usize];
                    let major = [None, Some(-1), Some(1), Some(5)][next(4) as usize];
                    let minor = [None, Some(3), Some(5)][next(3) as usize];
                    rule(next(2) == 0, typ, major, minor, accesses[next(8) as usize])
                })
                .collect();
            check_against_meaning(&rules);
        }
    }

    // --- against the kernel -------------------------------------------------------------------

    use std::ffi::CString;
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    /// The cgroup (and temporary directory) of the kernel test, removed however the test ends.
    struct Scratch {
        cgroup: PathBuf,
        tmp: PathBuf,
        children: Vec<libc::pid_t>,
    }

    impl Scratch {
        /// A cgroup and a temp dir named `name`-PID, removed (with any children) on drop.
        fn new(root: &Path, name: &str) -> Scratch {
            let pid = std::process::id();
            let s = Scratch {
                cgroup: root.join(format!("{name}-{pid}")),
                tmp: std::env::temp_dir().join(format!("{name}-{pid}")),
                children: Vec::new(),
            };
            fs::create_dir(&s.cgroup).unwrap();
            fs::create_dir(&s.tmp).unwrap();
            s
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            // Only children not reaped yet are listed, so these pids are still ours to signal.
            for &pid in &self.children {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
            // An exited child may linger in the cgroup for a moment.
            for _ in 0..100 {
                match fs::remove_dir(&self.cgroup) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }

    enum Probe {
        Open(CString, libc::c_int),
        Mknod(CString, libc::dev_t),
    }

    /// Forks a child that joins the scratch cgroup and runs `probes`; the errno of each (0 for
    /// success).
    fn probe(scratch: &mut Scratch, probes: &[Probe]) -> Vec<i32> {
        let procs = CString::new(
            scratch
                .cgroup
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut results = [0i32; 8];
        assert!(probes.len() < results.len());
        // SAFETY: the test harness is multi-threaded, so the child calls only async-signal-safe
        // functions (open, write, close, mknod, _exit) on memory prepared before the fork, and
        // leaves with _exit without returning into the harness.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(-1);
            // SAFETY: (child) procs is a NUL-terminated path; "0" moves the writer itself.
            let joined = unsafe {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1
            };
            results[0] = if joined { 0 } else { errno() };
            if joined {
                for (i, p) in probes.iter().enumerate() {
                    // SAFETY: (child) NUL-terminated paths; an opened fd is closed right away.
                    let ok = unsafe {
                        match p {
                            Probe::Open(path, flags) => {
                                let fd = libc::open(path.as_ptr(), *flags);
                                fd >= 0 && libc::close(fd) == 0
                            }
                            Probe::Mknod(path, dev) => {
                                libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, *dev) == 0
                            }
                        }
                    };
                    results[i + 1] = if ok { 0 } else { errno() };
                }
            }
            // SAFETY: (child) results is a plain array; _exit skips the parent's atexit handlers.
            unsafe {
                libc::write(
                    wr.as_raw_fd(),
                    results.as_ptr().cast(),
                    size_of_val(&results),
                );
                libc::_exit(0);
            }
        }
        assert!(pid > 0, "fork: {}", io::Error::last_os_error());
        scratch.children.push(pid);
        drop(wr);
        let mut buf = Vec::new();
        fs::File::from(rd).read_to_end(&mut buf).unwrap();
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        scratch.children.retain(|&p| p != pid);
        assert_eq!(
            buf.len(),
            size_of_val(&results),
            "the child died before reporting"
        );
        let results: Vec<i32> = buf
            .chunks(4)
            .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            results[0],
            0,
            "joining the cgroup: {}",
            io::Error::from_raw_os_error(results[0])
        );
        results[1..=probes.len()].to_vec()
    }

    fn is_cgroup2(path: &Path) -> bool {
        nix::sys::statfs::statfs(path)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
    }

    fn rdev_is(path: &str, major: u64, minor: u64) -> bool {
        fs::metadata(path).is_ok_and(|m| {
            m.file_type().is_char_device()
                && m.rdev() == libc::makedev(major as _, minor as _) as u64
        })
    }

    fn path(p: &Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    fn dir(p: &Path) -> OwnedFd {
        fs::File::open(p).unwrap().into()
    }

    /// The kernel tests (`kernel_*`) load programs and most make cgroups: they need root, BPF
    /// and a cgroup2 mount, and are `#[ignore]`d so that an unprivileged `cargo test` counts them as
    /// ignored instead of passing them untested. `cargo test -- --ignored` runs them (hack/test
    /// does, as root); asked for, a machine that cannot run them fails them, naming what is
    /// missing.
    fn require(what: &str, ok: bool) {
        assert!(ok, "this kernel test needs {what}");
    }

    /// Root and a loadable BPF program.
    fn require_bpf() {
        require("root", nix::unistd::geteuid().is_root());
        if let Err(e) = load(&verdict(true)) {
            panic!("this kernel test needs to load a BPF program: {e}");
        }
    }

    /// Where the kernel tests make their cgroups: the hybrid host's unified mount, or v2's root.
    fn cgroup2_root() -> &'static Path {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|p| is_cgroup2(p));
        root.expect("this kernel test needs cgroup2 at /sys/fs/cgroup/unified or /sys/fs/cgroup")
    }

    fn strerror(e: i32) -> String {
        io::Error::from_raw_os_error(e).to_string()
    }

    #[test]
    #[ignore = "needs root, BPF and cgroup2: run with `cargo test -- --ignored`"]
    fn kernel_enforces_the_filter() {
        let root = cgroup2_root();
        require_bpf();
        require(
            "/dev/null, /dev/zero, /dev/full as the char devices 1:3, 1:5, 1:7",
            rdev_is("/dev/null", 1, 3) && rdev_is("/dev/zero", 1, 5) && rdev_is("/dev/full", 1, 7),
        );
        // Whatever else restricts this process (a v1 devices cgroup, no CAP_MKNOD) would fail
        // the probes for a reason not the program's: required beforehand, so that it is named.
        let opens = [
            ("/dev/null", true),
            ("/dev/zero", true),
            ("/dev/full", true),
        ];
        if let Some((dev, e)) = opens.iter().find_map(|&(dev, w)| {
            fs::OpenOptions::new()
                .read(true)
                .write(w)
                .open(dev)
                .err()
                .map(|e| (dev, e))
        }) {
            panic!("this kernel test needs to open {dev} itself: {e}");
        }

        let mut scratch = Scratch::new(root, "kiln-ebpf-test");
        let cgroup = dir(&scratch.cgroup);
        let node = path(&scratch.tmp.join("probe"));
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) } != 0 {
            panic!(
                "this kernel test needs to mknod: {}",
                io::Error::last_os_error()
            );
        }

        // Loaded ahead, as create does while init mounts.
        let rules = [
            r("deny a *:* rwm"),
            r("allow c 1:3 rwm"),
            r("allow c 1:5 r"),
        ];
        apply(cgroup.as_fd(), &rules, Some(Loaded::new(&rules).unwrap())).unwrap();
        let first = query(cgroup.as_fd()).unwrap();
        assert_eq!(first.ids.len(), 1);
        assert_eq!(first.flags, BPF_F_ALLOW_MULTI);

        let (null_node, zero_node) = (
            path(&scratch.tmp.join("null")),
            path(&scratch.tmp.join("zero")),
        );
        let got = probe(
            &mut scratch,
            &[
                Probe::Open(c"/dev/null".into(), libc::O_RDWR),
                Probe::Open(c"/dev/zero".into(), libc::O_RDONLY),
                Probe::Open(c"/dev/zero".into(), libc::O_WRONLY),
                Probe::Open(c"/dev/full".into(), libc::O_RDONLY),
                Probe::Mknod(null_node, libc::makedev(1, 3)),
                Probe::Mknod(zero_node, libc::makedev(1, 5)),
            ],
        );
        let names = [
            "open /dev/null rw",
            "open /dev/zero r",
            "open /dev/zero w",
            "open /dev/full r",
            "mknod c 1:3",
            "mknod c 1:5",
        ];
        let want = [0, 0, libc::EPERM, libc::EPERM, 0, libc::EPERM];
        for ((name, got), want) in names.iter().zip(&got).zip(want) {
            assert_eq!(
                *got,
                want,
                "{name}: got {:?}, want {:?}",
                strerror(*got),
                strerror(want)
            );
        }

        // Replacing: one program again, a new one, and /dev/full is allowed now.
        apply(
            cgroup.as_fd(),
            &[r("deny a *:* rwm"), r("allow a *:* rwm")],
            None,
        )
        .unwrap();
        let second = query(cgroup.as_fd()).unwrap();
        assert_eq!(second.ids.len(), 1);
        assert_ne!(second.ids, first.ids);
        assert_eq!(
            probe(
                &mut scratch,
                &[Probe::Open(c"/dev/full".into(), libc::O_WRONLY)]
            ),
            [0]
        );

        // Several programs from someone else: all go.
        for _ in 0..2 {
            let extra = load(&verdict(true)).unwrap();
            attach(cgroup.as_fd(), extra.as_fd(), BPF_F_ALLOW_MULTI).unwrap();
        }
        assert_eq!(query(cgroup.as_fd()).unwrap().ids.len(), 3);
        apply(cgroup.as_fd(), &[r("allow c 1:7 r")], None).unwrap();
        assert_eq!(query(cgroup.as_fd()).unwrap().ids.len(), 1);
        assert_eq!(
            probe(
                &mut scratch,
                &[
                    Probe::Open(c"/dev/full".into(), libc::O_RDONLY),
                    Probe::Open(c"/dev/null".into(), libc::O_RDONLY)
                ]
            ),
            [0, libc::EPERM]
        );

        // O_RDWR asks for read and write at once: a later deny of either refuses it. A program
        // loaded ahead for other rules is not the one attached: these rules are.
        let other = Loaded::new(&[r("allow a *:* rwm")]).unwrap();
        apply(
            cgroup.as_fd(),
            &[r("allow c *:* rwm"), r("deny c 1:3 w")],
            Some(other),
        )
        .unwrap();
        assert_eq!(
            probe(
                &mut scratch,
                &[
                    Probe::Open(c"/dev/null".into(), libc::O_RDWR),
                    Probe::Open(c"/dev/null".into(), libc::O_RDONLY),
                    Probe::Open(c"/dev/zero".into(), libc::O_RDWR),
                ]
            ),
            [libc::EPERM, 0, 0]
        );
    }

    /// The verifier accepts every shape `program` makes, and explains what it refuses.
    #[test]
    #[ignore = "needs root and BPF: run with `cargo test -- --ignored`"]
    fn kernel_verifier() {
        require_bpf();
        let mut next = xorshift(0x2545_f491_4f6c_dd1d_u64);
        let accesses = [
            None,
            Some("r"),
            Some("w"),
            Some("m"),
            Some("rw"),
            Some("wm"),
            Some("rwm"),
        ];
        for _ in 0..200 {
            let rules: Vec<_> = (0..next(12))
                .map(|_| {
                    let typ = [None, Some('a'), Some('b'), Some('c')][next(4) as usize];
                    let major =
                        [None, Some(1), Some(4095), Some(i64::from(i32::MAX))][next(4) as usize];
                    let minor = [None, Some(0), Some(1048575)][next(3) as usize];
                    rule(next(2) == 0, typ, major, minor, accesses[next(7) as usize])
                })
                .collect();
            let insns = program(&rules).unwrap();
            if let Err(e) = load(&insns) {
                panic!("{rules:?}: {e}");
            }
        }
        // 1000 rules of the longest kind.
        let rules: Vec<_> = (0..1000)
            .map(|i| rule(i % 2 == 0, Some('c'), Some(i), Some(i), Some("r")))
            .collect();
        load(&program(&rules).unwrap()).unwrap();

        // Returning without setting r0.
        let e = load(&[Insn::exit()]).unwrap_err().to_string();
        assert!(
            e.contains("verifier log:\n") && e.contains("R0 !read_ok"),
            "{e}"
        );
        // Too complex: a long log, of which the end.
        let rules: Vec<_> = (0..5000)
            .map(|i| rule(i % 2 == 0, Some('c'), Some(i), Some(i), Some("r")))
            .collect();
        if let Err(e) = load(&program(&rules).unwrap()) {
            let e = e.to_string();
            assert!(e.contains("verifier log:\n...\n") && e.len() < 5000, "{e}");
        }
    }

    /// A cgroup whose program was attached exclusively (no BPF_F_ALLOW_MULTI) gets ours in its
    /// place.
    #[test]
    #[ignore = "needs root, BPF and cgroup2: run with `cargo test -- --ignored`"]
    fn kernel_replaces_an_exclusive_program() {
        let root = cgroup2_root();
        require_bpf();
        let mut scratch = Scratch::new(root, "kiln-ebpf-test-excl");
        let cgroup = dir(&scratch.cgroup);

        let old = load(&verdict(false)).unwrap();
        attach(cgroup.as_fd(), old.as_fd(), 0).unwrap();
        let before = query(cgroup.as_fd()).unwrap();
        assert_eq!((before.ids.len(), before.flags), (1, 0));
        apply(cgroup.as_fd(), &[r("allow c 1:3 r")], None).unwrap();
        let after = query(cgroup.as_fd()).unwrap();
        assert_eq!(after.ids.len(), 1);
        assert_ne!(after.ids, before.ids);
        if rdev_is("/dev/null", 1, 3) {
            assert_eq!(
                probe(
                    &mut scratch,
                    &[Probe::Open(c"/dev/null".into(), libc::O_RDONLY)]
                ),
                [0]
            );
        }
    }
}
