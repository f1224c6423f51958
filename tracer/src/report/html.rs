//! The report as one self-contained HTML page (`--format html`): the
//! postmortem's facts, the picture (`svg.rs`) and the full text report.
//! Inline CSS and SVG only: no script, no font or image fetched (the page's
//! Content-Security-Policy forbids it). The markup is built with maud,
//! whose `html!` escapes every value it is given, so nothing from the
//! journal (process, interface or namespace names) can become markup.
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{
    model::Report,
    postmortem::{self, Postmortem},
    svg, text,
    words::{Fmt, Zone},
};

const CSS: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1240px;padding:0 16px;color:#222}\
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ddd}\
.summary{font-size:15px}.source{color:#555}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f0f0f0}td.time{white-space:nowrap;font-variant-numeric:tabular-nums}\
svg.chart{display:block;max-width:100%;height:auto;font:11px system-ui,sans-serif;border:1px solid #ddd}\
svg .label{font-family:ui-monospace,monospace}svg .more{fill:#555;font-style:italic}\
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}\
";

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

pub fn render(r: &Report, zone: Zone) -> String {
    let p = postmortem::of(r, zone);
    let f = Fmt {
        zone,
        many_ns: r.namespaces.len() > 1,
    };
    let title = if p.date.is_empty() {
        "Routing incident (draft)".to_string()
    } else {
        format!("Routing incident, {} (draft)", p.date)
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { (title) }
                p.summary { strong { "Summary: " } (p.summary) }
                p.source { "Drafted by tracer report from " (p.source) "." }
                section #picture {
                    h2 { "What changed, on one time axis (" (p.zone) ")" }
                    (svg::render(r, &f))
                }
                (timeline(&p))
                (list("causes", "Root cause candidates", &p.causes))
                (list("impact", "Impact", &p.impact))
                (list("restored", "What was restored", &p.restored))
                @if !p.gaps.is_empty() {
                    (list("gaps", "Gaps in the record", &p.gaps))
                }
                section #report {
                    h2 { "The full report" }
                    details {
                        summary { "tracer report, as text" }
                        pre { (text::render(r, zone)) }
                    }
                }
            }
        }
    };
    page.into_string() + "\n"
}

fn timeline(p: &Postmortem) -> Markup {
    html! {
        section #timeline {
            h2 { "Timeline (" (p.zone) ")" }
            table {
                thead { tr { th { "Time" } th { "Event" } } }
                tbody {
                    @for row in &p.timeline {
                        tr { td.time { (row.time) } td { (row.event) } }
                    }
                    @if p.rows_left_out > 0 {
                        tr { td.time { "..." } td { (p.rows_left_out) " more rows (tracer report shows them all)" } }
                    }
                }
            }
        }
    }
}

fn list(id: &str, title: &str, lines: &[String]) -> Markup {
    html! {
        section id=(id) {
            h2 { (title) }
            ul { @for l in lines { li { (l) } } }
        }
    }
}
