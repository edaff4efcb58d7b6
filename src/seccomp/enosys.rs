//! runc's -ENOSYS stub (libcontainer/seccomp/patchbpf): a syscall newer than the profile gets
//! ENOSYS rather than the profile's default errno, because that is what a kernel without the
//! syscall says, and what C libraries fall back on (glibc's clone3 → clone, faccessat2 →
//! faccessat); an EPERM would make them fail instead.
//!
//! "Newer than the profile" is runc's approximation: a number above the largest one the profile
//! names for that architecture. The stub runs before libseccomp's program and, for every
//! architecture the filter has (the profile's and the native one):
//!
//! ```text
//!       ld  [arch]
//!       jeq #AUDIT_ARCH_a, section_a          one per architecture
//!       ja  filter                            an architecture not listed: libseccomp decides
//! section_a:
//!       ld  [nr]
//!       jeq #0, enosys                        s390(x): unknown numbers are multiplexed to 0
//!       jset #X32_BIT, ...                    x86_64: x32 numbers have their own largest one
//!       jgt #largest, enosys, filter
//! enosys:
//!       ret #SECCOMP_RET_ERRNO|ENOSYS
//! filter:                                     libseccomp's program
//! ```
//!
//! It is only needed when the default action refuses: an allowing default (ALLOW, LOG, and
//! TRACE, whose tracer handles what it does not know) reaches the kernel, which answers ENOSYS
//! itself.

use std::collections::BTreeMap;

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::LinuxSeccompAction;

/// x32 system calls are x86_64's audit arch with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const RET_ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// Classic BPF opcodes (BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JA, BPF_JMP|BPF_J*|BPF_K,
/// BPF_RET|BPF_K).
const LD_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JSET: u16 = 0x45;
const RET: u16 = 0x06;

/// `include/uapi/linux/audit.h`: ELF machine, 64-bit and little-endian bits.
const AUDIT_64BIT: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;
const AUDIT_MIPS64_N32: u32 = 0x2000_0000;
const AUDIT_ARCH_X86_64: u32 = 62 | AUDIT_64BIT | AUDIT_LE;

/// Whether a filter with this default needs the stub (runc's generatePatch).
pub fn needed(default: LinuxSeccompAction, default_errno: u32) -> bool {
    match default {
        LinuxSeccompAction::ScmpActAllow
        | LinuxSeccompAction::ScmpActLog
        | LinuxSeccompAction::ScmpActTrace => false,
        // The default already says ENOSYS.
        LinuxSeccompAction::ScmpActErrno => default_errno != libc::ENOSYS as u32,
        _ => true,
    }
}

/// The largest syscall numbers a profile names on one audit architecture.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Largest {
    /// The architecture's own numbers (x86_64's on AUDIT_ARCH_X86_64).
    pub native: Option<u32>,
    /// x32's numbers, X32_SYSCALL_BIT included: only on AUDIT_ARCH_X86_64.
    pub x32: Option<u32>,
}

/// The AUDIT_ARCH_* the kernel puts in `seccomp_data.arch` for a libseccomp architecture (x32
/// shares x86_64's).
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    Some(match arch {
        ScmpArch::Native => return audit_arch(ScmpArch::native()),
        ScmpArch::X86 => 3 | AUDIT_LE,
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::Arm => 40 | AUDIT_LE,
        ScmpArch::Aarch64 => 183 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::Loongarch64 => 258 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::M68k => 4,
        ScmpArch::Mips => 8,
        ScmpArch::Mips64 => 8 | AUDIT_64BIT,
        ScmpArch::Mips64N32 => 8 | AUDIT_64BIT | AUDIT_MIPS64_N32,
        ScmpArch::Mipsel => 8 | AUDIT_LE,
        ScmpArch::Mipsel64 => 8 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::Mipsel64N32 => 8 | AUDIT_64BIT | AUDIT_LE | AUDIT_MIPS64_N32,
        ScmpArch::Parisc => 15,
        ScmpArch::Parisc64 => 15 | AUDIT_64BIT,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | AUDIT_64BIT,
        ScmpArch::Ppc64Le => 21 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::S390 => 22,
        ScmpArch::S390X => 22 | AUDIT_64BIT,
        ScmpArch::Riscv64 => 243 | AUDIT_64BIT | AUDIT_LE,
        ScmpArch::Sheb => 42,
        ScmpArch::Sh => 42 | AUDIT_LE,
        _ => return None,
    })
}

