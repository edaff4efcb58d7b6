//! The D-Bus that kiln's systemd driver needs, and no more: a unix socket, SASL EXTERNAL,
//! method calls with their replies and errors, and the signals that arrive meanwhile. kiln is
//! started for every operation, so a client library (and its async runtime) would cost more
//! start-up and binary than the few calls it makes; the wire format is small and fixed
//! (the D-Bus specification, "Message Protocol"). Encoding and decoding are pure and
//! unit-tested byte for byte against another implementation's encodings.
//!
//! Only little-endian messages are written and read: systemd and dbus-daemon answer in the
//! byte order of the host they run on, which is the order kiln runs on (x86-64, arm64).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

/// A D-Bus value, typed as on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// The element's signature, kept for an empty array (whose type no element tells).
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::F64(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }
}

/// What went wrong talking to the bus, in one line; the driver adds the unit and the call.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DbusError {
    #[error("{0}")]
    Io(String),
    #[error("malformed D-Bus message: {0}")]
    Malformed(String),
    #[error("authentication refused: {0}")]
    Auth(String),
    /// An error reply: its name (`org.freedesktop.systemd1.UnitExists`) and message.
    #[error("{name}: {message}")]
    Reply { name: String, message: String },
    #[error("no answer within {0} s")]
    Timeout(u64),
}

type Result<T> = std::result::Result<T, DbusError>;

fn malformed<T>(what: impl Into<String>) -> Result<T> {
    Err(DbusError::Malformed(what.into()))
}

// ------------------------------------------------------------------ encoding

fn align_of(sig: u8) -> usize {
    match sig {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// Appends values to a buffer whose offset 0 is 8-aligned in the message (a message's start,
/// or its body's: the header is padded to 8), so that alignment is by `buf.len()`.
#[derive(Default)]
struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    fn pad(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(n) => self.u32(*n as u32),
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => self.u64(*n as u64),
            Value::U64(n) => self.u64(*n),
            Value::F64(f) => self.u64(f.to_bits()),
            Value::Str(s) | Value::Path(s) => {
                self.u32(s.len() as u32);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Sig(s) => self.sig(s),
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                self.pad(align_of(elem.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                items.iter().for_each(|i| self.value(i));
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                fields.iter().for_each(|f| self.value(f));
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature());
                self.value(inner);
            }
        }
    }

    fn u64(&mut self, n: u64) {
        self.pad(8);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SENDER: u8 = 7;
const FIELD_SIGNATURE: u8 = 8;

/// One method call to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub args: Vec<Value>,
}

/// The bytes of `call` as message `serial`.
pub fn encode_call(call: &Call, serial: u32) -> Vec<u8> {
    let mut body = Encoder::default();
    call.args.iter().for_each(|a| body.value(a));
    let signature: String = call.args.iter().map(Value::signature).collect();
    let field = |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::variant(v)]);
    let mut fields = vec![
        field(FIELD_PATH, Value::Path(call.path.into())),
        field(FIELD_INTERFACE, Value::str(call.interface)),
        field(FIELD_MEMBER, Value::str(call.member)),
        field(FIELD_DESTINATION, Value::str(call.destination)),
    ];
    if !signature.is_empty() {
        fields.push(field(FIELD_SIGNATURE, Value::Sig(signature)));
    }
    let mut msg = Encoder::default();
    msg.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    msg.u32(body.buf.len() as u32);
    msg.u32(serial);
    msg.value(&Value::Array("(yv)".into(), fields));
    msg.pad(8);
    msg.buf.extend_from_slice(&body.buf);
    msg.buf
}

// ------------------------------------------------------------------ decoding

