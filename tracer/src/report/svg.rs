//! The picture of `--format html`: one time axis; a row per rule or route
//! that changed, with bars where it was present and where it was missing
//! (coloured by who removed it); loops as bands across the rows; the
//! tracer's sessions, snapshots and lost records marked above them. Built
//! with maud, which escapes every string it is given; hover text is in
//! `<title>` elements (no script).
use chrono::Duration;
use maud::{Markup, html};

use super::{
    chart::{Row, Span, State},
    identity::Actor,
    model::{Item, Report, Time},
    words::*,
};
use crate::escape::escape_str;

/// The most rows drawn; the rest are counted in a last line.
pub const ROWS_MAX: usize = 60;
/// The most bars drawn in one row (a route that flapped thousands of times).
const SPANS_MAX: usize = 400;
const WIDTH: f64 = 1200.0;
const LABEL_END: f64 = 372.0;
const X0: f64 = 380.0;
const X1: f64 = 1180.0;
const TOP: f64 = 64.0;
const ROW_H: f64 = 20.0;
const BAR_H: f64 = 12.0;
const KEYS_PER_LINE: usize = 3;

/// Colours of the removers, in order of appearance.
const PALETTE: [&str; 8] = [
    "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#1f77b4",
];
const PRESENT: &str = "#8fd19e";
const GONE: &str = "#9e9e9e";
const REPLACED: &str = "#aec7e8";

/// The time axis: where each time falls.
struct Axis {
    t0: Time,
    t1: Time,
}

impl Axis {
    fn of(r: &Report) -> Axis {
        let t0 = r.first.or(r.since).unwrap_or_else(chrono::Utc::now);
        let t1 = r.end.max(r.last).unwrap_or(t0);
        let t1 = if t1 <= t0 {
            t0 + Duration::seconds(1)
        } else {
            t1
        };
        Axis { t0, t1 }
    }
    fn x(&self, t: Time) -> f64 {
        let span = (self.t1 - self.t0).num_microseconds().unwrap_or(1).max(1) as f64;
        let at = (t - self.t0).num_microseconds().unwrap_or(0) as f64;
        X0 + (at / span).clamp(0.0, 1.0) * (X1 - X0)
    }
    /// About 8 ticks at a round step.
    fn ticks(&self) -> Vec<Time> {
        const STEPS: [i64; 17] = [
            1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400,
        ];
        let secs = (self.t1 - self.t0).num_seconds().max(1);
        let step = STEPS
            .iter()
            .copied()
            .find(|s| secs / s <= 8)
            .unwrap_or((secs / 8 / 86400 + 1) * 86400);
        let first = (self.t0.timestamp() / step + 1) * step;
        (0..)
            .map(|i| first + i * step)
            .take_while(|&s| s <= self.t1.timestamp())
            .filter_map(|s| chrono::DateTime::from_timestamp(s, 0))
            .collect()
    }
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

pub fn render(r: &Report, f: &Fmt) -> Markup {
    let axis = Axis::of(r);
    let shown = &r.rows[..r.rows.len().min(ROWS_MAX)];
    let left_out = &r.rows[shown.len()..];
    let mut removers: Vec<String> = Vec::new();
    for s in shown.iter().flat_map(|row| &row.spans) {
        if let (State::Missing, Some(a)) = (s.state, &s.by) {
            let name = actor(a);
            if !removers.contains(&name) {
                removers.push(name);
            }
        }
    }
    let lines = shown.len() + usize::from(!left_out.is_empty());
    // Room under the rows for the loops' labels.
    let bottom = TOP + lines as f64 * ROW_H + 16.0;
    let height = bottom + 28.0 + 20.0 * ((removers.len() + 3).div_ceil(KEYS_PER_LINE) + 1) as f64;
    let day = r.first.map(|t| f.date(t)).unwrap_or_default();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"
            viewBox=(format!("0 0 {WIDTH} {}", n(height))) width=(WIDTH) height=(n(height)) {
            title { "What changed, on one time axis" }
            (axis_marks(&axis, f, &day, bottom))
            @for (i, row) in shown.iter().enumerate() {
                (row_markup(i, row, &axis, f, &day, &removers))
            }
            (loops(r, &axis, f, &day, bottom))
            (markers(r, &axis, f, &day, bottom))
            @if !left_out.is_empty() {
                text.more x=(n(X0)) y=(n(TOP + shown.len() as f64 * ROW_H + 14.0)) {
                    (format!("and {} more {} ({}), not drawn; --table or --dst narrows the report",
                        left_out.len(),
                        if left_out.len() == 1 { "rule or route" } else { "rules and routes" },
                        plural(left_out.iter().map(|r| r.changes).sum(), "change")))
                }
            }
            (legend(&removers, bottom + 24.0))
        }
    }
}

