//! Journals of many hosts as one timeline (`report --journal A --journal
//! B`): each journal's events keep their own order and the journals are
//! merged by time; `--host` keeps some hosts only; and when more than one
//! host is in the report, every namespace is named `HOST:NAME` (an unnamed
//! one `HOST:INODE`), so that no two hosts' namespaces are taken for one
//! (every host's own namespace has the same inode) and every line that
//! names a namespace names its host.
use chrono::{DateTime, Utc};

use crate::{
    event::Netns,
    journal::read::{Data, Entry},
};

/// Merge journals, each in its own order, into one by time: at each step
/// the earliest next event of any journal (the first journal's on a tie).
pub fn merge(journals: Vec<Vec<Entry>>) -> Vec<Entry> {
    if journals.len() <= 1 {
        return journals.into_iter().flatten().collect();
    }
    let total = journals.iter().map(Vec::len).sum();
    let mut its: Vec<_> = journals
        .into_iter()
        .map(|j| j.into_iter().peekable())
        .collect();
    let mut out = Vec::with_capacity(total);
    loop {
        let next = its
            .iter_mut()
            .enumerate()
            .filter_map(|(i, it)| it.peek().map(|e| (e.ts, i)))
            .min_by_key(|&(ts, i): &(DateTime<Utc>, usize)| (ts, i));
        let Some((_, i)) = next else { break };
        out.extend(its[i].next());
    }
    out
}

/// Keep the events of these hosts only (all when `hosts` is empty). An
/// event that names no host (an older journal) is kept only then.
pub fn only(entries: Vec<Entry>, hosts: &[String]) -> Vec<Entry> {
    if hosts.is_empty() {
        return entries;
    }
    entries
        .into_iter()
        .filter(|e| e.host.as_ref().is_some_and(|h| hosts.contains(h)))
        .collect()
}

/// The hosts the events name, in order of first appearance.
pub fn names(entries: &[Entry]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in entries.iter().filter_map(|e| e.host.as_ref()) {
        if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

/// With more than one host, name every namespace after its host too.
pub fn qualify(entries: &mut [Entry]) {
    if names(entries).len() <= 1 {
        return;
    }
    for e in entries.iter_mut() {
        let host = e.host.clone().unwrap_or_else(|| "?".into());
        let q = |n: &mut Netns| {
            let name = match (&n.name, n.inode) {
                (Some(name), _) => name.clone(),
                (None, Some(i)) => i.to_string(),
                (None, None) => "?".into(),
            };
            n.name = Some(format!("{host}:{name}"));
            // Keyed by the qualified name: inodes repeat across hosts.
            n.inode = None;
        };
        match &mut e.data {
            Data::Change(_, c) => q(&mut c.netns),
            Data::Snapshot(s) => q(&mut s.netns),
            Data::SnapshotEnd(s) => q(&mut s.netns),
            Data::Loop(_, l) => q(&mut l.netns),
            Data::Ready(r) => r.namespaces.iter_mut().for_each(q),
            Data::Lost(_) | Data::Journal(_) | Data::Other(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::read::{Location, parse_line};

    fn entry(host: Option<&str>, secs: u32, dst: &str) -> Entry {
        let host = host
            .map(|h| format!(r#","host":"{h}""#))
            .unwrap_or_default();
        let line = format!(
            r#"{{"ts":"2026-04-10T06:52:{secs:02}Z","kind":"route_del","source":"tracepoint","process":null,"netns":{{"inode":4026531840,"name":null}},"route":{{"family":"inet","table":52,"table_name":null,"type":"throw","dst":"{dst}","gateway":null,"dev":null,"ifindex":null,"metric":0,"protocol":"boot","scope":"global"}},"result":"ok","cause":null{host}}}"#
        );
        let at = Location {
            file: "j".into(),
            line: 1,
        };
        parse_line(at, line.as_bytes(), true).unwrap().unwrap()
    }

    fn dsts(es: &[Entry]) -> Vec<String> {
        es.iter()
            .map(|e| match &e.data {
                Data::Change(_, c) => c.route.as_ref().unwrap().dst.clone().unwrap(),
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn journals_merge_by_time_each_keeping_its_order() {
        let a = vec![
            entry(Some("a"), 1, "a1"),
            entry(Some("a"), 5, "a5"),
            entry(Some("a"), 4, "a4"),
        ];
        let b = vec![entry(Some("b"), 2, "b2"), entry(Some("b"), 5, "b5")];
        let m = merge(vec![a, b]);
        // a4 stays after a5 (its journal's order); a5 before b5 (a tie).
        assert_eq!(dsts(&m), ["a1", "b2", "a5", "a4", "b5"]);
    }

    #[test]
    fn namespaces_are_named_after_their_host_when_there_are_many() {
        let mut one = vec![entry(Some("a"), 1, "x")];
        qualify(&mut one);
        let Data::Change(_, c) = &one[0].data else {
            panic!()
        };
        assert_eq!(c.netns.name, None, "one host: as written");
        let mut two = vec![
            entry(Some("a"), 1, "x"),
            entry(Some("b"), 2, "y"),
            entry(None, 3, "z"),
        ];
        qualify(&mut two);
        let names: Vec<Option<String>> = two
            .iter()
            .map(|e| match &e.data {
                Data::Change(_, c) => c.netns.name.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(
            names,
            [
                Some("a:4026531840".into()),
                Some("b:4026531840".into()),
                Some("?:4026531840".into())
            ]
        );
    }

    #[test]
    fn only_the_hosts_asked_for() {
        let es = vec![
            entry(Some("a"), 1, "x"),
            entry(Some("b"), 2, "y"),
            entry(None, 3, "z"),
        ];
        assert_eq!(dsts(&only(es.clone(), &[])), ["x", "y", "z"]);
        assert_eq!(dsts(&only(es, &["b".into()])), ["y"]);
    }
}
