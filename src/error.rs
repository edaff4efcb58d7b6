//! kiln's typed errors. Every error names what it is about: the container, the path, the spec
//! field. The CLI prints `Display` as one line, so no variant may contain a newline, and a value
//! from the user goes in through [`quote`]: a config, a command line or a file name can hold a
//! newline, a terminal escape or a megabyte.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json could not be read, parsed or validated; `field` is the JSON path
    /// (`process.user.uid`), or empty for a syntax error.
    #[error("{}: {}{msg}", .file.display(), field_prefix(.field))]
    Config {
        file: PathBuf,
        field: String,
        msg: String,
    },

    #[error("container {} does not exist", quote(.id))]
    NotFound { id: String },

    /// A file or directory of a container's state that kiln cannot use: missing, not what
    /// kiln wrote there (a symlink, a FIFO, a directory), too large, or not valid state.
    #[error(
        "{}: {why} (the state of container {} is damaged: `delete --force {id}` removes the container)",
        .path.display(),
        quote(.id)
    )]
    BadState {
        id: String,
        path: PathBuf,
        why: String,
    },

    #[error("container {} already exists", quote(.id))]
    Exists { id: String },

    #[error("invalid container id {}: {why}", quote(.id))]
    InvalidId { id: String, why: &'static str },

    /// An operation that the container's current status forbids.
    #[error("container {} is {status}: {why}", quote(.id))]
    WrongState {
        id: String,
        status: String,
        why: String,
    },

    /// A bad command-line argument (a signal name, a flag value).
    #[error("{0}")]
    Usage(String),

    /// A system call or file operation failed; `what` says what kiln was doing and on what.
    #[error("{what}: {err}")]
    Os { what: String, err: std::io::Error },

    /// A step kiln refuses, or finds it cannot take, with no system call's errno behind it
    /// (a mount the spec cannot have, a kernel limit reached, a helper's answer); `what` as
    /// in `Os`.
    #[error("{what}: {why}")]
    Refused { what: String, why: String },

    /// The container's init reported a failure during setup.
    #[error("container {}: {msg}", quote(.id))]
    Init { id: String, msg: String },

    /// A cgroup could not be made, joined or written; `field` is the spec field or cgroup file
    /// it is about (`linux.resources.memory.limit`).
    #[error("{field}: {msg}")]
    Cgroup { field: String, msg: String },

    /// criu failed or cannot run; `op` is what kiln asked of it (`dump`, `restore`), `msg`
    /// the reason criu gave (its log's errors) and where its log is.
    #[error("criu {op}: {msg}")]
    Criu { op: &'static str, msg: String },

    #[error("{stage} hook {path}: {msg}")]
    Hook {
        stage: &'static str,
        path: PathBuf,
        msg: String,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn os(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Os {
            what: what.into(),
            err: source.into(),
        }
    }

    pub fn refused(what: impl Into<String>, why: impl fmt::Display) -> Self {
        Error::Refused {
            what: what.into(),
            why: why.to_string(),
        }
    }

    pub fn config(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Config {
            file: file.into(),
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// Attaches "what was being done" to io and nix errors, so that no error reaches the user as a
/// bare "No such file or directory".
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::os(what(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::os(what(), std::io::Error::from(e)))
    }
}

/// How many bytes of one value an error shows: enough to recognise it, never a screenful.
const VALUE_MAX: usize = 100;

/// How many bytes of one error line reach stderr or the log: a parser's message that quotes a
/// whole value (serde's `invalid type: string "..."`) is cut to this.
const LINE_MAX: usize = 512;

/// Text from outside kiln (a config, a command line, a file name, another crate's message) as an
/// error shows it: on one line and short. Every character that is not printable is escaped as
/// Go's `%q` escapes it (`\n`, `\t`, `\x1b`, `\x00`, `\u200b`), an invalid UTF-8 byte as `\xNN`,
/// the rest of UTF-8 left readable; a text longer than its budget shows its start, then
/// `…(N bytes)` with the length of the whole, then (for a line) its end.
pub struct Shown<'a> {
    text: &'a [u8],
    /// Bytes of escaped output, the marker included.
    max: usize,
    /// Of `max`, the bytes kept for the text's end when it is cut.
    tail: usize,
    quoted: bool,
}

/// A value in double quotes, `"` and `\` escaped too: at most [`VALUE_MAX`] bytes of it.
pub fn quote<S: AsRef<OsStr> + ?Sized>(value: &S) -> Shown<'_> {
    Shown {
        text: value.as_ref().as_bytes(),
        max: VALUE_MAX,
        tail: 0,
        quoted: true,
    }
}

/// A value without quotes, where quotes would not belong (a map key in a field path).
pub fn bare<S: AsRef<OsStr> + ?Sized>(value: &S) -> Shown<'_> {
    Shown {
        quoted: false,
        ..quote(value)
    }
}

/// A whole error line: the last guard on the way to stderr and the log, for the parts of a
/// message that kiln did not quote itself.
pub fn one_line(msg: &str) -> Shown<'_> {
    Shown {
        text: msg.as_bytes(),
        max: LINE_MAX,
        tail: LINE_MAX / 4,
        quoted: false,
    }
}

