//! Text from outside, made fit for a log line: control characters escaped (a `%0A` in a
//! request cannot start a forged line of its own) and the length capped.

use std::fmt::{self, Write as _};

/// Characters shown at most (Telegram's charge ids exceed 128); the rest is cut off with `…`.
const SHOWN: usize = 256;

/// Displays `self.0` escaped and capped; log client text only through this.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, c) in self.0.chars().enumerate() {
            if shown == SHOWN {
                return f.write_char('…');
            }
            if needs_escape(c) {
                for escaped in c.escape_default() {
                    f.write_char(escaped)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Control characters, the backslash (so that an escape cannot be faked), and what some log
/// viewers still render as a line break or use to reorder text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::Untrusted;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        let forged = "key\n2026-12-01T00:00:00Z INFO payment credited\r\x1b[31m\\";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains(['\n', '\r', '\x1b']), "{shown}");
        assert_eq!(
            shown,
            "key\\n2026-12-01T00:00:00Z INFO payment credited\\r\\u{1b}[31m\\\\"
        );
        assert_eq!(Untrusted("Борис").to_string(), "Борис");
        assert_eq!(
            Untrusted("a\u{2028}b\u{202e}c").to_string(),
            "a\\u{2028}b\\u{202e}c"
        );
        let long = "x".repeat(1_000);
        let shown = Untrusted(&long).to_string();
        assert_eq!(shown.chars().count(), 257);
        assert!(shown.ends_with('…'));
    }
}
