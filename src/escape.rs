//! Text from the input, made safe to print: control and bidirectional characters escaped.
//!
//! Device names, guids and file names come from whoever writes the input. Printed raw, a name
//! holding `\n` forges report lines, and ANSI escapes, `\r`, NUL or a right-to-left override
//! rewrite what the terminal shows. Everything hygroflow prints as text (the text report and
//! every log line on stderr) goes through [`escape`]: control characters (C0, DEL, C1) and the
//! Unicode bidirectional controls become visible escapes in Rust's style (`\n`, `\r`, `\t`,
//! `\u{1b}`, `\u{202e}`), and a backslash becomes `\\`, so the escaped text reads back
//! unambiguously. JSON output escapes in its own way (serde_json) and does not come here.
//!
//! [`LogFields`] is the field formatter of the stderr log: tracing-subscriber's own writes
//! field values raw and escapes only a few characters of the message, so every field, `%`
//! Display values included, is escaped here.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// Whether `c` is printed as an escape: a backslash, a control character, a bidirectional
/// control, or a line or paragraph separator (which break lines in some viewers).
fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\\'
            | '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    ) || c.is_control()
}

/// Writes `text` to `out` with every character [`needs_escape`] names escaped.
fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let mut plain = 0;
    for (at, c) in text.char_indices() {
        if !needs_escape(c) {
            continue;
        }
        out.write_str(&text[plain..at])?;
        plain = at + c.len_utf8();
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => write!(out, "\\u{{{:x}}}", u32::from(c))?,
        }
    }
    out.write_str(&text[plain..])
}

/// `text` with control and bidirectional characters escaped (borrowed when none is there).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    // Writing to a String cannot fail.
    let _ = write_escaped(&mut escaped, text);
    Cow::Owned(escaped)
}

/// Displays a string escaped as [`escape`] does, without allocating: `format!("{}", Escaped(s))`.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

/// A writer that escapes whatever is formatted through it.
struct Escaping<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

/// The stderr log's field formatter: the message, then ` name=value` per field, as
/// tracing-subscriber prints them, with every value escaped (`.fmt_fields(LogFields)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogFields;

impl<'writer> FormatFields<'writer> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // The `log` crate's metadata, already shown by the event formatter.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let mut result = if self.empty {
            Ok(())
        } else {
            self.writer.write_char(' ')
        };
        self.empty = false;
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            result = result.and_then(|()| write!(self.writer, "{name}="));
        }
        self.result = result.and_then(|()| Escaping(&mut self.writer).write_fmt(value));
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in [
            "MRI12",
            "",
            "PET CT 7 (east wing)",
            "Größe 50%",
            "日本語",
            "😀",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }

    #[test]
    fn control_characters_are_escaped_visibly() {
        assert_eq!(
            escape("MRI1\n(FAKE, 99.99)\n\nTotal number of messages: 999999"),
            r"MRI1\n(FAKE, 99.99)\n\nTotal number of messages: 999999"
        );
        assert_eq!(escape("a\rb\tc\0d"), r"a\rb\tc\u{0}d");
        assert_eq!(
            escape("\u{1b}[2J\u{1b}]0;pwned\u{7}"),
            r"\u{1b}[2J\u{1b}]0;pwned\u{7}"
        );
        assert_eq!(
            escape("\u{7f}\u{80}\u{9b}\u{9f}"),
            r"\u{7f}\u{80}\u{9b}\u{9f}"
        );
    }

    #[test]
    fn bidirectional_controls_and_line_separators_are_escaped() {
        for (c, shown) in [
            ('\u{061c}', r"\u{61c}"),
            ('\u{200e}', r"\u{200e}"),
            ('\u{200f}', r"\u{200f}"),
            ('\u{2028}', r"\u{2028}"),
            ('\u{2029}', r"\u{2029}"),
            ('\u{202a}', r"\u{202a}"),
            ('\u{202e}', r"\u{202e}"),
            ('\u{2066}', r"\u{2066}"),
            ('\u{2069}', r"\u{2069}"),
        ] {
            assert_eq!(escape(&format!("x{c}y")), format!("x{shown}y"));
        }
        // Neighbours that are not controls stay as they are.
        for c in [
            '\u{2027}', '\u{202f}', '\u{2065}', '\u{206a}', '\u{a0}', '\u{ff}',
        ] {
            let text = c.to_string();
            assert_eq!(escape(&text), text);
        }
    }

    #[test]
    fn a_backslash_is_escaped_so_the_escaping_is_unambiguous() {
        // A literal backslash-n and a newline print differently.
        assert_eq!(escape(r"a\nb"), r"a\\nb");
        assert_eq!(escape("a\nb"), r"a\nb");
        assert_eq!(escape(r"\u{1b}"), r"\\u{1b}");
    }

    #[test]
    fn escaped_displays_as_escape_returns() {
        let text = "é\u{1b}[31mred\u{202e}txt\\";
        assert_eq!(Escaped(text).to_string(), escape(text));
    }

    #[test]
    fn log_fields_escape_the_message_and_every_value() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(LogFields)
            .finish();
        let device = "MRI1\n\u{1b}[2J\u{202e}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                source = %device,
                origin = ?device,
                line = 3,
                text = device,
                "rejected: {device}"
            );
        });
        let out = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(
            out,
            concat!(
                r" WARN hygroflow::escape::tests: rejected: MRI1\n\u{1b}[2J\u{202e} ",
                r"source=MRI1\n\u{1b}[2J\u{202e} ",
                r#"origin="MRI1\\n\\u{1b}[2J\\u{202e}" "#,
                r"line=3 text=MRI1\n\u{1b}[2J\u{202e}",
                "\n"
            )
        );
    }
}
