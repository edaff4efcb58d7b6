//! sd_notify from inside a container. When kiln's caller sets `NOTIFY_SOCKET` (systemd for a
//! `Type=notify` unit, conmon for Podman's `--sdnotify=container`), the container gets a socket
//! of kiln's, and kiln relays what the program reports, as runc does:
//!
//! - `create` makes `ROOT/ID/notify/`, bind-mounts it read-only at `/run/notify` and sets
//!   `NOTIFY_SOCKET=/run/notify/notify.sock` in the process's environment (runc's mount, options
//!   and path: the caller's path names nothing in the container's mount namespace). Nothing
//!   listens there until `start`: the program cannot run before it.
//! - `start` and `run` bind `notify.sock` before the program runs; `start` and `run -d` return
//!   once the program sent `READY=1`, or exited without, having passed `READY=1` and `MAINPID=`
//!   (init's host pid) to the caller's socket. A foreground `run` relays for as long as it
//!   waits, with its own pid as `MAINPID` (kiln is the process its caller watches).
//!
//! Only `READY=1` and `STATUS=` lines pass, each datagram's as one datagram: the host's service
//! manager must not take the rest of the protocol from a container (`MAINPID=` would name a
//! host process for it to watch and kill, `FDSTORE=1` hands it fds, ...). runc passes only the
//! READY line; STATUS is what `systemctl status` shows while the container starts.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use oci_spec::runtime::{Mount, Spec};

use crate::error::{Context, Error, Result, quote};

/// `ROOT/ID/notify`, the directory the container sees at [`MOUNT_POINT`].
pub const DIR: &str = "notify";
const SOCKET: &str = "notify.sock";
const MOUNT_POINT: &str = "/run/notify";
const ENV: &str = "NOTIFY_SOCKET";
/// How long a datagram to the caller may wait for room in its socket's queue.
const SEND_WAIT: Duration = Duration::from_secs(30);

/// The caller's socket: `NOTIFY_SOCKET`, unless unset or empty (runc reads it with Go's Getenv,
/// which makes no difference between the two).
pub fn caller() -> Option<OsString> {
    std::env::var_os(ENV).filter(|s| !s.is_empty())
}

