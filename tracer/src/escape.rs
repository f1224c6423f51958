//! Escaping of untrusted strings before they reach a terminal, a log or a text report.
//!
//! Process names, executable paths, cgroup paths and namespace names are chosen by whoever
//! runs the traced program, so they may contain terminal escape sequences (colour changes,
//! window-title rewrites, cursor movement), line breaks that forge extra report lines,
//! bidirectional overrides that visually reorder text, or bytes that are not UTF-8 at all.
//!
//! Rules applied by [`escape_str`] and [`escape_bytes`]:
//!
//! * printable UTF-8 (including non-Latin scripts and emoji) passes through unchanged;
//! * `\` becomes `\\`, so every escape in the output is unambiguous;
//! * `\n`, `\t`, `\r` and ESC (`\e`) use their short forms, which neutralises ANSI sequences;
//! * other C0 controls and DEL become `\xNN` (`\x00` … `\x1f`, `\x7f`);
//! * C1 controls (U+0080 … U+009F, including the single-character CSI U+009B), bidirectional
//!   formatting characters (U+061C, U+200E, U+200F, U+202A … U+202E, U+2066 … U+2069), the
//!   line and paragraph separators U+2028/U+2029 and the BOM U+FEFF become `\u{XX}`;
//! * bytes that are not valid UTF-8 become `\xNN` with `NN` ≥ `80`, which cannot be confused
//!   with an escaped control character.
use std::fmt::Write as _;

/// Escapes arbitrary bytes (see the [module documentation](self) for the rules).
///
/// Valid UTF-8 runs are escaped like [`escape_str`]; every byte that is not part of a valid
/// UTF-8 sequence becomes `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        push_escaped_str(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Escapes a string (see the [module documentation](self) for the rules).
pub fn escape_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped_str(&mut out, s);
    out
}

/// Escapes a string that was escaped already (a process name made from the
/// kernel's bytes by [`comm_from_bytes`], as the JSON carries it): control
/// and formatting characters as [`escape_str`] does (a journal may have
/// been edited), but a `\` is left as it is, so an escape is not doubled.
pub fn escape_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push(c);
        } else {
            push_escaped_char(&mut out, c);
        }
    }
    out
}

/// Converts a kernel `comm` buffer (`TASK_COMM_LEN` = 16 bytes, NUL-padded) to an escaped
/// string: the name stops at the first NUL, and all 16 bytes are used if there is none.
pub fn comm_from_bytes(b: &[u8; 16]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    escape_bytes(&b[..end])
}

fn push_escaped_str(out: &mut String, s: &str) {
    for c in s.chars() {
        push_escaped_char(out, c);
    }
}

