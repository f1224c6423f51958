//! Emitting outcomes in the order the kernel made the changes: a sender's
//! outcome waits behind its earlier unresolved change, and a namespace's
//! behind its pending flush re-read.
use super::{BEHIND_MAX, Engine, Note, Object, Outcome, recovery};
use crate::event::Route;

impl Engine {
    /// Whether `o` must wait for an earlier, unresolved change of the same
    /// sender (the oldest waiting one): a request read at a syscall, or a
    /// kernel record whose notification has not come (a failed message of
    /// a datagram is known at once on the kprobe/fentry paths, while the
    /// earlier, successful one waits for its notification).
    pub(super) fn blocked(&self, o: &Outcome) -> bool {
        let Some(who) = o.who.as_ref() else {
            return false;
        };
        self.pending
            .front()
            .is_some_and(|(id, f)| f.who.pid == who.pid && id < o.order.unwrap_or(u64::MAX))
    }

    pub(super) fn emit(&mut self, o: Outcome) {
        if self.behind.len() < BEHIND_MAX && self.blocked(&o) {
            self.behind.push(o);
            return;
        }
        self.emit_now(o);
        self.release_behind();
    }

    /// Outcomes no longer behind an unresolved request go out, in order.
    pub(super) fn release_behind(&mut self) {
        while !self.behind.is_empty()
            && (self.behind.len() >= BEHIND_MAX || !self.blocked(&self.behind[0]))
        {
            let o = self.behind.remove(0);
            self.emit_now(o);
        }
    }

    pub(super) fn emit_now(&mut self, mut o: Outcome) {
        if let Some(m) = self.mirrors.get(&o.netns) {
            let dev = |r: &mut Route| r.name_devs(|i| m.dev(i));
            for obj in std::iter::once(&mut o.object).chain(o.replaced.as_mut()) {
                match obj {
                    Object::Route(r) => {
                        // A route that names its nexthop object (a request
                        // read at a syscall says no more) forwards to it.
                        if r.nexthops.is_empty() && r.gateway.is_none() && r.dev.is_none() {
                            m.resolve(r);
                        }
                        dev(r);
                    }
                    Object::Nexthop(n) => n.name_dev(|i| m.dev(i)),
                    Object::Rule(_) => {}
                }
            }
        }
        let after = self.take_after(&o);
        self.place(o);
        for c in after {
            self.place(c);
        }
    }

    /// An outcome goes out, or waits behind its namespace's re-read.
    fn place(&mut self, o: Outcome) {
        // The kernel flushed routes of this namespace before this change:
        // the re-read that finds them runs first.
        if self.resyncs.contains_key(&o.netns) || self.held.contains_key(&o.netns) {
            self.held.entry(o.netns).or_default().push(o);
            return;
        }
        // A change a re-read found, reported from its request or
        // notification, is not reported again when the recovery's wait ends.
        if let (Object::Route(r), Some(rec)) = (&o.object, self.recovered.get_mut(&o.netns))
            && o.note != Some(Note::Recovered)
        {
            rec.vanished.remove(&(o.op, recovery::route_id(r)));
        }
        self.out.push(o);
    }
}
