//! /proc, both ways.
//!
//! Reading: the files kiln parses (mountinfo, /proc/PID/cgroup, /proc/PID/stat), each parsed
//! here and only here, by pure functions over the text (unit-tested on lines captured from real
//! hosts), each with a thin reader beside it.
//!
//! Writing: the container's /proc, used only once it is known to be procfs (CVE-2019-16884,
//! CVE-2019-19921): a rootfs or a mount can put anything at /proc, and a write meant for the
//! kernel (a sysctl, oom_score_adj, an LSM label) would then land in a file of the image or of
//! the host. The check is made on the opened fd (fstatfs), so no swap of the path between check
//! and use can matter.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::sys::stat::{SFlag, fstat};
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};

fn ensure_procfs(fd: impl AsFd, path: &Path) -> io::Result<()> {
    if fstatfs(fd)?.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(io::Error::other(format!(
            "{} is not on procfs",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `value` to a file under /proc, refusing one that is not procfs.
pub fn write(path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    let path = path.as_ref();
    // Neither O_CREAT nor O_TRUNC: nothing is made where a kernel file is missing.
    let mut f = OpenOptions::new().write(true).open(path)?;
    ensure_procfs(&f, path)?;
    f.write_all(value.as_bytes())
}

/// Like `write`, but leaves a file that already holds `value` untouched, without opening it for
/// writing: some opens fail even when the write would change nothing (oom_score_adj inside a
/// user namespace, owned by the unmapped host root).
pub fn update(path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    let path = path.as_ref();
    let mut f = File::open(path)?;
    ensure_procfs(&f, path)?;
    let mut current = String::new();
    f.read_to_string(&mut current)?;
    if current.trim() == value {
        return Ok(());
    }
    write(path, value)
}

/// Closes every directory fd from `first` up: init inherits from `create` fds of the host's
/// directories (the state directory's lock, a v2 cgroup), and one still open would let a
/// process.cwd of `/proc/self/fd/N`, or a hook opening `/proc/1/fd/N`, reach the host
/// (CVE-2024-21626). The fds themselves are listed by procfs, so this runs after /proc is
/// mounted; nothing that owns them is ever dropped in init, which execs or `_exit`s.
pub fn close_directories_from(first: RawFd) -> io::Result<()> {
    for fd in open_fds()?.into_iter().filter(|&fd| fd >= first) {
        if fstat(fd).is_ok_and(|st| {
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
        }) {
            nix::unistd::close(fd)?;
        }
    }
    Ok(())
}

/// The fds this process has open, as procfs lists them (the listing's own fd left out).
pub fn open_fds() -> io::Result<Vec<RawFd>> {
    let path = Path::new("/proc/self/fd");
    let fd = std::fs::File::open(path)?;
    ensure_procfs(&fd, path)?;
    let mut dir = Dir::from(fd)?;
    let own = dir.as_raw_fd();
    Ok(dir
        .iter()
        .filter_map(|e| e.ok()?.file_name().to_str().ok()?.parse().ok())
        .filter(|&fd| fd != own)
        .collect())
}

// ------------------------------------------------------------------ reading

/// Room for any file read with [`read_single`], and the first read of every other one.
const PAGE: usize = 4096;

/// A whole kernel file of many records (mountinfo, a cgroup's `cgroup.procs`), read until EOF:
/// a read may end early with more to come. Its size reads as 0, so `File::read_to_string`
/// would first stat it and seek for a size hint that says nothing; `Take` has no hint to ask
/// for, and reads a page at a time into the buffer, growing it.
pub fn read_records(path: impl AsRef<Path>) -> io::Result<String> {
    let mut text = String::with_capacity(PAGE);
    File::open(path)?.take(u64::MAX).read_to_string(&mut text)?;
    Ok(text)
}

/// A whole kernel file that is written in one piece (a `single_open` file: /proc/PID/stat,
/// /proc/PID/cgroup; a cgroup's one-value or keyed file: `cgroup.freeze`, `cgroup.events`,
/// `freezer.state`), in one read(2) where it fits a page: such a file is made whole at the first
/// read, which returns all of it when the buffer has room, so a read that leaves room is the
/// whole file and the read that would only find EOF is skipped. A larger file is read on until
/// EOF. (A file of many records, such as mountinfo, may end a read early with more to come: it
/// is read with [`read_records`].)
pub fn read_single(path: impl AsRef<Path>) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut buf = vec![0; PAGE];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    buf.truncate(n);
    if n == PAGE {
        f.take(u64::MAX).read_to_end(&mut buf)?;
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One line of mountinfo (proc(5)): the fields kiln uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// Field 1, the mount's id (a mount's parent is named by it).
    pub id: u64,
    /// The directory of the filesystem that is mounted: `/`, or the part a bind mount shows.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The superblock's options: for a v1 cgroup, its controllers (`rw,cpu,cpuacct`).
    pub super_options: String,
}

/// The mounts this process sees, in mountinfo's order: a later one may hide an earlier one on
/// or below its mount point.
pub fn mountinfo() -> io::Result<Vec<Mount>> {
    Ok(parse_mountinfo(&read_records("/proc/self/mountinfo")?))
}

/// The mounts process `pid` sees, mount points relative to its root.
pub fn mountinfo_of(pid: i32) -> io::Result<Vec<Mount>> {
    Ok(parse_mountinfo(&read_records(format!(
        "/proc/{pid}/mountinfo"
    ))?))
}

/// A line that is not the kernel's shape (no ` - ` separator, too few fields) is left out.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_mount).collect()
}

fn parse_mount(line: &str) -> Option<Mount> {
    // The optional fields (shared:N, master:N) before the separator vary in number.
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let id = left.next()?.parse().ok()?;
    let root = left.nth(2)?;
    let mount_point = left.next()?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    Some(Mount {
        id,
        root: unescape(root).into(),
        mount_point: unescape(mount_point).into(),
        fstype: fstype.to_owned(),
        super_options: right.nth(1).unwrap_or_default().to_owned(),
    })
}

/// mountinfo writes a space, tab, newline and backslash in a path as octal (`\040`, `\011`,
/// `\012`, `\134`). Most paths have none: they are copied as they are, once (a host of
/// thousands of mounts is parsed at every create).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One line of /proc/PID/cgroup: a hierarchy and the process's cgroup in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cgroup {
    /// The v1 controllers as the kernel names them (`cpu,cpuacct`, `name=systemd`), `""` for
    /// cgroup2.
    pub controllers: String,
    /// Relative to the hierarchy's root (of the reader's cgroup namespace), `/`-led.
    pub path: String,
}

/// This process's cgroup in every hierarchy.
pub fn cgroup() -> io::Result<Vec<Cgroup>> {
    Ok(parse_cgroup(&read_single("/proc/self/cgroup")?))
}

pub fn parse_cgroup(text: &str) -> Vec<Cgroup> {
    text.lines()
        .filter_map(|l| {
            // `ID:CONTROLLERS:PATH`; the path may hold a colon.
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            Some(Cgroup {
                controllers: controllers.to_owned(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// What kiln reads from /proc/PID/stat, in one read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `Z`, ...
    pub state: char,
    /// Field 9, the kernel's PF_* flags.
    pub flags: u64,
    /// Field 22, in clock ticks since boot: with the pid it identifies a process for good,
    /// which guards every later signal against pid reuse.
    pub start_time: u64,
}

impl Stat {
    /// It will never run again, though its pid is still taken: a zombie (state Z or X) that its
    /// parent has not reaped, or a process already in its exit (PF_EXITING). A pid namespace's
    /// init stays in that exit until every process of the namespace is reaped, those whose parent
    /// is outside it (an `exec` caller that never waits) included: that can be never. Both are
    /// read from the first thread, as runc reads the zombie state: a process whose first thread
    /// alone has exited counts as finished too.
    pub fn finished(&self) -> bool {
        const PF_EXITING: u64 = 0x4;
        matches!(self.state, 'Z' | 'X') || self.flags & PF_EXITING != 0
    }
}

pub fn stat(pid: i32) -> io::Result<Stat> {
    let text = read_single(format!("/proc/{pid}/stat"))?;
    parse_stat(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat"))
}

pub fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let flags = fields.nth(5)?.parse().ok()?;
    let start_time = fields.nth(12)?.parse().ok()?;
    Some(Stat {
        state,
        flags,
        start_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first and third lines are a real host's (cgroups' testdata: hybrid-escaped.mountinfo,
    /// the four escapes in one path, and hybrid.mountinfo); the second is made up to hold a bind
    /// mount of part of a filesystem and optional fields; the last two are not the kernel's.
    #[test]
    fn mountinfo_lines() {
        let text = "\
84 56 0:32 / /tmp/kiln\\040cg\\011mem\\012ory\\134x rw,relatime - cgroup cgroup rw,memory
29 22 0:26 /sub /mnt rw shared:1 master:2 - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
not a mountinfo line
1 2 0:3 / /x rw -
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0].mount_point, Path::new("/tmp/kiln cg\tmem\nory\\x"));
        assert_eq!(
            (m[0].fstype.as_str(), m[0].super_options.as_str()),
            ("cgroup", "rw,memory")
        );
        assert_eq!(m[1].root, Path::new("/sub"));
        assert_eq!(m[1].mount_point, Path::new("/mnt"));
        assert_eq!(m[1].fstype, "ext4");
        assert_eq!(m[2].super_options, "rw,mode=755");
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"\011\012\134"), "\t\n\\");
        assert_eq!(unescape(r"/end\040"), "/end ");
        // Not an escape: too short, or not octal.
        assert_eq!(unescape(r"/a\04"), r"/a\04");
        assert_eq!(unescape(r"/a\089"), r"/a\089");
        assert_eq!(unescape(r"/a\\"), r"/a\\");
        // A byte that is no UTF-8 of its own; a path without escapes, as it is.
        assert_eq!(unescape(r"/a\377"), "/a\u{FFFD}");
        assert_eq!(unescape("/plain/path"), "/plain/path");
    }

    #[test]
    fn cgroup_lines() {
        let c = parse_cgroup("4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/a:b\nbroken\n");
        let got: Vec<(&str, &str)> = c
            .iter()
            .map(|c| (c.controllers.as_str(), c.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("memory", "/process_api/x"),
                ("cpu,cpuacct", "/"),
                ("", "/a:b")
            ]
        );
    }

    /// What fits a page comes in one read; a larger file is read on to its end, whole.
    #[test]
    fn single_files_are_read_whole() {
        let dir = std::env::temp_dir().join(format!("kiln-read-single-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [0, 1, PAGE - 1, PAGE, PAGE + 1, 3 * PAGE + 7] {
            let path = dir.join(len.to_string());
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            std::fs::write(&path, &text).unwrap();
            assert_eq!(read_single(path.to_str().unwrap()).unwrap(), text, "{len}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let me = stat(std::process::id() as i32).unwrap();
        assert!(me.start_time > 0 && !me.finished());
        assert!(cgroup().unwrap().iter().any(|c| c.path.starts_with('/')));
    }

    #[test]
    fn stat_survives_odd_comm() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1 2";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                state: 'S',
                flags: 4194560,
                start_time: 98765
            })
        );
    }

    /// A real line (a forked python3 that exited unreaped, kernel 6.18), and what is not one.
    #[test]
    fn stat_states() {
        let zombie = "17984 (python3) Z 17927 17925 6875 0 -1 4227148 229 0 0 0 0 0 0 0 20 0 1 0 122424 0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 2 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let s = parse_stat(zombie).unwrap();
        assert!(s.finished());
        assert_eq!(s.start_time, 122424);
        assert!(
            parse_stat(&zombie.replace(") Z", ") X"))
                .unwrap()
                .finished()
        );
        // A zombie has PF_EXITING too: a running process with the same line but its flags is not.
        let running = zombie
            .replace(") Z", ") R")
            .replace(" 4227148 ", " 4194560 ");
        assert!(!parse_stat(&running).unwrap().finished());
        // A pid namespace's init in its exit, waiting for the namespace's zombies: S, PF_EXITING.
        let exiting = running
            .replace(") R", ") S")
            .replace(" 4194560 ", " 4194564 ");
        assert!(parse_stat(&exiting).unwrap().finished());
        assert_eq!(parse_stat("1 (init S 1"), None);
        assert_eq!(parse_stat("1 (init) S 1 2 3"), None);
        assert_eq!(
            parse_stat("1 (init) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x"),
            None
        );
    }
}