/// Nesting deeper than this is refused: the specification's limit is 64 in all, and nothing
/// systemd sends kiln comes near.
const MAX_DEPTH: usize = 32;

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return malformed(format!(
                "{n} bytes wanted at offset {} of {}",
                self.pos,
                self.buf.len()
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn align(&mut self, n: usize) -> Result<()> {
        let pad = (n - self.pos % n) % n;
        self.take(pad).map(drop)
    }

    fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        self.align(8)?;
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn text(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len + 1)?;
        if bytes[len] != 0 {
            return malformed("a string without its terminating nul");
        }
        String::from_utf8(bytes[..len].to_vec()).or_else(|_| malformed("a string not UTF-8"))
    }

    fn sig(&mut self) -> Result<String> {
        let len = self.take(1)?[0] as usize;
        self.text(len)
    }

    /// The values of `sig`, one complete type after another.
    fn values(&mut self, sig: &str, depth: usize) -> Result<Vec<Value>> {
        let mut out = vec![];
        let mut rest = sig;
        while !rest.is_empty() {
            let n = complete_type(rest)?;
            out.push(self.value(&rest[..n], depth)?);
            rest = &rest[n..];
        }
        Ok(out)
    }

    /// One value of the complete type `ty`.
    fn value(&mut self, ty: &str, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return malformed("nested too deep");
        }
        Ok(match ty.as_bytes()[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return malformed(format!("boolean {n}")),
            },
            b'n' => {
                self.align(2)?;
                Value::I32(i16::from_le_bytes(self.take(2)?.try_into().unwrap()).into())
            }
            b'q' => {
                self.align(2)?;
                Value::U32(u16::from_le_bytes(self.take(2)?.try_into().unwrap()).into())
            }
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(self.u64()? as i64),
            b't' => Value::U64(self.u64()?),
            b'd' => Value::F64(f64::from_bits(self.u64()?)),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if ty == "o" {
                    Value::Path(s)
                } else {
                    Value::Str(s)
                }
            }
            b'g' => Value::Sig(self.sig()?),
            b'v' => {
                let sig = self.sig()?;
                if sig.is_empty() || complete_type(&sig)? != sig.len() {
                    return malformed(format!("variant signature {sig:?}"));
                }
                Value::variant(self.value(&sig, depth + 1)?)
            }
            b'a' => {
                let elem = &ty[1..];
                let len = self.u32()? as usize;
                self.align(align_of(elem.as_bytes()[0]))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    return malformed(format!("array of {len} bytes past the end"));
                }
                let mut items = vec![];
                while self.pos < end {
                    items.push(self.value(elem, depth + 1)?);
                }
                if self.pos != end {
                    return malformed("array elements overrun its length");
                }
                Value::Array(elem.to_owned(), items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                Value::Struct(self.values(&ty[1..ty.len() - 1], depth + 1)?)
            }
            c => return malformed(format!("type {:?}", c as char)),
        })
    }
}

/// The length of the complete type that `sig` begins with.
fn complete_type(sig: &str) -> Result<usize> {
    let b = sig.as_bytes();
    match b.first() {
        None => malformed("a signature ends inside a type"),
        Some(b'a') => Ok(1 + complete_type(&sig[1..])?),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut at = 1;
            while b.get(at) != Some(&close) {
                if at >= b.len() {
                    return malformed(format!("unclosed {:?} in {sig:?}", open as char));
                }
                at += complete_type(&sig[at..])?;
            }
            if at == 1 {
                return malformed("an empty struct");
            }
            Ok(at + 1)
        }
        Some(c) if b"ybnqiuxtdsogvh".contains(c) => Ok(1),
        Some(c) => malformed(format!("type {:?} in {sig:?}", *c as char)),
    }
}

/// A message received: a reply, an error or a signal (method calls to kiln are not expected).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

impl Message {
    fn is_signal(&self, interface: &str, member: &str) -> bool {
        self.kind == SIGNAL
            && self.interface.as_deref() == Some(interface)
            && self.member.as_deref() == Some(member)
    }
}

