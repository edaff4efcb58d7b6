//! The few rtnetlink requests `linux.netDevices` needs (list links and addresses, move a link
//! into another network namespace under a new name, set it up or down, add an address), over
//! nix's socket API. Building a request and reading an answer are pure functions of bytes, tested
//! without a socket; [`Socket`] only sends and receives them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};

const HEADER: usize = 16;
const IFINFOMSG: usize = 16;
const IFADDRMSG: usize = 8;
/// The attribute type's bits (NLA_TYPE_MASK): the two above flag nesting and byte order.
const ATTR_TYPE: u16 = 0x3fff;

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// One request: the header, the family's fixed part, then attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    fn new(kind: u16, flags: u16, body: &[u8]) -> Request {
        let mut buf = vec![0; HEADER];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        buf.extend_from_slice(body);
        buf.resize(align(buf.len()), 0);
        Request { buf }
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Request {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    /// The bytes to send, numbered `seq`.
    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; IFINFOMSG] {
    let mut b = [0; IFINFOMSG];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

fn zero_terminated(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

pub fn get_links() -> Request {
    Request::new(
        libc::RTM_GETLINK,
        libc::NLM_F_DUMP as u16,
        &ifinfomsg(0, 0, 0),
    )
}

pub fn get_addrs() -> Request {
    Request::new(libc::RTM_GETADDR, libc::NLM_F_DUMP as u16, &[0; IFADDRMSG])
}

/// Moves link `index` into the network namespace `netns` (an fd of ours), named `name` there
/// (a `%d` template lets the kernel choose): one request, so that the name is never taken
/// meanwhile by another device in either namespace.
pub fn move_link(index: i32, name: &str, netns: i32) -> Request {
    Request::new(
        libc::RTM_NEWLINK,
        libc::NLM_F_ACK as u16,
        &ifinfomsg(index, 0, 0),
    )
    .attr(libc::IFLA_IFNAME, &zero_terminated(name))
    .attr(libc::IFLA_NET_NS_FD, &(netns as u32).to_ne_bytes())
}

pub fn set_link(index: i32, up: bool) -> Request {
    let flag = libc::IFF_UP as u32;
    Request::new(
        libc::RTM_NEWLINK,
        libc::NLM_F_ACK as u16,
        &ifinfomsg(index, if up { flag } else { 0 }, flag),
    )
}

/// Adds `addr` (as read from another link: its flags and label stay behind) to link `index`.
pub fn add_addr(index: i32, addr: &Addr) -> Request {
    let mut body = [0; IFADDRMSG];
    body[0] = addr.family;
    body[1] = addr.prefix_len;
    body[3] = addr.scope;
    body[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
    let mut r = Request::new(
        libc::RTM_NEWADDR,
        (libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
        &body,
    );
    for (kind, value) in [
        (libc::IFA_LOCAL, &addr.local),
        (libc::IFA_ADDRESS, &addr.address),
        (libc::IFA_BROADCAST, &addr.broadcast),
    ] {
        if let Some(v) = value {
            r = r.attr(kind, v);
        }
    }
    r
}

/// One message of an answer: its type, sequence number and payload.
#[derive(Debug, PartialEq, Eq)]
struct Message<'a> {
    kind: u16,
    seq: u32,
    payload: &'a [u8],
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink answer: {what}"),
    )
}

/// The messages of one datagram.
fn messages(mut buf: &[u8]) -> io::Result<Vec<Message<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < HEADER {
            return Err(invalid("truncated header"));
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        if len < HEADER || len > buf.len() {
            return Err(invalid("bad message length"));
        }
        out.push(Message {
            kind: u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            seq: u32::from_ne_bytes(buf[8..12].try_into().unwrap()),
            payload: &buf[HEADER..len],
        });
        buf = &buf[align(len).min(buf.len())..];
    }
    Ok(out)
}

/// The attributes following a fixed part: (type, value).
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((
            u16::from_ne_bytes([buf[2], buf[3]]) & ATTR_TYPE,
            &buf[4..len],
        ));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

/// An NLMSG_ERROR payload: Ok for an acknowledgement (error 0).
fn error_code(payload: &[u8]) -> io::Result<()> {
    let code = payload
        .get(0..4)
        .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
        .ok_or_else(|| invalid("truncated error"))?;
    match code {
        0 => Ok(()),
        c => Err(io::Error::from_raw_os_error(-c)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub name: String,
    pub up: bool,
}

fn parse_link(payload: &[u8]) -> Option<Link> {
    let fixed = payload.get(..IFINFOMSG)?;
    let index = i32::from_ne_bytes(fixed[4..8].try_into().unwrap());
    let flags = u32::from_ne_bytes(fixed[8..12].try_into().unwrap());
    let name = attrs(&payload[IFINFOMSG..])
        .into_iter()
        .find(|(k, _)| *k == libc::IFLA_IFNAME)?
        .1;
    let name = name.split(|b| *b == 0).next().unwrap_or_default();
    Some(Link {
        index,
        name: String::from_utf8_lossy(name).into_owned(),
        up: flags & libc::IFF_UP as u32 != 0,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: u8,
    pub prefix_len: u8,
    pub scope: u8,
    pub index: u32,
    /// IFA_FLAGS where the kernel sends it (its 32 bits), else ifa_flags.
    pub flags: u32,
    pub local: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
}

impl Addr {
    /// What runc carries into the container (and the runtime spec requires): permanent
    /// addresses of global scope. Others were configured for the namespace they were in
    /// (link-local, host scope) or expire.
    pub fn carried(&self) -> bool {
        self.flags & libc::IFA_F_PERMANENT != 0 && self.scope == libc::RT_SCOPE_UNIVERSE
    }
}

fn parse_addr(payload: &[u8]) -> Option<Addr> {
    let fixed = payload.get(..IFADDRMSG)?;
    let mut a = Addr {
        family: fixed[0],
        prefix_len: fixed[1],
        flags: u32::from(fixed[2]),
        scope: fixed[3],
        index: u32::from_ne_bytes(fixed[4..8].try_into().unwrap()),
        local: None,
        address: None,
        broadcast: None,
    };
    for (kind, value) in attrs(&payload[IFADDRMSG..]) {
        match kind {
            libc::IFA_LOCAL => a.local = Some(value.to_vec()),
            libc::IFA_ADDRESS => a.address = Some(value.to_vec()),
            libc::IFA_BROADCAST => a.broadcast = Some(value.to_vec()),
            libc::IFA_FLAGS if value.len() == 4 => {
                a.flags = u32::from_ne_bytes(value.try_into().unwrap())
            }
            _ => {}
        }
    }
    Some(a)
}

/// A NETLINK_ROUTE socket of the network namespace the caller was in when it opened it (the
/// socket keeps that namespace alive).
pub struct Socket {
    fd: OwnedFd,
    seq: std::cell::Cell<u32>,
}

/// The kernel answers at once; the bound is only there so that no wait is unbounded.
const ANSWER_SECS: i64 = 10;

impl Socket {
    pub fn open() -> io::Result<Socket> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        let timeout = TimeVal::seconds(ANSWER_SECS);
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
        Ok(Socket {
            fd,
            seq: std::cell::Cell::new(0),
        })
    }

    /// Sends `req`; calls `each` with every message answering it until `each` says done.
    fn exchange(
        &self,
        mut req: Request,
        mut each: impl FnMut(&Message) -> io::Result<bool>,
    ) -> io::Result<()> {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        socket::send(self.fd.as_raw_fd(), req.finish(seq), MsgFlags::empty())?;
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            if n == 0 {
                return Err(invalid("empty datagram"));
            }
            for m in messages(&buf[..n])? {
                if m.seq == seq && each(&m)? {
                    return Ok(());
                }
            }
        }
    }

    /// A request the kernel acknowledges: its error, or Ok.
    pub fn ack(&self, req: Request) -> io::Result<()> {
        self.exchange(req, |m| match m.kind as i32 {
            libc::NLMSG_ERROR => error_code(m.payload).map(|()| true),
            _ => Ok(false),
        })
    }

    /// A dump's payloads of type `kind`.
    fn dump<T>(&self, req: Request, parse: fn(&[u8]) -> Option<T>) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        self.exchange(req, |m| match m.kind as i32 {
            libc::NLMSG_DONE => Ok(true),
            libc::NLMSG_ERROR => error_code(m.payload).map(|()| true),
            _ => {
                out.extend(parse(m.payload));
                Ok(false)
            }
        })?;
        Ok(out)
    }

    pub fn links(&self) -> io::Result<Vec<Link>> {
        self.dump(get_links(), parse_link)
    }

    /// The addresses of link `index`, of every family.
    pub fn addrs(&self, index: i32) -> io::Result<Vec<Addr>> {
        let mut all = self.dump(get_addrs(), parse_addr)?;
        all.retain(|a| a.index == index as u32);
        Ok(all)
    }

    pub fn move_link(&self, index: i32, name: &str, netns: BorrowedFd) -> io::Result<()> {
        self.ack(move_link(index, name, netns.as_raw_fd()))
    }

    pub fn set_link(&self, index: i32, up: bool) -> io::Result<()> {
        self.ack(set_link(index, up))
    }

    pub fn add_addr(&self, index: i32, addr: &Addr) -> io::Result<()> {
        self.ack(add_addr(index, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16s(b: &[u8]) -> u16 {
        u16::from_ne_bytes(b.try_into().unwrap())
    }

    fn u32s(b: &[u8]) -> u32 {
        u32::from_ne_bytes(b.try_into().unwrap())
    }

    #[test]
    fn a_move_is_one_newlink_with_the_name_and_the_namespace_fd() {
        let mut r = move_link(7, "eth1", 42);
        let b = r.finish(3).to_vec();
        assert_eq!(u32s(&b[0..4]) as usize, b.len());
        assert_eq!(u16s(&b[4..6]), libc::RTM_NEWLINK);
        assert_eq!(
            u16s(&b[6..8]),
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16
        );
        assert_eq!(u32s(&b[8..12]), 3);
        let body = &b[HEADER..];
        assert_eq!(i32::from_ne_bytes(body[4..8].try_into().unwrap()), 7);
        let a = attrs(&body[IFINFOMSG..]);
        assert_eq!(
            a,
            vec![
                (libc::IFLA_IFNAME, &b"eth1\0"[..]),
                (libc::IFLA_NET_NS_FD, &42u32.to_ne_bytes()[..]),
            ]
        );
        // Each attribute padded to 4 bytes: "eth1\0" takes 8 + 4 of header.
        assert_eq!(b.len(), HEADER + IFINFOMSG + 12 + 8);
    }

    #[test]
    fn up_and_down_change_only_iff_up() {
        let mut up = set_link(5, true);
        let b = up.finish(1).to_vec();
        let body = &b[HEADER..];
        assert_eq!(u32s(&body[8..12]), libc::IFF_UP as u32);
        assert_eq!(u32s(&body[12..16]), libc::IFF_UP as u32);
        let mut down = set_link(5, false);
        let b = down.finish(1).to_vec();
        assert_eq!(u32s(&b[HEADER + 8..HEADER + 12]), 0);
        assert_eq!(u32s(&b[HEADER + 12..HEADER + 16]), libc::IFF_UP as u32);
    }

    /// An RTM_NEWADDR as the kernel dumps it: 10.7.0.1/24 on link 6, permanent, global.
    fn addr_message(seq: u32) -> Vec<u8> {
        let mut r = Request::new(libc::RTM_NEWADDR, 0, &[2, 24, 0x80, 0, 6, 0, 0, 0])
            .attr(libc::IFA_ADDRESS, &[10, 7, 0, 1])
            .attr(libc::IFA_LOCAL, &[10, 7, 0, 1])
            .attr(libc::IFA_BROADCAST, &[10, 7, 0, 255])
            .attr(libc::IFA_LABEL, b"kt0\0")
            .attr(libc::IFA_FLAGS, &0x80u32.to_ne_bytes());
        r.finish(seq).to_vec()
    }

    #[test]
    fn addresses_are_read_and_added_back_without_label_or_flags() {
        let mut two = addr_message(9);
        two.extend(addr_message(9));
        let ms = messages(&two).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!((ms[0].kind, ms[0].seq), (libc::RTM_NEWADDR, 9));
        let a = parse_addr(ms[1].payload).unwrap();
        assert_eq!(
            a,
            Addr {
                family: 2,
                prefix_len: 24,
                scope: 0,
                index: 6,
                flags: 0x80,
                local: Some(vec![10, 7, 0, 1]),
                address: Some(vec![10, 7, 0, 1]),
                broadcast: Some(vec![10, 7, 0, 255]),
            }
        );
        assert!(a.carried());
        let mut add = add_addr(11, &a);
        let b = add.finish(1).to_vec();
        assert_eq!(u16s(&b[4..6]), libc::RTM_NEWADDR);
        assert_eq!(&b[HEADER..HEADER + 8], &[2, 24, 0, 0, 11, 0, 0, 0]);
        let kinds: Vec<u16> = attrs(&b[HEADER + IFADDRMSG..])
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            kinds,
            [libc::IFA_LOCAL, libc::IFA_ADDRESS, libc::IFA_BROADCAST]
        );
    }

    #[test]
    fn only_permanent_global_addresses_are_carried() {
        let base = parse_addr(messages(&addr_message(1)).unwrap()[0].payload).unwrap();
        let link_local = Addr {
            scope: libc::RT_SCOPE_LINK,
            ..base.clone()
        };
        let dynamic = Addr { flags: 0, ..base };
        assert!(!link_local.carried());
        assert!(!dynamic.carried());
    }

    #[test]
    fn links_name_index_and_state() {
        let mut r = Request::new(libc::RTM_NEWLINK, 0, &ifinfomsg(4, 0x1003, 0))
            .attr(libc::IFLA_MTU, &1500u32.to_ne_bytes())
            .attr(libc::IFLA_IFNAME, b"kt-vethA\0");
        let b = r.finish(2).to_vec();
        let m = &messages(&b).unwrap()[0];
        assert_eq!(
            parse_link(m.payload),
            Some(Link {
                index: 4,
                name: "kt-vethA".into(),
                up: true
            })
        );
        // Without a name it is no link kiln can match.
        let mut r = Request::new(libc::RTM_NEWLINK, 0, &ifinfomsg(4, 0, 0));
        let b = r.finish(2).to_vec();
        assert_eq!(parse_link(messages(&b).unwrap()[0].payload), None);
    }

    #[test]
    fn errors_and_acks() {
        assert!(error_code(&0i32.to_ne_bytes()).is_ok());
        let e = error_code(&(-libc::EEXIST).to_ne_bytes()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(error_code(&[0, 0]).is_err());
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        assert!(messages(&[1, 2, 3]).is_err());
        let mut b = addr_message(1);
        b[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(messages(&b).is_err());
        b[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(messages(&b).is_err());
        // An attribute running past the end stops the list.
        assert_eq!(attrs(&[200, 0, 1, 0, 9]), vec![]);
        assert_eq!(parse_addr(&[2, 24]), None);
    }
}
