//! The report as a postmortem draft in Markdown (`--format markdown`), to
//! paste into an incident write-up: a summary line, a `| Time | Event |`
//! timeline, root-cause candidates, impact, what was restored, and what
//! the record lacks. Every string is escaped for Markdown ([`md`]): a
//! process or interface name cannot make a link, emphasis, HTML or a new
//! table cell.
use std::fmt::Write as _;

use super::{
    model::Report,
    postmortem::{self, Postmortem},
    words::Zone,
};

pub fn render(r: &Report, zone: Zone) -> String {
    let p = postmortem::of(r, zone);
    let mut out = String::new();
    let title = if p.date.is_empty() {
        "Routing incident (draft)".to_string()
    } else {
        format!("Routing incident, {} (draft)", p.date)
    };
    let _ = writeln!(out, "# {}\n", md(&title));
    let _ = writeln!(out, "**Summary:** {}\n", md(&p.summary));
    let _ = writeln!(out, "Drafted by `tracer report` from {}.\n", md(&p.source));
    timeline(&mut out, &p);
    section(&mut out, "Root cause candidates", &p.causes);
    section(&mut out, "Impact", &p.impact);
    section(&mut out, "What was restored", &p.restored);
    if !p.gaps.is_empty() {
        section(&mut out, "Gaps in the record", &p.gaps);
    }
    out
}

fn timeline(out: &mut String, p: &Postmortem) {
    let _ = writeln!(out, "## Timeline ({})\n", md(&p.zone));
    let _ = writeln!(out, "| Time | Event |\n|---|---|");
    for row in &p.timeline {
        let _ = writeln!(out, "| {} | {} |", md(&row.time), md(&row.event));
    }
    if p.rows_left_out > 0 {
        let _ = writeln!(
            out,
            "| ... | {} more rows (`tracer report` shows them all) |",
            p.rows_left_out
        );
    }
    if p.timeline.is_empty() {
        let _ = writeln!(out, "| | Nothing happened in this window. |");
    }
    out.push('\n');
}

fn section(out: &mut String, title: &str, lines: &[String]) {
    let _ = writeln!(out, "## {title}\n");
    for l in lines {
        let _ = writeln!(out, "- {}", md(l));
    }
    out.push('\n');
}

/// Escapes text for Markdown (CommonMark and GitHub's tables): a backslash
/// before every character that could start markup in the middle of a line
/// (`\` `` ` `` `*` `_` `[` `]` `<` `|` `&` `~`), so what the journal holds
/// is shown as written. Nothing written here starts a line, so `#`, `>`,
/// `-` and digits stay as they are.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '|' | '&' | '~'
        ) {
            out.push('\\');
        }
        if c == '\n' || c == '\r' {
            out.push(' ');
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::md;

    #[test]
    fn markup_in_names_is_shown_as_written() {
        assert_eq!(md("tailscaled"), "tailscaled");
        assert_eq!(md("br_lan|x"), "br\\_lan\\|x");
        assert_eq!(
            md("[a](http://x) <script> *b* `c` ~~d~~ &amp; \\"),
            "\\[a\\](http://x) \\<script> \\*b\\* \\`c\\` \\~\\~d\\~\\~ \\&amp; \\\\"
        );
        assert_eq!(md("rule 5270 -> table 52"), "rule 5270 -> table 52");
        assert_eq!(md("a\nb"), "a b");
    }
}
