use prometheus_client::encoding::text::encode;

use super::*;
use crate::event::{Change, Lost, Netns, Process, Route, Source};

fn text(m: &Metrics) -> String {
    let mut s = String::new();
    encode(&mut s, &m.registry()).unwrap();
    s
}

#[test]
fn changes_lost_and_journal_are_counted() {
    let m = Metrics::new(true);
    let del = Event {
        ts: String::new(),
        kind: Kind::RouteDel,
        source: Source::Tracepoint,
        body: Body::Change(Box::new(Change {
            process: Some(std::sync::Arc::new(Process {
                comm: "systemd-network".into(),
                unit: Some("systemd-networkd.service".into()),
                ..Process::default()
            })),
            netns: Netns::default(),
            rule: None,
            route: Some(Route {
                table: Some(52),
                ..Route::default()
            }),
            result: Some("ok".into()),
            cause: None,
            old: None,
            nl_seq: None,
            note: None,
        })),
    };
    m.event(&del);
    m.event(&del);
    m.event(&Event {
        ts: String::new(),
        kind: Kind::Lost,
        source: Source::Tracepoint,
        body: Body::Lost(Lost {
            count: 37,
            location: "ring_buffer".into(),
        }),
    });
    m.journal(Stats {
        lines_written: 10,
        bytes_written: 1000,
        ..Stats::default()
    });
    m.journal(Stats {
        lines_written: 15,
        bytes_written: 1500,
        failing: true,
        ..Stats::default()
    });
    let t = text(&m);
    assert!(
        t.contains(r#"tracer_changes_total{kind="route_del",table="52",unit="systemd-networkd.service",comm="systemd-network",result="ok"} 2"#),
        "{t}"
    );
    assert!(
        t.contains(r#"tracer_events_lost_total{location="ring_buffer"} 37"#),
        "{t}"
    );
    assert!(t.contains("tracer_journal_lines_written_total 15"), "{t}");
    assert!(t.contains("tracer_journal_written_bytes_total 1500"), "{t}");
    assert!(t.contains("tracer_journal_failing 1"), "{t}");
    // A family appears once it has a first label set.
    assert!(!t.contains("tracer_loops_detected_total{"), "{t}");
    assert!(t.ends_with("# EOF\n"), "{t}");
}