fn axis_marks(axis: &Axis, f: &Fmt, day: &str, bottom: f64) -> Markup {
    html! {
        g.axis {
            line x1=(n(X0)) x2=(n(X1)) y1=(n(TOP - 4.0)) y2=(n(TOP - 4.0)) stroke="#444" {}
            @for t in axis.ticks() {
                line x1=(n(axis.x(t))) x2=(n(axis.x(t))) y1=(n(TOP - 8.0)) y2=(n(bottom)) stroke="#ddd" {}
                text x=(n(axis.x(t))) y=(n(TOP - 12.0)) text-anchor="middle" { (f.time_on(t, day)) }
            }
        }
    }
}

fn loops(r: &Report, axis: &Axis, f: &Fmt, day: &str, bottom: f64) -> Markup {
    let end = axis.t1;
    html! {
        @for item in &r.timeline {
            @if let Item::Loop(l) = item {
                @let x = axis.x(l.ts);
                @let w = (axis.x(l.ended.unwrap_or(end)) - x).max(2.0);
                g.loop {
                    title { (format!("routing loop on {}{}: {} > {} {}, {} looped, {} to {}",
                        escape_str(&l.iface), f.in_ns(&l.netns), l.original.src, l.original.dst,
                        escape_str(&l.original.proto), plural(l.packets as usize, "packet"),
                        f.time_on(l.ts, day),
                        l.ended.map_or("the end of the record".into(), |t| f.time_on(t, day)))) }
                    rect x=(n(x)) y=(n(TOP - 2.0)) width=(n(w)) height=(n(bottom - TOP + 2.0))
                        fill="#ff0000" fill-opacity="0.12" stroke="#d62728" stroke-opacity="0.5" {}
                    text x=(n(x + 3.0)) y=(n(bottom - 4.0)) fill="#b00" { (format!("loop on {}", escape_str(&l.iface))) }
                }
            }
        }
    }
}

/// Sessions (a line down the rows), snapshots (a circle) and lost records
/// or journal errors (a cross), above the axis.
fn markers(r: &Report, axis: &Axis, f: &Fmt, day: &str, bottom: f64) -> Markup {
    html! {
        @for item in &r.timeline {
            @let x = axis.x(item.ts());
            @match item {
                Item::Session(s) => g.session {
                    title { (format!("tracer started at {} (pid {})", f.time_on(s.ts, day),
                        s.pid.map_or("?".into(), |p| p.to_string()))) }
                    line x1=(n(x)) x2=(n(x)) y1="14" y2=(n(bottom)) stroke="#1f77b4" stroke-dasharray="4 3" {}
                    path d=(format!("M{} 8 l-5 -7 h10 z", n(x))) fill="#1f77b4" {}
                },
                Item::Snapshot(s) => g.snapshot {
                    title { (format!("snapshot of netns {} at {}: {} and {}{}", ns(&s.netns), f.time_on(s.ts, day),
                        plural(s.rules, "rule"), plural(s.routes, "route"),
                        if s.complete { "" } else { " (incomplete)" })) }
                    circle cx=(n(x)) cy="22" r="4" fill="#1f77b4" {}
                },
                Item::Lost(l) => g.lost {
                    title { (format!("{} records lost ({}) at {}", l.count, escape_str(&l.location), f.time_on(l.ts, day))) }
                    path d=(format!("M{} 30 l8 8 m0 -8 l-8 8", n(x - 4.0))) stroke="#d62728" stroke-width="2.5" {}
                },
                Item::Journal(j) => g.lost {
                    title { (format!("journal {} at {}", if j.error.is_some() { "error" } else { "resumed" }, f.time_on(j.ts, day))) }
                    path d=(format!("M{} 30 l8 8 m0 -8 l-8 8", n(x - 4.0))) stroke="#ff7f0e" stroke-width="2.5" {}
                },
                _ => {}
            }
        }
    }
}

