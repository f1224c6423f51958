//! Loops on the timeline: one item per looping flow, from its `loop`
//! event, brought up to date by its `loop_summary` and `loop_end` events.
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{
    fate::History,
    identity::{Actor, Key, NsKey, Object},
    model::{LoopItem, LoopSuspect, Time},
    select::Select,
};
use crate::journal::read::{LoopPhase, LoopSeen};

/// A flow: namespace, interface, addresses, protocol, echo id or ports.
type Flow = (
    NsKey,
    String,
    String,
    String,
    String,
    Option<u16>,
    Option<u16>,
    Option<u16>,
);

fn flow(l: &LoopSeen) -> Flow {
    let p = &l.original;
    (
        NsKey::of(&l.netns),
        l.iface.clone(),
        p.src.clone(),
        p.dst.clone(),
        p.proto.clone(),
        p.icmp_id,
        p.sport,
        p.dport,
    )
}

#[derive(Default)]
pub struct Loops {
    items: Vec<(LoopItem, Option<Object>)>,
    open: HashMap<Flow, usize>,
}

impl Loops {
    pub fn add(&mut self, ts: Time, phase: LoopPhase, l: &LoopSeen) {
        let key = flow(l);
        let idx = match (phase, self.open.get(&key)) {
            (LoopPhase::Summary | LoopPhase::End, Some(&i)) => i,
            // A new loop of the flow, or one that started before the window.
            _ => {
                self.items.push(item(ts, l));
                self.open.insert(key.clone(), self.items.len() - 1);
                self.items.len() - 1
            }
        };
        let it = &mut self.items[idx].0;
        it.packets = it.packets.max(l.packets);
        it.last_seen = l.last_seen.clone().or(it.last_seen.take());
        if phase == LoopPhase::End {
            it.ended = Some(ts);
            self.open.remove(&key);
        }
    }

    /// The loops that pass `sel`, with what became of their suspects.
    pub fn finish(self, sel: &Select, history: &History) -> Vec<LoopItem> {
        let mut out = Vec::new();
        for (mut it, obj) in self.items {
            let table = it.lookup.as_ref().and_then(|k| k.table);
            let name = it.lookup.as_ref().and_then(|k| k.table_name.clone());
            let by_table =
                sel.table(table, name.as_deref()) || obj.as_ref().is_some_and(|o| sel.object(o));
            let by_actor = !sel.by_actor()
                || it
                    .suspect
                    .as_ref()
                    .is_some_and(|s| sel.actor_matches(&s.by));
            if !(sel.packet_dst(&it.original.dst) && by_table && by_actor) {
                continue;
            }
            if let (Some(s), Some(o)) = (it.suspect.as_mut(), obj.as_ref())
                && s.is_removal()
                && let Ok(t) = DateTime::parse_from_rfc3339(&s.ts)
            {
                let key = Key::new(&s.netns, o);
                s.fate = history.fate_of_removal_at(&key, t.with_timezone(&Utc));
            }
            out.push(it);
        }
        out
    }
}

fn item(ts: Time, l: &LoopSeen) -> (LoopItem, Option<Object>) {
    let suspect = l.suspect.as_ref().and_then(|s| {
        let object = Object::of(&s.change)?;
        Some((
            LoopSuspect {
                ts: s.ts.clone(),
                kind: s.kind.clone(),
                by: Actor::of(s.change.process.as_deref()),
                netns: s.change.netns.clone(),
                object: object.clone(),
                fate: None,
            },
            object,
        ))
    });
    let (suspect, obj) = match suspect {
        Some((s, o)) => (Some(s), Some(o)),
        None => (None, None),
    };
    (
        LoopItem {
            ts,
            netns: l.netns.clone(),
            iface: l.iface.clone(),
            original: l.original.clone(),
            looped: l.looped.clone(),
            snat: l.snat,
            lookup: l.lookup.clone(),
            suspect,
            advice: l.advice.clone(),
            packets: l.packets,
            last_seen: l.last_seen.clone(),
            ended: None,
        },
        obj,
    )
}
