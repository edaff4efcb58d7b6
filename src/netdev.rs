//! `linux.netDevices` carried out (the plan is `spec::net_devices`'s): `create` moves each host
//! interface into init's network namespace, under its container name, in one netlink request,
//! then gives it back its permanent global addresses (the kernel drops addresses on a move) and
//! sets it up, as runc does. A `create` that fails afterwards gives every device back to the
//! host, under its host name, with those addresses and its former state; a container that was
//! created keeps them: the runtime spec forbids moving them out before the namespace goes, when
//! the kernel returns physical devices to the host and destroys virtual ones (veth, ifb).

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;

use crate::error::{Context, Error, Result};
use crate::netlink::{Addr, Link, Socket};
use crate::spec::Bundle;
use crate::spec::net_devices::{self, NetDevice};

/// The devices of one `create`.
pub struct NetDevices {
    file: PathBuf,
    devices: Vec<NetDevice>,
    moved: RefCell<Option<Moved>>,
}

impl NetDevices {
    /// The bundle's devices, each present on the host (checked before anything exists; the
    /// move looks again). `rootless` is `--rootless`, which runc refuses them for as it does
    /// an unprivileged caller (validation's).
    pub fn new(bundle: &Bundle, rootless: bool) -> Result<NetDevices> {
        let devices = net_devices::plan(&bundle.spec);
        let this = NetDevices {
            file: bundle.config.clone(),
            devices,
            moved: RefCell::new(None),
        };
        if !this.devices.is_empty() {
            if rootless {
                return Err(Error::config(
                    &this.file,
                    "linux.netDevices",
                    "network devices are not supported for rootless containers (--rootless)",
                ));
            }
            let links = host_socket()?
                .links()
                .ctx(|| "linux.netDevices: listing the host's network devices")?;
            for d in &this.devices {
                this.find(&links, d)?;
            }
        }
        Ok(this)
    }

    fn find<'l>(&self, links: &'l [Link], d: &NetDevice) -> Result<&'l Link> {
        links.iter().find(|l| l.name == d.host).ok_or_else(|| {
            Error::config(
                &self.file,
                &d.field,
                format!(
                    "no network device {} on the host",
                    crate::error::quote(&d.host)
                ),
            )
        })
    }

    /// Moves every device into the network namespace of `init` (a pidfd), which has joined or
    /// made it. On an error, those already moved are back on the host.
    pub fn move_in(&self, init: BorrowedFd) -> Result<()> {
        if self.devices.is_empty() {
            return Ok(());
        }
        let host_ns: OwnedFd = File::open("/proc/thread-self/ns/net")
            .ctx(|| "linux.netDevices: opening the host's network namespace")?
            .into();
        let host = host_socket()?;
        nix::sched::setns(init, CloneFlags::CLONE_NEWNET)
            .ctx(|| "linux.netDevices: entering the container's network namespace")?;
        let opened = Socket::open().and_then(|s| Ok((s, File::open("/proc/thread-self/ns/net")?)));
        nix::sched::setns(&host_ns, CloneFlags::CLONE_NEWNET)
            .ctx(|| "linux.netDevices: returning to the host's network namespace")?;
        let (inside, inside_ns) = opened
            .ctx(|| "linux.netDevices: a netlink socket in the container's network namespace")?;
        let mut moved = Moved {
            host_ns,
            host,
            inside,
            devices: Vec::new(),
        };
        for d in &self.devices {
            self.move_one(&mut moved, d, inside_ns.as_fd())?;
        }
        *self.moved.borrow_mut() = Some(moved);
        Ok(())
    }

    fn move_one(&self, m: &mut Moved, d: &NetDevice, to: BorrowedFd) -> Result<()> {
        let what = |step: &str| format!("{}: {step}", d.field);
        let links = m.host.links().ctx(|| what("listing the host's devices"))?;
        let link = self.find(&links, d)?.clone();
        let addrs: Vec<Addr> = m
            .host
            .addrs(link.index)
            .ctx(|| what("reading its addresses"))?
            .into_iter()
            .filter(Addr::carried)
            .collect();
        let before = m
            .inside
            .links()
            .ctx(|| what("listing the container's devices"))?;
        if before.iter().any(|l| l.name == d.container) {
            return Err(Error::config(
                &self.file,
                format!("{}.name", d.field),
                format!(
                    "a device named {} already exists in the container's network namespace",
                    crate::error::quote(&d.container)
                ),
            ));
        }
        // Down while it changes namespace and name, as runc: what on the host watches it sees
        // it go, not a running device renamed.
        if link.up {
            m.host
                .set_link(link.index, false)
                .ctx(|| what("setting it down"))?;
        }
        let given = |index| Given {
            device: d.clone(),
            index,
            was_up: link.up,
            addrs: addrs.clone(),
        };
        if let Err(e) = m.host.move_link(link.index, &d.container, to) {
            // The kernel moves the device first and renames it after: a name taken there
            // fails the request with the device already inside, under its host name.
            match m.inside.links().map(|after| arrived(&before, &after, None)) {
                Ok(Some(index)) => m.devices.push(given(index)),
                _ if link.up => {
                    let _ = m.host.set_link(link.index, true);
                }
                _ => {}
            }
            return Err(Error::os(
                what(&format!(
                    "moving it into the container's network namespace as {}",
                    crate::error::quote(&d.container)
                )),
                e,
            ));
        }
        let after = m
            .inside
            .links()
            .ctx(|| what("listing the container's devices"))?;
        let name = Some(&d.container).filter(|_| !d.is_template());
        let index = arrived(&before, &after, name.map(String::as_str)).ok_or_else(|| {
            Error::refused(what("moved"), "not found in the container's namespace")
        })?;
        m.devices.push(given(index));
        for a in &addrs {
            m.inside
                .add_addr(index, a)
                .ctx(|| what("adding its address back in the container"))?;
        }
        m.inside
            .set_link(index, true)
            .ctx(|| what("setting it up in the container"))
    }

    /// The container was created: the devices are its namespace's now.
    pub fn keep(&self) {
        if let Some(m) = self.moved.borrow_mut().as_mut() {
            m.devices.clear();
        }
    }
}