fn colour(s: &Span, removers: &[String]) -> &'static str {
    match s.state {
        State::Present => PRESENT,
        State::Gone => GONE,
        State::Replaced => REPLACED,
        State::Missing => {
            let name = s.by.as_ref().map(actor).unwrap_or_default();
            let i = removers.iter().position(|r| *r == name).unwrap_or(0);
            PALETTE[i % PALETTE.len()]
        }
    }
}

fn span_title(s: &Span, f: &Fmt, day: &str) -> String {
    let from = s
        .from
        .map_or("before the record".into(), |t| f.time_on(t, day));
    let to = s.to.map_or("the end".into(), |t| f.time_on(t, day));
    let by = |a: &Option<Actor>| a.as_ref().map(actor).unwrap_or_else(|| "?".into());
    match s.state {
        State::Present => format!("present {from} to {to}"),
        State::Missing => format!("missing {from} to {to}, removed by {}", by(&s.by)),
        State::Gone => format!(
            "gone with its interface from {from}, removed by {}",
            by(&s.by)
        ),
        State::Replaced => format!("replaced {from} to {to} by {}", by(&s.by)),
    }
}

fn row_markup(i: usize, row: &Row, axis: &Axis, f: &Fmt, day: &str, removers: &[String]) -> Markup {
    let y = TOP + i as f64 * ROW_H;
    let mut label = object(&row.object) + &f.in_ns(&row.netns);
    let full = label.clone();
    if label.chars().count() > 52 {
        label = label.chars().take(51).collect::<String>() + "…";
    }
    html! {
        g.row data-changes=(row.changes) data-missing=(row.missing_at_end) {
            title { (format!("{full}: {}", plural(row.changes, "change"))) }
            @if i.is_multiple_of(2) {
                rect x="0" y=(n(y)) width=(WIDTH) height=(n(ROW_H)) fill="#f6f6f6" {}
            }
            text.label x=(n(LABEL_END)) y=(n(y + 14.0)) text-anchor="end" { (label) }
            @for s in row.spans.iter().take(SPANS_MAX) {
                @let x = s.from.map_or(X0, |t| axis.x(t));
                @let w = (s.to.map_or(X1, |t| axis.x(t)) - x).max(1.5);
                rect class=(format!("bar {:?}", s.state).to_lowercase()) x=(n(x)) y=(n(y + (ROW_H - BAR_H) / 2.0))
                    width=(n(w)) height=(n(BAR_H)) fill=(colour(s, removers)) {
                    title { (span_title(s, f, day)) }
                }
            }
        }
    }
}

fn legend(removers: &[String], y: f64) -> Markup {
    let mut keys: Vec<(String, &str)> = vec![("present".into(), PRESENT)];
    for (i, r) in removers.iter().enumerate() {
        keys.push((
            format!("missing, removed by {r}"),
            PALETTE[i % PALETTE.len()],
        ));
    }
    keys.push(("gone with its interface".into(), GONE));
    keys.push(("replaced".into(), REPLACED));
    html! {
        g.legend {
            @for (i, (name, fill)) in keys.iter().enumerate() {
                @let x = 20.0 + (i % KEYS_PER_LINE) as f64 * 390.0;
                @let yy = y + (i / KEYS_PER_LINE) as f64 * 20.0;
                rect x=(n(x)) y=(n(yy)) width="14" height="10" fill=(fill) {}
                text x=(n(x + 18.0)) y=(n(yy + 9.5)) {
                    @let short: String = name.chars().take(60).collect();
                    (short)
                }
            }
            text x="20" y=(n(y + keys.len().div_ceil(KEYS_PER_LINE) as f64 * 20.0 + 9.5)) fill="#555" {
                "band: loop · dashed line: tracer started · ● snapshot · ✕ lost records"
            }
        }
    }
}