fn is_s390(audit: u32) -> bool {
    audit & !AUDIT_64BIT == 22
}

/// Per audit architecture, the largest number among `names` (every rule's, whatever its
/// action; names an architecture lacks are ignored), as runc's findLastSyscalls. The native
/// architecture always counts: profiles that list none (Docker's on ppc64le) still get a stub.
pub fn largest<'a>(
    archs: &[ScmpArch],
    names: impl Iterator<Item = &'a str> + Clone,
) -> BTreeMap<u32, Largest> {
    let mut all = archs.to_vec();
    all.push(ScmpArch::native());
    let mut out: BTreeMap<u32, Largest> = BTreeMap::new();
    for arch in all {
        let Some(audit) = audit_arch(arch) else {
            crate::log::debug(|| {
                format!(
                    "linux.seccomp: no ENOSYS stub for {arch:?}: its audit architecture is unknown"
                )
            });
            continue;
        };
        // Negative numbers are libseccomp's pseudo-syscalls for names the architecture lacks.
        let max = names
            .clone()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .filter_map(|s| u32::try_from(s.as_raw_syscall()).ok())
            .filter(|&n| n > 0)
            .max();
        let Some(max) = max else { continue };
        let entry = out.entry(audit).or_default();
        if arch == ScmpArch::X32 {
            entry.x32 = Some(max | X32_SYSCALL_BIT);
        } else {
            entry.native = Some(max);
        }
    }
    out
}

/// Where a jump goes.
#[derive(Clone, Copy)]
enum To {
    Next,
    /// Over this many instructions.
    Skip(usize),
    Section(usize),
    Enosys,
    Filter,
}

enum Op {
    Load(u32),
    Ja(To),
    Jump { code: u16, k: u32, yes: To, no: To },
    Ret(u32),
}

