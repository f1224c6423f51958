//! Time in the engine: waits that expire, re-reads that fall due, and the
//! end of a session.
use std::time::Instant;

use super::*;

impl Engine {
    /// Advance time: expire waits and start due resyncs.
    pub fn tick(&mut self, now: Instant) -> Vec<(u32, FlushCauses)> {
        while let Some((id, _)) = self
            .pending
            .front()
            .filter(|(_, p)| p.deadline <= now && self.read_past(p.netns, p.deadline))
        {
            let p = self.pending.take(id).expect("front exists");
            let note = match (p.from_kernel, p.result) {
                (true, _) => None,
                (false, Some(_)) if p.unwatched => Some(Note::UnwatchedAcked),
                (false, Some(_)) => None,
                (false, None) => Some(Note::NoOutcome {
                    watched: !p.unwatched,
                }),
            };
            let (result, seq) = (p.result, p.seq);
            let mut o = Pending::outcome(p, None, result, nonzero(seq));
            o.order = Some(id);
            o.note = note;
            let o = self.with_kernel_cause(o, now);
            self.emit(o);
        }
        while let Some((id, _)) = self
            .orphans
            .front()
            .filter(|(_, o)| o.deadline <= now && !self.sender_busy(o, now))
        {
            let o = self.orphans.take(id).expect("front exists");
            let out = self.unclaimed(o, now);
            self.emit(out);
        }
        self.report_vanished(now);
        self.expire_expected(now);
        self.release_behind();
        let due: Vec<u32> = self
            .resyncs
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(n, _)| *n)
            .collect();
        // Outcomes held for a re-read that the caller did not run (the
        // namespace is no longer watched) go out now.
        let stale: Vec<u32> = self
            .held
            .keys()
            .filter(|n| !self.resyncs.contains_key(n))
            .copied()
            .collect();
        for n in stale {
            self.release(n);
        }
        due.into_iter()
            .map(|n| {
                let mut plan = self.resyncs.remove(&n).expect("key from iteration");
                // The actions read since the flush was seen explain it too,
                // after those seen with it: the ring buffer and the socket
                // are read in either order (a link's RTM_NEWLINK may come
                // before its request), and a re-read is due only once both
                // are drained.
                for c in self.causes.all_recent(n, Op::Del, now) {
                    if !plan.causes.0.iter().any(|p| {
                        p.who.tid == c.who.tid && p.cause == c.cause && p.ifindex == c.ifindex
                    }) {
                        plan.causes.0.push(c);
                    }
                }
                (n, plan.causes)
            })
            .collect()
    }

    /// Up to when each watched namespace's notifications have all been
    /// read (None: not known to be since it was watched). Watching ends
    /// for the namespaces not named.
    pub fn notifications_read(&mut self, read: &[(u32, Option<Instant>)]) {
        let mut next = HashMap::with_capacity(read.len());
        for &(ns, at) in read {
            let old = self.read_to.get(&ns).copied().flatten();
            next.insert(ns, old.max(at));
        }
        self.read_to = next;
    }

    /// Whether every notification `netns` sent before `t` has been read.
    /// An acknowledged request's notification was sent before its ack, but
    /// the ack (read from the ring buffer) can be read long before the
    /// notification (read from the namespace's socket by another thread)
    /// when the tracer is behind: the request must not be reported without
    /// its notification, and the notification again, by itself.
    fn read_past(&self, netns: u32, t: Instant) -> bool {
        match self.read_to.get(&netns) {
            None => true,
            Some(read) => read.is_some_and(|r| r >= t),
        }
    }

    /// Outcomes held for `netns`'s re-read go out (after its removals).
    fn release(&mut self, netns: u32) {
        if let Some(held) = self.held.remove(&netns) {
            self.out.extend(held);
        }
    }

    /// Whether anything waits on time: [`Engine::tick`] has nothing to do
    /// otherwise (the caller need not wake up for it).
    pub fn waiting(&self) -> bool {
        self.pending.len() > 0
            || self.orphans.len() > 0
            || !self.resyncs.is_empty()
            || !self.recovered.is_empty()
            || !self.held.is_empty()
            || !self.behind.is_empty()
    }

    /// Flush everything still waiting (end of session).
    pub fn drain(&mut self, now: Instant) {
        // Every input was read to its end (`Session::finish`).
        self.read_to.clear();
        for r in self.recovered.values_mut() {
            r.until = Some(now);
        }
        for p in self.pending.values_mut() {
            p.deadline = now;
        }
        for o in self.orphans.values_mut() {
            o.deadline = now;
            o.sender_until = None;
        }
        let _ = self.tick(now);
        let behind = std::mem::take(&mut self.behind);
        for o in behind {
            self.emit_now(o);
        }
        let held: Vec<u32> = self.held.keys().copied().collect();
        for n in held {
            self.release(n);
        }
    }
}