/// The same for a message that another will carry (init's error, which the parent prefixes
/// with the container): short enough for the whole line not to be cut twice.
pub fn part_of_line(msg: &str) -> Shown<'_> {
    let max = LINE_MAX - (VALUE_MAX + 28);
    Shown {
        max,
        tail: max / 4,
        ..one_line(msg)
    }
}

/// Go's strconv.Quote, with no length limit (logrus's text format quotes every value so).
pub fn go_quote(s: &str) -> String {
    Shown {
        text: s.as_bytes(),
        max: usize::MAX,
        tail: 0,
        quoted: true,
    }
    .to_string()
}

impl Shown<'_> {
    /// The escaped pieces of `bytes`, one per character or invalid byte.
    fn pieces<'b>(&self, bytes: &'b [u8]) -> impl Iterator<Item = String> + 'b {
        let quoted = self.quoted;
        bytes.utf8_chunks().flat_map(move |chunk| {
            let chars = chunk.valid().chars().map(move |c| escape(c, quoted));
            let bytes = chunk.invalid().iter().map(|b| format!("\\x{b:02x}"));
            chars.chain(bytes)
        })
    }
}

fn escape(c: char, quoted: bool) -> String {
    match c {
        '"' | '\\' if quoted => format!("\\{c}"),
        '\x07' => "\\a".into(),
        '\x08' => "\\b".into(),
        '\x0c' => "\\f".into(),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        '\x0b' => "\\v".into(),
        c if c < ' ' || c == '\x7f' => format!("\\x{:02x}", c as u32),
        c if printable(c) => c.into(),
        c if (c as u32) < 0x10000 => format!("\\u{:04x}", c as u32),
        c => format!("\\U{:08x}", c as u32),
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = if self.quoted { "\"" } else { "" };
        let mut marker = format!("…({} bytes)", self.text.len());
        if self.tail > 0 {
            marker.push('…');
        }
        // Where the start ends if the text must be cut: the marker and the end's share come
        // out of its budget. Pieces are kept whole, so no escape is ever cut in two.
        let start_max = self.max.saturating_sub(marker.len() + self.tail);
        let mut shown = String::new();
        let mut start_len = None;
        for piece in self.pieces(self.text) {
            if start_len.is_none() && shown.len() + piece.len() > start_max {
                start_len = Some(shown.len());
            }
            if shown.len() + piece.len() > self.max {
                let start = &shown[..start_len.unwrap_or(shown.len())];
                write!(f, "{quote}{start}{quote}{marker}")?;
                return self.write_end(f);
            }
            shown.push_str(&piece);
        }
        write!(f, "{quote}{shown}{quote}")
    }
}