/// One `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// The stub for these largest numbers, to put in front of libseccomp's program. Empty when
/// there is none to check.
pub fn stub(largest: &BTreeMap<u32, Largest>) -> Vec<Insn> {
    let arches: Vec<(u32, Largest)> = largest
        .iter()
        .map(|(a, l)| (*a, *l))
        .filter(|(_, l)| l.native.is_some() || l.x32.is_some())
        .collect();
    if arches.is_empty() {
        return vec![];
    }
    let mut ops = vec![Op::Load(DATA_ARCH)];
    for (i, (audit, _)) in arches.iter().enumerate() {
        ops.push(Op::Jump {
            code: JEQ,
            k: *audit,
            yes: To::Section(i),
            no: To::Next,
        });
    }
    ops.push(Op::Ja(To::Filter));
    let mut sections = Vec::with_capacity(arches.len());
    for (audit, l) in &arches {
        sections.push(ops.len());
        ops.push(Op::Load(DATA_NR));
        if is_s390(*audit) {
            ops.push(Op::Jump {
                code: JEQ,
                k: 0,
                yes: To::Enosys,
                no: To::Next,
            });
        }
        let above = |max: u32| Op::Jump {
            code: JGT,
            k: max,
            yes: To::Enosys,
            no: To::Filter,
        };
        match (*audit == AUDIT_ARCH_X86_64, l.native, l.x32) {
            (true, Some(native), Some(x32)) => {
                ops.push(Op::Jump {
                    code: JSET,
                    k: X32_SYSCALL_BIT,
                    yes: To::Skip(1),
                    no: To::Next,
                });
                ops.push(above(native));
                ops.push(above(x32));
            }
            // Only one of the two ABIs is in the filter: the other one's calls go to
            // libseccomp untouched, as runc does.
            (true, Some(native), None) => {
                ops.push(Op::Jump {
                    code: JSET,
                    k: X32_SYSCALL_BIT,
                    yes: To::Filter,
                    no: To::Next,
                });
                ops.push(above(native));
            }
            (true, None, Some(x32)) => {
                ops.push(Op::Jump {
                    code: JSET,
                    k: X32_SYSCALL_BIT,
                    yes: To::Next,
                    no: To::Filter,
                });
                ops.push(above(x32));
            }
            (_, Some(max), _) | (_, None, Some(max)) => ops.push(above(max)),
            (_, None, None) => unreachable!("filtered out above"),
        }
    }
    let enosys = ops.len();
    ops.push(Op::Ret(RET_ENOSYS));
    let filter = ops.len();
    let target = |pc: usize, to: To| -> usize {
        match to {
            To::Next => pc + 1,
            To::Skip(n) => pc + 1 + n,
            To::Section(i) => sections[i],
            To::Enosys => enosys,
            To::Filter => filter,
        }
    };
    // Every jump is forward and inside the stub, a few instructions per architecture: far
    // below the 255 that jt and jf can hold.
    let short = |pc: usize, to: To| {
        u8::try_from(target(pc, to) - pc - 1).expect("a jump inside the stub fits a u8")
    };
    ops.iter()
        .enumerate()
        .map(|(pc, op)| match *op {
            Op::Load(off) => Insn {
                code: LD_ABS,
                jt: 0,
                jf: 0,
                k: off,
            },
            Op::Ja(to) => Insn {
                code: JA,
                jt: 0,
                jf: 0,
                k: (target(pc, to) - pc - 1) as u32,
            },
            Op::Jump { code, k, yes, no } => Insn {
                code,
                jt: short(pc, yes),
                jf: short(pc, no),
                k,
            },
            Op::Ret(k) => Insn {
                code: RET,
                jt: 0,
                jf: 0,
                k,
            },
        })
        .collect()
}