/// The size of the message that `head` (its first 16 bytes) begins.
fn message_len(head: &[u8; 16]) -> Result<usize> {
    if head[0] != b'l' {
        return malformed(format!(
            "byte order {:?} (only little-endian is read)",
            head[0] as char
        ));
    }
    let body = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    let fields = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
    let total = (16 + fields).next_multiple_of(8) + body;
    // The specification's maximum message size.
    if total > 1 << 27 {
        return malformed(format!("a message of {total} bytes"));
    }
    Ok(total)
}

pub fn decode_message(buf: &[u8]) -> Result<Message> {
    let Some(head) = buf.first_chunk::<16>() else {
        return malformed("shorter than a header");
    };
    if message_len(head)? != buf.len() {
        return malformed("its length disagrees with its header");
    }
    if head[3] != 1 {
        return malformed(format!("protocol version {}", head[3]));
    }
    let mut d = Decoder { buf, pos: 12 };
    let Value::Array(_, fields) = d.value("a(yv)", 0)? else {
        unreachable!("decoded as an array")
    };
    d.align(8)?;
    let mut m = Message {
        kind: head[1],
        serial: u32::from_le_bytes(head[8..12].try_into().unwrap()),
        reply_serial: None,
        interface: None,
        member: None,
        error_name: None,
        body: vec![],
    };
    let mut signature = String::new();
    for f in fields {
        let Value::Struct(f) = f else { continue };
        let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.first(), f.get(1)) else {
            return malformed("a header field");
        };
        let text = || v.as_str().map(str::to_owned);
        match *code {
            FIELD_INTERFACE => m.interface = text(),
            FIELD_MEMBER => m.member = text(),
            FIELD_ERROR_NAME => m.error_name = text(),
            FIELD_REPLY_SERIAL => m.reply_serial = v.as_u32(),
            FIELD_SIGNATURE => signature = text().unwrap_or_default(),
            FIELD_PATH | FIELD_DESTINATION | FIELD_SENDER => {}
            _ => {}
        }
    }
    let mut body = Decoder {
        buf: &buf[d.pos..],
        pos: 0,
    };
    m.body = body.values(&signature, 0)?;
    if body.pos != body.buf.len() {
        return malformed("bytes past its body's signature");
    }
    Ok(m)
}

// ------------------------------------------------------------------ the connection

/// The SASL EXTERNAL exchange: the uid, as decimal text, hex-encoded.
fn auth_line(uid: u32) -> String {
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("AUTH EXTERNAL {hex}\r\n")
}

pub struct Conn {
    sock: UnixStream,
    serial: u32,
    /// Signals read while waiting for a reply, kept for [`Conn::wait_signal`].
    pending: Vec<Message>,
    deadline: Instant,
    limit_s: u64,
}

impl Conn {
    /// Connects and authenticates; `bus`: a message bus (dbus-daemon) rather than systemd's
    /// private socket, which wants `Hello` first. Every read and write from here on is bounded
    /// by `deadline`.
    pub fn open(path: &Path, bus: bool, deadline: Instant) -> Result<Conn> {
        let limit_s = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let sock = UnixStream::connect(path)
            .map_err(|e| DbusError::Io(format!("connecting to {}: {e}", path.display())))?;
        let mut c = Conn {
            sock,
            serial: 0,
            pending: vec![],
            deadline,
            limit_s,
        };
        c.set_timeout()?;
        let uid = nix::unistd::geteuid().as_raw();
        c.send(format!("\0{}", auth_line(uid)).as_bytes())?;
        let answer = c.read_line()?;
        if !answer.starts_with("OK ") {
            return Err(DbusError::Auth(answer.trim_end().to_owned()));
        }
        c.send(b"BEGIN\r\n")?;
        if bus {
            c.call(&Call {
                destination: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus",
                member: "Hello",
                args: vec![],
            })?;
        }
        Ok(c)
    }