fn push_escaped_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\x1b' => out.push_str("\\e"),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if needs_unicode_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Non-ASCII characters that control the terminal or the visual order of text.
fn needs_unicode_escape(c: char) -> bool {
    matches!(
        c,
        // C1 controls, including U+009B (CSI) and U+009D (OSC).
        '\u{80}'..='\u{9f}'
        // Bidirectional marks, embeddings, overrides and isolates.
        | '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        // Line and paragraph separators, byte-order mark.
        | '\u{2028}'
        | '\u{2029}'
        | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_passes_through() {
        assert_eq!(
            escape_str("ip route add 10.0.0.0/8"),
            "ip route add 10.0.0.0/8"
        );
        assert_eq!(escape_bytes(b"systemd-networkd"), "systemd-networkd");
        assert_eq!(escape_str(""), "");
    }

    #[test]
    fn emoji_and_non_latin_scripts_pass_through() {
        let s = "🦀 réseau 日本語 🏳️‍🌈";
        assert_eq!(escape_str(s), s);
        assert_eq!(escape_bytes(s.as_bytes()), s);
    }

    #[test]
    fn ansi_colour_sequence_is_neutralised() {
        assert_eq!(escape_str("\x1b[31mred\x1b[0m"), "\\e[31mred\\e[0m",);
        assert_eq!(escape_bytes(b"\x1b[2J\x1b[H"), "\\e[2J\\e[H");
    }

    #[test]
    fn terminal_title_osc_sequence_is_neutralised() {
        assert_eq!(escape_str("\x1b]0;pwned\x07"), "\\e]0;pwned\\x07");
        assert_eq!(escape_str("\x1b]2;title\x1b\\"), "\\e]2;title\\e\\\\");
    }

    #[test]
    fn c1_controls_are_escaped() {
        // U+009B is a one-character CSI on terminals that honour 8-bit controls.
        assert_eq!(escape_str("\u{9b}31mred"), "\\u{9b}31mred");
        assert_eq!(escape_bytes(&[0xc2, 0x9b, b'2', b'J']), "\\u{9b}2J");
        assert_eq!(escape_str("\u{80}\u{9d}\u{9f}"), "\\u{80}\\u{9d}\\u{9f}");
        // U+00A0 (no-break space) is the first character after C1 and is printable.
        assert_eq!(escape_str("\u{a0}"), "\u{a0}");
    }

    #[test]
    fn c0_controls_and_del_are_escaped() {
        assert_eq!(escape_str("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(
            escape_str("\0\x01\x07\x08\x1f\x7f"),
            "\\x00\\x01\\x07\\x08\\x1f\\x7f"
        );
    }

    #[test]
    fn backslash_is_escaped_so_output_is_unambiguous() {
        assert_eq!(escape_str("a\\b"), "a\\\\b");
        // A literal backslash-e must not look like an escaped ESC.
        assert_ne!(escape_str("\\e"), escape_str("\x1b"));
        assert_eq!(escape_str("\\e"), "\\\\e");
    }

    #[test]
    fn invalid_utf8_bytes_become_hex_escapes() {
        assert_eq!(escape_bytes(b"ab\xffcd"), "ab\\xffcd");
        // Truncated multi-byte sequence.
        assert_eq!(escape_bytes(b"x\xe2\x82"), "x\\xe2\\x82");
        // A lone 8-bit CSI byte is invalid UTF-8 and must not reach the terminal raw.
        assert_eq!(escape_bytes(b"\x9b31m"), "\\x9b31m");
        // Overlong encoding of '/'.
        assert_eq!(escape_bytes(b"\xc0\xaf"), "\\xc0\\xaf");
        // Valid text after an invalid byte is kept.
        assert_eq!(escape_bytes("\u{e9}\u{ff}".as_bytes()), "\u{e9}\u{ff}");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        assert_eq!(escape_str("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(
            escape_str("\u{2066}a\u{2069}\u{200f}\u{061c}"),
            "\\u{2066}a\\u{2069}\\u{200f}\\u{61c}",
        );
        assert_eq!(escape_str("a\u{2028}b\u{feff}"), "a\\u{2028}b\\u{feff}");
    }

    #[test]
    fn comm_stops_at_first_nul() {
        let mut comm = [0u8; 16];
        comm[..2].copy_from_slice(b"ip");
        comm[3..8].copy_from_slice(b"stale");
        assert_eq!(comm_from_bytes(&comm), "ip");
        assert_eq!(comm_from_bytes(&[0u8; 16]), "");
    }

    #[test]
    fn comm_without_nul_uses_all_16_bytes() {
        assert_eq!(comm_from_bytes(b"0123456789abcdef"), "0123456789abcdef");
    }

    #[test]
    fn comm_is_escaped() {
        let mut comm = [0u8; 16];
        comm[..7].copy_from_slice(b"\x1b[31m\xff\n");
        assert_eq!(comm_from_bytes(&comm), "\\e[31m\\xff\\n");
        // Written once in text, not twice; a raw escape still is neutralised.
        assert_eq!(escape_escaped(&comm_from_bytes(&comm)), "\\e[31m\\xff\\n");
        assert_eq!(escape_escaped("a\u{1b}[31m"), "a\\e[31m");
    }

    #[test]
    fn no_single_byte_or_char_survives_as_a_control() {
        for byte in 0..=u8::MAX {
            let escaped = escape_bytes(&[byte]);
            assert!(
                !escaped.chars().any(char::is_control),
                "byte {byte:#04x} escaped to {escaped:?}",
            );
        }
        for c in ('\0'..='\u{3000}').chain(['\u{feff}']) {
            let escaped = escape_str(c.encode_utf8(&mut [0; 4]));
            assert!(
                !escaped
                    .chars()
                    .any(|e| e.is_control() || needs_unicode_escape(e)),
                "{c:?} escaped to {escaped:?}",
            );
        }
    }
}
