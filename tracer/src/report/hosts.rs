//! Journals of many hosts as one timeline (`report --journal A --journal
//! B`): each journal's events keep their own order and the journals are
//! merged by time; `--host` keeps some hosts only; and when more than one
//! host is in the report, every namespace is named `HOST:NAME` (an unnamed
//! one `HOST:INODE`), so that no two hosts' namespaces are taken for one
//! (every host's own namespace has the same inode) and every line that
//! names a namespace names its host. Two machines with one hostname (two
//! routers left at `openwrt`) are told apart by their machine ids: each is
//! named `HOST@ID` (the id's first 8 characters), and `--host HOST` keeps
//! both.
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::{
    event::Netns,
    journal::read::{Data, Entry},
};

/// Merge journals, each in its own order, into one by time: at each step
/// the earliest next event of any journal (the first journal's on a tie).
pub fn merge(mut journals: Vec<Vec<Entry>>) -> Vec<Entry> {
    journals.iter_mut().for_each(|j| ids_from_ready(j));
    let mut out = merge_in_order(journals);
    tell_apart(&mut out);
    out
}

/// In a journal written when only `ready` carried the machine id, the
/// lines after a `ready` take its id.
fn ids_from_ready(journal: &mut [Entry]) {
    let mut last: Option<(String, String)> = None;
    for e in journal.iter_mut() {
        if let (Some(h), Some(id)) = (&e.host, &e.machine_id) {
            last = Some((h.clone(), id.clone()));
        } else if e.machine_id.is_none()
            && let Some((h, id)) = &last
            && e.host.as_ref() == Some(h)
        {
            e.machine_id = Some(id.clone());
        }
    }
}

/// A hostname that more than one machine id wrote under becomes
/// `HOST@ID8` on each of its lines (lines without an id keep `HOST`).
fn tell_apart(entries: &mut [Entry]) {
    let mut ids: HashMap<&str, HashSet<&str>> = HashMap::new();
    for e in entries.iter() {
        if let (Some(h), Some(id)) = (&e.host, &e.machine_id) {
            ids.entry(h).or_default().insert(id);
        }
    }
    let shared: HashSet<String> = ids
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(h, _)| h.to_string())
        .collect();
    for e in entries.iter_mut() {
        if let (Some(h), Some(id)) = (&mut e.host, &e.machine_id)
            && shared.contains(h.as_str())
        {
            let short: String = id.chars().take(8).collect();
            *h = format!("{h}@{short}");
        }
    }
}

fn merge_in_order(journals: Vec<Vec<Entry>>) -> Vec<Entry> {
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

/// Keep the events of these hosts only (all when `hosts` is empty): a
/// name as the report gives it, or a hostname for every machine of that
/// name. An event that names no host (an older journal) is kept only then.
pub fn only(entries: Vec<Entry>, hosts: &[String]) -> Vec<Entry> {
    if hosts.is_empty() {
        return entries;
    }
    entries
        .into_iter()
        .filter(|e| {
            e.host.as_ref().is_some_and(|h| {
                let bare = h.split('@').next().unwrap_or(h);
                hosts.iter().any(|w| w == h || w == bare)
            })
        })
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
        entry_of(host, None, secs, dst)
    }

    fn entry_of(host: Option<&str>, id: Option<&str>, secs: u32, dst: &str) -> Entry {
        let host = host
            .map(|h| format!(r#","host":"{h}""#))
            .unwrap_or_default()
            + &id
                .map(|i| format!(r#","machine_id":"{i}""#))
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

    fn hosts(es: &[Entry]) -> Vec<Option<String>> {
        es.iter().map(|e| e.host.clone()).collect()
    }

    /// Two routers that share a hostname stay apart by machine id; one
    /// machine keeps its plain name, and `--host NAME` keeps both.
    #[test]
    fn one_hostname_on_two_machines_is_told_apart() {
        let a = vec![
            entry_of(Some("openwrt"), Some("aaaaaaaa11112222"), 1, "a1"),
            entry_of(Some("openwrt"), Some("aaaaaaaa11112222"), 3, "a3"),
        ];
        let b = vec![entry_of(Some("openwrt"), Some("bbbbbbbb33334444"), 2, "b2")];
        let c = vec![entry_of(Some("r9"), Some("cccccccc"), 4, "c4")];
        let m = merge(vec![a, b, c]);
        assert_eq!(
            hosts(&m),
            [
                Some("openwrt@aaaaaaaa".into()),
                Some("openwrt@bbbbbbbb".into()),
                Some("openwrt@aaaaaaaa".into()),
                Some("r9".into()),
            ]
        );
        assert_eq!(
            dsts(&only(m.clone(), &["openwrt".into()])),
            ["a1", "b2", "a3"]
        );
        assert_eq!(dsts(&only(m, &["openwrt@bbbbbbbb".into()])), ["b2"]);
    }

    /// A journal from before `machine_id` was on every line: its lines
    /// take the id of the `ready` before them.
    #[test]
    fn older_journals_take_the_id_of_their_ready() {
        let ready = |id: &str, secs: u32| {
            let line = format!(
                r#"{{"ts":"2026-04-10T06:52:{secs:02}Z","kind":"ready","source":"tracepoint","host":"openwrt","machine_id":"{id}"}}"#
            );
            let at = Location {
                file: "j".into(),
                line: 1,
            };
            parse_line(at, line.as_bytes(), true).unwrap().unwrap()
        };
        let a = vec![ready("aaaaaaaa11", 1), entry(Some("openwrt"), 3, "a3")];
        let b = vec![ready("bbbbbbbb22", 2), entry(Some("openwrt"), 4, "b4")];
        let m = merge(vec![a, b]);
        assert_eq!(
            hosts(&m),
            [
                Some("openwrt@aaaaaaaa".into()),
                Some("openwrt@bbbbbbbb".into()),
                Some("openwrt@aaaaaaaa".into()),
                Some("openwrt@bbbbbbbb".into()),
            ]
        );
    }
}
