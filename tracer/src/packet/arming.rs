//! When the tc programs run: always, or only while there is reason to.
//!
//! Any tc program on a busy interface costs a share of its packet rate,
//! even one that returns at once (the tcx dispatch, an indirect call, the
//! `__sk_buff` set-up: 2–3.5% on the benchmark VM, BENCHMARKS.md). On
//! demand (the default), the tc programs (tcx links, or classic tc filters
//! before Linux 6.6) are attached ("armed") only:
//! - for a while after the tracer starts, and after any notification (a
//!   route, rule, nexthop, link or address change) in a namespace that
//!   holds a watched interface: a loop a change causes starts with the
//!   change;
//! - while loop candidates keep coming (a loop is being reported), and
//!   after the namespace sent an ICMP time-exceeded message (`expiry`: a
//!   packet that looped until its TTL ran out);
//! - for a short window in every period otherwise (sampling), so that a
//!   loop with no change behind it (one that was there before the tracer
//!   started, or one an upstream router causes) is still found, within
//!   the period for a flow that sends at least one packet per window.
//!
//! Disarmed, packets on the interface run no program of the tracer's.
//! Classic filters come and go under the `clsact` qdisc, which stays (so
//! `tc monitor` shows them added and deleted about once a second). The
//! tracepoint fallbacks serve every watched interface and stay attached.
use std::time::Duration;

/// How long after a loop candidate the programs stay armed (a loop's
/// packets keep coming; its summaries and end need them).
const LOOP_LINGER: Duration = Duration::from_secs(30);

/// `--packet-programs`: when the tc programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arming {
    /// Attached for as long as the interface is watched.
    Always,
    /// Attached on demand (see the module's documentation).
    OnDemand {
        /// Armed for this long after start-up and after each change.
        after_change: Duration,
        /// One sampling window per this period...
        sample_every: Duration,
        /// ...this long.
        sample_for: Duration,
        /// Asked for (`--packet-programs on-demand`), not the default: an
        /// interface watched by the tracepoints, whose programs stay
        /// attached, is worth a warning only then.
        asked: bool,
    },
}

impl Arming {
    /// On demand, armed for `after_change` after each change, sampled for
    /// 100 ms in every second otherwise.
    pub fn on_demand(after_change: Duration, asked: bool) -> Arming {
        Arming::OnDemand {
            after_change,
            sample_every: Duration::from_secs(1),
            sample_for: Duration::from_millis(100),
            asked,
        }
    }

    /// As the `ready` event and the metrics name it.
    pub fn name(&self) -> &'static str {
        match self {
            Arming::Always => "always",
            Arming::OnDemand { .. } => "on_demand",
        }
    }
}

/// The arming state: whether the programs should be attached now.
#[derive(Debug)]
pub struct Armer {
    mode: Arming,
    /// Armed until then (monotonic ns) for a change or a loop.
    until: u64,
    /// The current sampling window ends then.
    window_end: u64,
    /// The next sampling window starts then.
    next_window: u64,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Armer {
    /// Armed from `now_ns` for the time after a change (start-up counts as
    /// one).
    pub fn new(mode: Arming, now_ns: u64) -> Self {
        let mut a = Armer {
            mode,
            until: 0,
            window_end: 0,
            next_window: 0,
        };
        a.changed(now_ns);
        a
    }

    pub fn mode(&self) -> Arming {
        self.mode
    }

    /// A change in a namespace that holds a watched interface.
    pub fn changed(&mut self, now_ns: u64) {
        if let Arming::OnDemand { after_change, .. } = self.mode {
            self.until = self.until.max(now_ns.saturating_add(ns(after_change)));
        }
    }

    /// A loop candidate arrived.
    pub fn loop_seen(&mut self, now_ns: u64) {
        self.until = self.until.max(now_ns.saturating_add(ns(LOOP_LINGER)));
    }

    /// Whether the programs should be attached at `now_ns` (called on
    /// every tick: it opens the sampling windows).
    pub fn want(&mut self, now_ns: u64) -> bool {
        let Arming::OnDemand {
            sample_every,
            sample_for,
            ..
        } = self.mode
        else {
            return true;
        };
        if now_ns < self.until {
            return true;
        }
        if now_ns >= self.next_window {
            self.window_end = now_ns.saturating_add(ns(sample_for));
            self.next_window = now_ns.saturating_add(ns(sample_every));
        }
        now_ns < self.window_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    fn on_demand(after_s: u64) -> Arming {
        Arming::on_demand(Duration::from_secs(after_s), true)
    }

    #[test]
    fn always_is_always_armed() {
        let mut a = Armer::new(Arming::Always, 5 * S);
        assert!((0..100).all(|i| a.want(5 * S + i * 100 * MS)));
    }

    #[test]
    fn armed_after_start_then_sampled() {
        let start = 1_000 * S;
        let mut a = Armer::new(on_demand(10), start);
        // Ticks every 100 ms for 20 s.
        let ticks: Vec<(u64, bool)> = (0..200)
            .map(|i| {
                let t = start + i * 100 * MS;
                (t, a.want(t))
            })
            .collect();
        assert!(
            ticks
                .iter()
                .filter(|(t, _)| *t < start + 10 * S)
                .all(|(_, w)| *w)
        );
        // After it, one tick in ten (one 100 ms window per second).
        let after: Vec<bool> = ticks
            .iter()
            .filter(|(t, _)| *t >= start + 10 * S)
            .map(|(_, w)| *w)
            .collect();
        assert_eq!(after.len(), 100);
        assert_eq!(after.iter().filter(|w| **w).count(), 10, "{after:?}");
        for second in after.chunks(10) {
            assert_eq!(second.iter().filter(|w| **w).count(), 1, "{second:?}");
        }
    }

    #[test]
    fn a_change_and_a_loop_arm_it_again() {
        let start = 50 * S;
        let mut a = Armer::new(on_demand(5), start);
        let mut t = start + 6 * S;
        // Sampling: a window at the first tick after the change's time.
        assert!(a.want(t));
        t += 200 * MS;
        assert!(!a.want(t));
        a.changed(t);
        assert!((0..50).all(|i| a.want(t + i * 100 * MS)));
        t += 6 * S;
        assert!(a.want(t)); // a window
        t += 200 * MS;
        assert!(!a.want(t));
        a.loop_seen(t);
        assert!(a.want(t + 29 * S));
        // A later change never shortens a loop's time.
        a.changed(t + S);
        assert!(a.want(t + 29 * S + 500 * MS));
    }
}