/// The instructions as the kernel reads them (host byte order, as libseccomp exports).
pub fn encode(program: &[Insn]) -> Vec<u8> {
    program
        .iter()
        .flat_map(|i| [&i.code.to_ne_bytes()[..], &[i.jt, i.jf], &i.k.to_ne_bytes()].concat())
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

    pub fn decode(bytes: &[u8]) -> Vec<Insn> {
        bytes
            .chunks(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect()
    }

    /// Runs a seccomp program over a call with all arguments 0, as the kernel would: the subset
    /// of classic BPF that libseccomp and the stub emit.
    pub fn eval(program: &[Insn], arch: u32, nr: u32) -> u32 {
        let data = |off: u32| match off {
            DATA_NR => nr,
            DATA_ARCH => arch,
            _ => 0,
        };
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let i = program[pc];
            pc += 1;
            let jump = |cond: bool| if cond { i.jt as usize } else { i.jf as usize };
            match i.code {
                LD_ABS => a = data(i.k),
                0x00 => a = i.k,  // ld #k
                0x01 => x = i.k,  // ldx #k
                0x07 => x = a,    // tax
                0x87 => a = x,    // txa
                0x54 => a &= i.k, // and #k
                JA => pc += i.k as usize,
                JEQ => pc += jump(a == i.k),
                JGT => pc += jump(a > i.k),
                0x35 => pc += jump(a >= i.k), // jge #k
                JSET => pc += jump(a & i.k != 0),
                0x1d => pc += jump(a == x), // jeq x
                0x2d => pc += jump(a > x),  // jgt x
                0x3d => pc += jump(a >= x), // jge x
                RET => return i.k,
                code => panic!("instruction {code:#x} at {} is not interpreted", pc - 1),
            }
        }
    }

    fn allow_all() -> Vec<Insn> {
        vec![Insn {
            code: RET,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        }]
    }

    fn run(largest: &[(u32, Largest)], arch: u32, nr: u32) -> u32 {
        let mut p = stub(&largest.iter().copied().collect());
        p.extend(allow_all());
        eval(&p, arch, nr)
    }

    const I386: u32 = 3 | AUDIT_LE;

    #[test]
    fn numbers_above_the_largest_are_enosys_per_arch() {
        let l = [
            (
                AUDIT_ARCH_X86_64,
                Largest {
                    native: Some(334),
                    x32: None,
                },
            ),
            (
                I386,
                Largest {
                    native: Some(400),
                    x32: None,
                },
            ),
        ];
        assert_eq!(run(&l, AUDIT_ARCH_X86_64, 334), SECCOMP_RET_ALLOW);
        assert_eq!(run(&l, AUDIT_ARCH_X86_64, 335), RET_ENOSYS);
        assert_eq!(run(&l, AUDIT_ARCH_X86_64, 1000), RET_ENOSYS);
        assert_eq!(run(&l, I386, 335), SECCOMP_RET_ALLOW);
        assert_eq!(run(&l, I386, 401), RET_ENOSYS);
        // An architecture without a section, and x32 calls when only x86_64 is listed, go to
        // the filter untouched.
        assert_eq!(
            run(&l, 183 | AUDIT_64BIT | AUDIT_LE, 5000),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&l, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 5000),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn x32_has_its_own_largest() {
        let both = [(
            AUDIT_ARCH_X86_64,
            Largest {
                native: Some(334),
                x32: Some(X32_SYSCALL_BIT | 547),
            },
        )];
        assert_eq!(run(&both, AUDIT_ARCH_X86_64, 400), RET_ENOSYS);
        assert_eq!(
            run(&both, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 400),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&both, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 548),
            RET_ENOSYS
        );
        let x32 = [(
            AUDIT_ARCH_X86_64,
            Largest {
                native: None,
                x32: Some(X32_SYSCALL_BIT | 547),
            },
        )];
        assert_eq!(run(&x32, AUDIT_ARCH_X86_64, 1000), SECCOMP_RET_ALLOW);
        assert_eq!(
            run(&x32, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 548),
            RET_ENOSYS
        );
    }

    #[test]
    fn s390_multiplexed_unknown_calls_are_enosys() {
        let l = [(
            22 | AUDIT_64BIT,
            Largest {
                native: Some(300),
                x32: None,
            },
        )];
        assert_eq!(run(&l, 22 | AUDIT_64BIT, 0), RET_ENOSYS);
        assert_eq!(run(&l, 22 | AUDIT_64BIT, 1), SECCOMP_RET_ALLOW);
        assert_eq!(run(&l, 22 | AUDIT_64BIT, 301), RET_ENOSYS);
    }

    #[test]
    fn nothing_to_check_gives_no_stub() {
        assert!(stub(&BTreeMap::new()).is_empty());
        assert!(stub(&[(I386, Largest::default())].into_iter().collect()).is_empty());
    }

    #[test]
    fn largest_counts_every_name_and_the_native_arch() {
        let l = largest(
            &[ScmpArch::X86, ScmpArch::X32],
            ["read", "clone3", "no_such_call"].into_iter(),
        );
        let x86_64 = l[&AUDIT_ARCH_X86_64];
        assert_eq!(x86_64.native, Some(435));
        assert_eq!(x86_64.x32, Some(X32_SYSCALL_BIT | 435));
        assert_eq!(l[&I386].native, Some(435));
        assert!(largest(&[], ["no_such_call"].into_iter()).is_empty());
    }

    #[test]
    fn only_refusing_defaults_need_it() {
        assert!(needed(LinuxSeccompAction::ScmpActErrno, libc::EPERM as u32));
        assert!(!needed(
            LinuxSeccompAction::ScmpActErrno,
            libc::ENOSYS as u32
        ));
        assert!(needed(LinuxSeccompAction::ScmpActKillProcess, 0));
        for a in [
            LinuxSeccompAction::ScmpActAllow,
            LinuxSeccompAction::ScmpActLog,
            LinuxSeccompAction::ScmpActTrace,
        ] {
            assert!(!needed(a, libc::EPERM as u32));
        }
    }
}