/// What `create` adds to the config: runc's mount after the bundle's, and the variable in place
/// of any the bundle set (runc appends it, and its init sets the variables in order, so the last
/// one is the one the program sees).
pub fn add_to_spec(spec: &mut Spec, state_dir: &Path) {
    let mut mount = Mount::default();
    mount
        .set_destination(PathBuf::from(MOUNT_POINT))
        .set_source(Some(state_dir.join(DIR)))
        .set_options(Some(
            ["bind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        ));
    spec.mounts_mut().get_or_insert_with(Vec::new).push(mount);
    if let Some(process) = spec.process_mut() {
        let env = process.env_mut().get_or_insert_with(Vec::new);
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("{ENV}={MOUNT_POINT}/{SOCKET}"));
    }
}

/// What of one datagram goes to the caller: its `READY=1` and `STATUS=` lines, each ended by a
/// newline (nothing when it has neither); and whether `READY=1` was among them.
pub fn filter(datagram: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut ready = false;
    for line in datagram.split(|&b| b == b'\n') {
        let is_ready = line == b"READY=1";
        ready |= is_ready;
        if is_ready || line.starts_with(b"STATUS=") {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    (out, ready)
}

/// kiln's end of the container's socket, bound in the state directory; its file goes with it,
/// so that a `start` that failed leaves the name free for the next one.
pub struct Listener {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Listener {
    pub fn bind(state_dir: &Path) -> Result<Listener> {
        let path = state_dir.join(DIR).join(SOCKET);
        let sock =
            UnixDatagram::bind(&path).ctx(|| format!("{ENV}: binding {}", path.display()))?;
        let listener = Listener { sock, path };
        // Any user of the container may report.
        std::fs::set_permissions(
            &listener.path,
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .ctx(|| format!("{ENV}: chmod {}", listener.path.display()))?;
        listener
            .sock
            .set_nonblocking(true)
            .ctx(|| format!("{ENV}: {}", listener.path.display()))?;
        Ok(listener)
    }

    /// Connects to the caller's socket (an `@` first names an abstract socket, as sd_notify
    /// reads it); `main_pid` is what the caller is told to watch.
    pub fn relay(self, caller: &OsStr, main_pid: i32) -> Result<Relay> {
        let what = || format!("{ENV} {}", quote(caller));
        let to = UnixDatagram::unbound().ctx(what)?;
        match caller.as_bytes().strip_prefix(b"@") {
            Some(name) => {
                let addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
                    .ctx(what)?;
                to.connect_addr(&addr)
            }
            None => to.connect(caller),
        }
        .ctx(|| format!("{}: connecting", what()))?;
        to.set_write_timeout(Some(SEND_WAIT)).ctx(what)?;
        Ok(Relay {
            from: self,
            to,
            caller: caller.to_owned(),
            main_pid,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub struct Relay {
    from: Listener,
    to: UnixDatagram,
    caller: OsString,
    main_pid: i32,
}

impl Relay {
    /// Readable when the container sent something: for a loop that polls other fds too.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.from.sock.as_fd()
    }

    /// Passes on what waits on the socket; true once `READY=1` went, followed by `MAINPID=`.
    pub fn forward(&self) -> Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            let n = match self.from.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::os(format!("{ENV}: receiving"), e)),
            };
            let (out, ready) = filter(&buf[..n]);
            if !out.is_empty() {
                self.send(&out)?;
            }
            if ready {
                self.send(format!("MAINPID={}\n", self.main_pid).as_bytes())?;
                return Ok(true);
            }
        }
    }

    /// Passes on everything waiting, past `READY=1` too: a foreground `run` relays for as long
    /// as the program runs, and `READY=1` may be queued with what the program sent after it.
    pub fn forward_all(&self) -> Result<()> {
        while self.forward()? {}
        Ok(())
    }

    fn send(&self, datagram: &[u8]) -> Result<()> {
        self.to
            .send(datagram)
            .map(drop)
            .ctx(|| format!("{ENV} {}: sending", quote(&self.caller)))
    }

    /// `start` and `run -d`: relays until `READY=1`, or until init (`pid`, its pidfd) exits
    /// without (runc returns then too, with success). A program that neither reports nor exits
    /// keeps its caller waiting, as under runc: the caller's own start timeout is the bound.
    pub fn until_ready(&self, init: BorrowedFd, pid: i32) -> Result<()> {
        loop {
            let mut fds = [
                PollFd::new(self.fd(), PollFlags::POLLIN),
                PollFd::new(init, PollFlags::POLLIN),
            ];
            // A pid namespace's init that exits stays unreadable until its namespace is reaped:
            // its /proc/PID/stat says it has finished meanwhile.
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| format!("{ENV}: poll")),
                Ok(_) => {}
            }
            let readable = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let (sent, exited) = (readable(&fds[0]), readable(&fds[1]));
            // What init sent before it exited still counts.
            if sent && self.forward()? {
                return Ok(());
            }
            if exited || crate::procfs::stat(pid).is_ok_and(|s| s.finished()) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_and_status_lines_pass() {
        assert_eq!(filter(b"READY=1"), (b"READY=1\n".to_vec(), true));
        assert_eq!(
            filter(b"STATUS=up\nMAINPID=1\nREADY=1\nFDSTORE=1\n"),
            (b"STATUS=up\nREADY=1\n".to_vec(), true)
        );
        assert_eq!(
            filter(b"STATUS=starting"),
            (b"STATUS=starting\n".to_vec(), false)
        );
        assert_eq!(filter(b"READY=0\nWATCHDOG=1"), (Vec::new(), false));
        assert_eq!(filter(b""), (Vec::new(), false));
    }

    #[test]
    fn the_spec_gets_runcs_mount_and_one_variable() {
        let mut spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
                "process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"env":["A=1","NOTIFY_SOCKET=/host.sock"]},
                "mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}"#,
        )
        .unwrap();
        add_to_spec(&mut spec, Path::new("/run/kiln/c1"));
        let mounts = spec.mounts().as_ref().unwrap();
        assert_eq!(mounts.len(), 2);
        let m = &mounts[1];
        assert_eq!(m.destination(), Path::new("/run/notify"));
        assert_eq!(
            m.source().as_deref(),
            Some(Path::new("/run/kiln/c1/notify"))
        );
        assert_eq!(m.typ(), &None);
        assert_eq!(
            m.options().as_deref().unwrap(),
            ["bind", "nosuid", "noexec", "nodev", "ro"]
        );
        assert_eq!(
            spec.process().as_ref().unwrap().env().as_deref().unwrap(),
            ["A=1", "NOTIFY_SOCKET=/run/notify/notify.sock"]
        );
    }
}