impl Shown<'_> {
    /// The last `tail` bytes of escaped text, from a character's start.
    fn write_end(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tail == 0 {
            return Ok(());
        }
        let mut from = self.text.len().saturating_sub(self.tail);
        while from < self.text.len() && self.text[from] & 0xc0 == 0x80 {
            from += 1;
        }
        let pieces: Vec<String> = self.pieces(&self.text[from..]).collect();
        let mut len: usize = pieces.iter().map(String::len).sum();
        let mut first = 0;
        while len > self.tail {
            len -= pieces[first].len();
            first += 1;
        }
        pieces[first..].iter().try_for_each(|p| f.write_str(p))
    }
}

/// Whether Go prints a character as itself: approximated by Rust's control, whitespace, format
/// and private-use characters, as Rust has no Unicode categories.
fn printable(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    let format_chars = matches!(c as u32, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb | 0xe0000..=0xe007f);
    let private_or_noncharacter =
        matches!(c as u32, 0xe000..=0xf8ff | 0xf0000..=0x10ffff) || (c as u32 & 0xfffe) == 0xfffe;
    !c.is_control() && !c.is_whitespace() && !format_chars && !private_or_noncharacter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_escaped_on_one_line() {
        assert_eq!(
            quote("a\nb\t\x1b[31m\0\"\\").to_string(),
            r#""a\nb\t\x1b[31m\x00\"\\""#
        );
        assert_eq!(quote("naïve ✓ 日本").to_string(), "\"naïve ✓ 日本\"");
        assert_eq!(quote("zw\u{200b}").to_string(), r#""zw\u200b""#);
        assert_eq!(
            quote(OsStr::from_bytes(b"bad\xffutf8")).to_string(),
            r#""bad\xffutf8""#
        );
        assert_eq!(bare("k\ney\"").to_string(), r#"k\ney""#);
    }

    #[test]
    fn a_long_value_shows_its_start_and_its_length() {
        let long = "a".repeat(1 << 20);
        let shown = quote(&long).to_string();
        assert!(shown.len() <= VALUE_MAX + 2, "{shown}");
        assert!(shown.starts_with("\"aaaa"), "{shown}");
        assert!(shown.ends_with("\"…(1048576 bytes)"), "{shown}");
        let exact = "b".repeat(VALUE_MAX);
        assert_eq!(quote(&exact).to_string(), format!("\"{exact}\""));
    }

    #[test]
    fn a_cut_never_splits_an_escape_or_a_character() {
        for text in [
            "\x1b".repeat(200),
            "日".repeat(200),
            "\u{10ffff}".repeat(50),
        ] {
            let shown = quote(&text).to_string();
            let start = shown.trim_start_matches('"').split('"').next().unwrap();
            assert!(!start.is_empty(), "{shown}");
            for esc in start.split('\\').skip(1) {
                assert!(matches!(esc.len(), 3 | 5 | 9), "{shown}");
            }
            assert!(shown.contains("bytes)"), "{shown}");
        }
    }

    #[test]
    fn a_long_line_keeps_its_start_and_end() {
        let msg = format!(
            "config.json: process.user.uid: invalid type: string \"{}\", expected u32",
            "x\ny".repeat(100_000)
        );
        let line = one_line(&msg).to_string();
        assert!(line.len() <= LINE_MAX, "{} bytes", line.len());
        assert!(!line.contains('\n'));
        assert!(line.starts_with("config.json: process.user.uid: invalid type"));
        assert!(line.ends_with("\", expected u32"), "{line}");
        assert!(line.contains(&format!("…({} bytes)…", msg.len())), "{line}");
        assert_eq!(one_line("short \"quoted\"").to_string(), "short \"quoted\"");
    }

    #[test]
    fn a_part_of_a_line_is_not_cut_again() {
        let part = part_of_line(&"k".repeat(1 << 20)).to_string();
        let line = Error::Init {
            id: "i".repeat(200),
            msg: part,
        }
        .to_string();
        assert_eq!(one_line(&line).to_string(), line);
        assert!(line.contains("…(1048576 bytes)…"), "{line}");
    }
}