/// Which link of the container's namespace is the device just moved: the one named `name`, or
/// (a template, a failed rename) the one that was not there before.
fn arrived(before: &[Link], after: &[Link], name: Option<&str>) -> Option<i32> {
    let new = |l: &&Link| !before.iter().any(|b| b.index == l.index);
    let found: Vec<&Link> = match name {
        None => after.iter().filter(new).collect(),
        Some(name) => after.iter().filter(|l| l.name == name).collect(),
    };
    match found[..] {
        [one] => Some(one.index),
        _ => None,
    }
}

fn host_socket() -> Result<Socket> {
    Socket::open().ctx(|| "linux.netDevices: a netlink socket")
}

struct Given {
    device: NetDevice,
    /// Its index in the container's namespace.
    index: i32,
    was_up: bool,
    addrs: Vec<Addr>,
}

/// The devices moved so far; dropped, they go back to the host. The socket in the container's
/// namespace keeps that namespace, and the devices in it, alive after init is killed.
struct Moved {
    host_ns: OwnedFd,
    host: Socket,
    inside: Socket,
    devices: Vec<Given>,
}

impl Moved {
    fn give_back(&self, g: &Given) -> io::Result<()> {
        self.inside.set_link(g.index, false)?;
        self.inside
            .move_link(g.index, &g.device.host, self.host_ns.as_fd())?;
        let links = self.host.links()?;
        let Some(link) = links.iter().find(|l| l.name == g.device.host) else {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        };
        for a in &g.addrs {
            match self.host.add_addr(link.index, a) {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                _ => {}
            }
        }
        if g.was_up {
            self.host.set_link(link.index, true)?;
        }
        Ok(())
    }
}

impl Drop for Moved {
    fn drop(&mut self) {
        for g in self.devices.iter().rev() {
            if let Err(e) = self.give_back(g) {
                crate::log::warn(&format!(
                    "{}: giving {} back to the host after a failed create: {e}",
                    g.device.field,
                    crate::error::quote(&g.device.host)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: i32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: false,
        }
    }

    #[test]
    fn the_moved_device_is_found_by_name_or_as_the_new_one() {
        let before = [link(1, "lo"), link(2, "eth0")];
        let after = [link(1, "lo"), link(2, "eth0"), link(9, "eth1")];
        assert_eq!(arrived(&before, &after, Some("eth1")), Some(9));
        assert_eq!(arrived(&before, &after, None), Some(9));
        assert_eq!(arrived(&before, &after, Some("eth7")), None);
        // Another device arriving meanwhile makes a template's ambiguous: refused, not guessed.
        let two = [link(1, "lo"), link(9, "eth1"), link(10, "eth2")];
        assert_eq!(arrived(&before, &two, None), None);
        assert_eq!(arrived(&before, &two, Some("eth2")), Some(10));
    }
}
