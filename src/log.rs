//! The log target of `--log` / `--log-format`, written as runc's logrus writes it: containerd's
//! shim and conmon read the last error from a JSON log file
//! (`{"level":"error","msg":"...","time":"..."}`), and scripts grep runc's text lines on stderr
//! (`time="..." level=error msg="..."`), so both are logrus's formats byte for byte.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }

    /// logrus's colour on a terminal: gray, yellow, red.
    fn colour(self) -> u8 {
        match self {
            Level::Debug => 37,
            Level::Warn => 33,
            Level::Error => 31,
        }
    }
}

struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
    /// logrus's base timestamp: a terminal line shows the seconds since then.
    start: Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Opens the log target once, at start-up. A log file that cannot be opened is an error, as in
/// runc: a client reading that file for the command's error would otherwise find nothing there.
/// The error itself is then logged on stderr.
pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) -> Result<(), String> {
    let opened = path
        .map(|p| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("--log: cannot open {}: {e}", crate::error::quote(p)))
        })
        .transpose();
    let (file, result) = match opened {
        Ok(file) => (file, Ok(())),
        Err(e) => (None, Err(e)),
    };
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
        start: Instant::now(),
    });
    result
}

pub fn error(msg: &str) {
    write(Level::Error, msg);
}

pub fn warn(msg: &str) {
    write(Level::Warn, msg);
}

pub fn debug(msg: impl FnOnce() -> String) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        write(Level::Debug, &msg());
    }
}

fn write(level: Level, msg: &str) {
    // Whatever a message quotes (a value from the config, another crate's text), the line stays
    // one line, short, and free of terminal escapes, in every format and on stderr.
    let msg = &crate::error::one_line(msg).to_string();
    let logger = LOGGER.get_or_init(|| Logger {
        file: None,
        format: Format::Text,
        debug: false,
        start: Instant::now(),
    });
    let now = SystemTime::now();
    match &logger.file {
        Some(f) => {
            let line = match logger.format {
                Format::Json => json_line(level, msg, now),
                Format::Text => text_line(level, msg, now),
            };
            let _ = (&*f).write_all(line.as_bytes());
            // runc also prints a fatal error alone on stderr, for an operator running it by hand.
            if level == Level::Error {
                eprintln!("{msg}");
            }
        }
        None => {
            let line = match logger.format {
                Format::Json => json_line(level, msg, now),
                Format::Text if std::io::stderr().is_terminal() => {
                    terminal_line(level, msg, logger.start.elapsed().as_secs())
                }
                Format::Text => text_line(level, msg, now),
            };
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

fn json_line(level: Level, msg: &str, now: SystemTime) -> String {
    format!(
        "{{\"level\":\"{}\",\"msg\":{},\"time\":\"{}\"}}\n",
        level.name(),
        serde_json::Value::from(msg),
        crate::timefmt::rfc3339(now)
    )
}

/// logrus's TextFormatter off a terminal: `time="..." level=error msg="..."`, each value quoted
/// only when it needs to be, and no `msg` key for an empty message.
fn text_line(level: Level, msg: &str, now: SystemTime) -> String {
    let mut line = format!(
        "time={} level={}",
        text_value(&crate::timefmt::rfc3339(now)),
        level.name()
    );
    if !msg.is_empty() {
        line.push_str(" msg=");
        line.push_str(&text_value(msg));
    }
    line.push('\n');
    line
}

/// logrus's TextFormatter on a terminal: coloured level, seconds since start, the message padded
/// to 44 characters.
fn terminal_line(level: Level, msg: &str, secs: u64) -> String {
    let tag = &level.name()[..4].to_ascii_uppercase();
    format!(
        "\x1b[{}m{tag}\x1b[0m[{secs:04}] {:<44} \n",
        level.colour(),
        msg.strip_suffix('\n').unwrap_or(msg)
    )
}

/// A value as logrus's TextFormatter writes it: bare when made only of letters, digits and
/// `-._/@^+`, otherwise quoted by Go's `%q`.
fn text_value(s: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "-._/@^+".contains(c);
    if s.chars().all(bare) {
        s.to_owned()
    } else {
        crate::error::go_quote(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::go_quote;

    #[test]
    fn json_line_is_logrus_shaped() {
        let line = json_line(Level::Error, "bad \"x\"\n", SystemTime::UNIX_EPOCH);
        assert_eq!(
            line,
            "{\"level\":\"error\",\"msg\":\"bad \\\"x\\\"\\n\",\"time\":\"1970-01-01T00:00:00Z\"}\n"
        );
    }

    #[test]
    fn text_line_is_logrus_shaped() {
        let t = SystemTime::UNIX_EPOCH;
        assert_eq!(
            text_line(Level::Error, "container \"x\" does not exist", t),
            "time=\"1970-01-01T00:00:00Z\" level=error msg=\"container \\\"x\\\" does not exist\"\n"
        );
        assert_eq!(
            text_line(Level::Warn, "plain/word-1.0", t),
            "time=\"1970-01-01T00:00:00Z\" level=warning msg=plain/word-1.0\n"
        );
        assert_eq!(
            text_line(Level::Debug, "", t),
            "time=\"1970-01-01T00:00:00Z\" level=debug\n"
        );
    }

    #[test]
    fn values_are_quoted_as_go_does() {
        assert_eq!(go_quote("tab\there\x01\x7f\\"), r#""tab\there\x01\x7f\\""#);
        assert_eq!(go_quote("naïve ✓ 日本"), "\"naïve ✓ 日本\"");
        assert_eq!(
            go_quote("nbsp\u{a0}zw\u{200b}bom\u{feff}"),
            r#""nbsp\u00a0zw\u200bbom\ufeff""#
        );
        assert_eq!(go_quote("\u{10ffff}"), r#""\U0010ffff""#);
        assert_eq!(text_value("a b"), "\"a b\"");
        assert_eq!(text_value(""), "");
    }

    #[test]
    fn terminal_line_is_logrus_shaped() {
        let line = terminal_line(Level::Error, "boom\n", 3);
        assert_eq!(line, format!("\x1b[31mERRO\x1b[0m[0003] {:<44} \n", "boom"));
        assert!(terminal_line(Level::Warn, "w", 0).starts_with("\x1b[33mWARN\x1b[0m[0000] w "));
    }
}