    fn set_timeout(&self) -> Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DbusError::Timeout(self.limit_s));
        }
        self.sock
            .set_read_timeout(Some(left))
            .and_then(|()| self.sock.set_write_timeout(Some(left)))
            .map_err(|e| DbusError::Io(e.to_string()))
    }

    fn io_error(&self, e: std::io::Error) -> DbusError {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                DbusError::Timeout(self.limit_s)
            }
            _ => DbusError::Io(e.to_string()),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.set_timeout()?;
        self.sock.write_all(bytes).map_err(|e| self.io_error(e))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.set_timeout()?;
        self.sock.read_exact(buf).map_err(|e| self.io_error(e))
    }

    /// One line of the authentication exchange, read a byte at a time: whatever follows it
    /// is the binary protocol, which must stay in the socket.
    fn read_line(&mut self) -> Result<String> {
        let mut line = vec![];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(DbusError::Auth("an over-long answer".into()));
            }
            let mut b = [0u8];
            self.read_exact(&mut b)?;
            line.push(b[0]);
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn receive(&mut self) -> Result<Message> {
        let mut head = [0u8; 16];
        self.read_exact(&mut head)?;
        let mut buf = vec![0u8; message_len(&head)?];
        buf[..16].copy_from_slice(&head);
        self.read_exact(&mut buf[16..])?;
        decode_message(&buf)
    }

    /// Sends `call` and returns its reply's body; an error reply is [`DbusError::Reply`].
    pub fn call(&mut self, call: &Call) -> Result<Vec<Value>> {
        self.serial += 1;
        let serial = self.serial;
        self.send(&encode_call(call, serial))?;
        loop {
            let m = self.receive()?;
            match m.kind {
                METHOD_RETURN | ERROR if m.reply_serial == Some(serial) => {
                    if m.kind == METHOD_RETURN {
                        return Ok(m.body);
                    }
                    return Err(DbusError::Reply {
                        name: m.error_name.unwrap_or_default(),
                        message: m
                            .body
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
                SIGNAL => self.pending.push(m),
                _ => {}
            }
        }
    }

    /// The body of the first signal `interface.member` for which `wanted` holds, received
    /// already or from now until the deadline.
    pub fn wait_signal(
        &mut self,
        interface: &str,
        member: &str,
        wanted: impl Fn(&[Value]) -> bool,
    ) -> Result<Vec<Value>> {
        let matches = |m: &Message| m.is_signal(interface, member) && wanted(&m.body);
        if let Some(at) = self.pending.iter().position(matches) {
            return Ok(self.pending.remove(at).body);
        }
        loop {
            let m = self.receive()?;
            if matches(&m) {
                return Ok(m.body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn manager_call(member: &str, args: Vec<Value>) -> Call<'static> {
        let member: &'static str = Box::leak(member.to_owned().into_boxed_str());
        Call {
            destination: "org.freedesktop.systemd1",
            path: "/org/freedesktop/systemd1",
            interface: "org.freedesktop.systemd1.Manager",
            member,
            args,
        }
    }

    fn prop(name: &str, v: Value) -> Value {
        Value::Struct(vec![Value::str(name), Value::variant(v)])
    }

    #[test]
    fn complete_types_are_measured() {
        assert_eq!(complete_type("sa(sv)").unwrap(), 1);
        assert_eq!(complete_type("a(sv)a(sa(sv))").unwrap(), 5);
        assert_eq!(complete_type("a(sa(sv))").unwrap(), 9);
        assert_eq!(complete_type("a{sv}").unwrap(), 5);
        assert!(complete_type("(s").is_err());
        assert!(complete_type("()").is_err());
        assert!(complete_type("a").is_err());
        assert!(complete_type("z").is_err());
    }

    #[test]
    fn values_sign_themselves() {
        let v = Value::Array(
            "(sv)".into(),
            vec![prop("PIDs", Value::Array("u".into(), vec![Value::U32(1)]))],
        );
        assert_eq!(v.signature(), "a(sv)");
        assert_eq!(
            Value::Array("(sa(sv))".into(), vec![]).signature(),
            "a(sa(sv))"
        );
        assert_eq!(Value::variant(Value::U64(1)).signature(), "v");
    }

    #[test]
    fn auth_sends_the_uid_as_hex_text() {
        assert_eq!(auth_line(0), "AUTH EXTERNAL 30\r\n");
        assert_eq!(auth_line(1000), "AUTH EXTERNAL 31303030\r\n");
    }

    // The expected bytes are dbus-next's (Python) encodings of the same messages.
    const HELLO: &str = concat!(
        "6c01000100000000010000006d00000001016f00150000002f6f72672f667265656465736b746f702f44427573000000",
        "02017300140000006f72672e667265656465736b746f702e4442757300000000030173000500000048656c6c6f000000",
        "06017300140000006f72672e667265656465736b746f702e4442757300000000",
    );
    const START: &str = concat!(
        "6c0100012801000007000000b600000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
        "310000000000000002017300200000006f72672e667265656465736b746f702e73797374656d64312e4d616e61676572",
        "0000000000000000030173001200000053746172745472616e7369656e74556e69740000000000000601730018000000",
        "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700107373612873762961287361",
        "28737629290000000d0000006b696c6e2d63312e73636f7065000000070000007265706c61636500f800000000000000",
        "0b0000004465736372697074696f6e0001730000190000006c6962636f6e7461696e657220636f6e7461696e65722063",
        "31000000000000000400000050494473000261750000000004000000921000000800000044656c656761746500016200",
        "0100000000000000090000004d656d6f72794d6178000174000000000000000000000040000000000b000000416c6c6f",
        "7765644350557300026179000100000005000000000000000b000000446576696365416c6c6f77000561287373290000",
        "3000000000000000090000002f6465762f6e756c6c0000000300000072776d0008000000636861722d70747300000000",
        "0300000072776d000000000000000000",
    );
    const SET: &str = concat!(
        "6c0100013800000003000000ad00000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
        "310000000000000002017300200000006f72672e667265656465736b746f702e73797374656d64312e4d616e61676572",
        "00000000000000000301730011000000536574556e697450726f70657274696573000000000000000601730018000000",
        "6f72672e667265656465736b746f702e73797374656d6431000000000000000008016700077362612873762900000000",
        "0d0000006b696c6e2d63312e73636f7065000000010000001800000000000000080000005461736b734d617800017400",
        "6400000000000000",
    );
    const REPLY: &str = concat!(
        "6c02000127000000630000001f000000050175000700000006017300040000003a312e350000000008016700016f0000",
        "220000002f6f72672f667265656465736b746f702f73797374656d64312f6a6f622f3132333400",
    );
    const ERROR_REPLY: &str = concat!(
        "6c03000127000000640000003f00000004017300230000006f72672e667265656465736b746f702e73797374656d6431",
        "2e556e697445786973747300000000000501750007000000080167000173000022000000556e6974206b696c6e2d6331",
        "2e73636f706520616c7265616479206578697374732e00",
    );
    const JOB_REMOVED: &str = concat!(
        "6c04000149000000650000007a00000001016f00190000002f6f72672f667265656465736b746f702f73797374656d64",
        "310000000000000002017300200000006f72672e667265656465736b746f702e73797374656d64312e4d616e61676572",
        "0000000000000000030173000a0000004a6f6252656d6f7665640000000000000801670004756f737300000000000000",
        "d2040000220000002f6f72672f667265656465736b746f702f73797374656d64312f6a6f622f3132333400000d000000",
        "6b696c6e2d63312e73636f706500000004000000646f6e6500",
    );

    #[test]
    fn hello_is_encoded_byte_for_byte() {
        let call = Call {
            destination: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "Hello",
            args: vec![],
        };
        assert_eq!(encode_call(&call, 1), hex(HELLO));
    }

    #[test]
    fn start_transient_unit_is_encoded_byte_for_byte() {
        let props = vec![
            prop("Description", Value::str("libcontainer container c1")),
            prop("PIDs", Value::Array("u".into(), vec![Value::U32(4242)])),
            prop("Delegate", Value::Bool(true)),
            prop("MemoryMax", Value::U64(1 << 30)),
            prop(
                "AllowedCPUs",
                Value::Array("y".into(), vec![Value::Byte(5)]),
            ),
            prop(
                "DeviceAllow",
                Value::Array(
                    "(ss)".into(),
                    vec![
                        Value::Struct(vec![Value::str("/dev/null"), Value::str("rwm")]),
                        Value::Struct(vec![Value::str("char-pts"), Value::str("rwm")]),
                    ],
                ),
            ),
        ];
        let call = manager_call(
            "StartTransientUnit",
            vec![
                Value::str("kiln-c1.scope"),
                Value::str("replace"),
                Value::Array("(sv)".into(), props),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        );
        assert_eq!(encode_call(&call, 7), hex(START));
    }

    #[test]
    fn set_unit_properties_is_encoded_byte_for_byte() {
        let call = manager_call(
            "SetUnitProperties",
            vec![
                Value::str("kiln-c1.scope"),
                Value::Bool(true),
                Value::Array("(sv)".into(), vec![prop("TasksMax", Value::U64(100))]),
            ],
        );
        assert_eq!(encode_call(&call, 3), hex(SET));
    }

    #[test]
    fn a_reply_is_decoded() {
        let m = decode_message(&hex(REPLY)).unwrap();
        assert_eq!(
            (m.kind, m.serial, m.reply_serial),
            (METHOD_RETURN, 99, Some(7))
        );
        assert_eq!(
            m.body,
            vec![Value::Path("/org/freedesktop/systemd1/job/1234".into())]
        );
    }

    #[test]
    fn an_error_is_decoded_with_its_name_and_message() {
        let m = decode_message(&hex(ERROR_REPLY)).unwrap();
        assert_eq!(m.kind, ERROR);
        assert_eq!(
            m.error_name.as_deref(),
            Some("org.freedesktop.systemd1.UnitExists")
        );
        assert_eq!(
            m.body,
            vec![Value::str("Unit kiln-c1.scope already exists.")]
        );
    }

    #[test]
    fn job_removed_is_decoded() {
        let m = decode_message(&hex(JOB_REMOVED)).unwrap();
        assert!(m.is_signal("org.freedesktop.systemd1.Manager", "JobRemoved"));
        assert_eq!(
            m.body,
            vec![
                Value::U32(1234),
                Value::Path("/org/freedesktop/systemd1/job/1234".into()),
                Value::str("kiln-c1.scope"),
                Value::str("done"),
            ]
        );
    }

    #[test]
    fn what_kiln_encodes_decodes_to_the_same_values() {
        let args = vec![
            Value::str("u"),
            Value::Array(
                "(sv)".into(),
                vec![
                    prop("A", Value::I64(-3)),
                    prop("B", Value::F64(1.5)),
                    prop("C", Value::Array("y".into(), vec![])),
                    prop("D", Value::I32(-1)),
                ],
            ),
        ];
        let mut bytes = encode_call(&manager_call("X", args.clone()), 5);
        bytes[1] = SIGNAL;
        let m = decode_message(&bytes).unwrap();
        assert_eq!((m.serial, m.body), (5, args));
    }

    #[test]
    fn truncated_or_corrupt_messages_are_refused_not_panicked_on() {
        let good = hex(JOB_REMOVED);
        for n in 0..good.len() {
            assert!(decode_message(&good[..n]).is_err(), "{n} bytes");
        }
        let mut big = good.clone();
        big[0] = b'B';
        assert!(
            decode_message(&big)
                .unwrap_err()
                .to_string()
                .contains("byte order")
        );
        // Every single-byte corruption is decoded or refused, never a panic.
        for at in 0..good.len() {
            for byte in [0u8, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[at] = byte;
                let _ = decode_message(&bad);
            }
        }
    }

    #[test]
    fn booleans_must_be_zero_or_one() {
        let mut d = Decoder {
            buf: &[2, 0, 0, 0],
            pos: 0,
        };
        assert!(d.value("b", 0).is_err());
    }
}
