//! `tracer guard --repair`: what to put back, when, and when to stop.
//!
//! Once an expectation's grace period has run out (the owner had its
//! chance to restore it), the object whose removal broke it is put back as
//! the kernel reported it, with a create-exclusive request in its
//! namespace (`netlink::apply`), after looking for it once more. A route
//! whose device is missing or down waits for it (said once). An object
//! removed again and again gets at most `limit` repairs within `window`;
//! then the guard stops (`guard_repair_gave_up`, naming the remover) and
//! the violation stays open.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::Present;
use crate::{
    event::{Body, Event, GuardRepair, Kind, Netns, Source, format_ts},
    netlink::{
        apply::{self, Applied, Wanted},
        decode::NlObj,
        names::errno_name,
    },
};

/// How often a repair that waits for its device looks again.
pub const DEVICE_RECHECK: Duration = Duration::from_millis(250);

/// `--repair`, `--repair-limit`, `--repair-window`, `--dry-run`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RepairConfig {
    pub dry_run: bool,
    pub limit: u32,
    pub window: Duration,
}

/// What puts objects back: the kernel (`Kernel`), or a stand-in in tests.
pub trait Fixer {
    fn put_back(
        &mut self,
        netns: &Netns,
        want: Wanted<'_>,
        seq: u32,
        send: bool,
        same: &(dyn Fn(&NlObj) -> bool + Sync),
    ) -> Result<Applied>;
}

/// Requests to the kernel, in the object's namespace.
pub struct Kernel;

impl Fixer for Kernel {
    fn put_back(
        &mut self,
        netns: &Netns,
        want: Wanted<'_>,
        seq: u32,
        send: bool,
        same: &(dyn Fn(&NlObj) -> bool + Sync),
    ) -> Result<Applied> {
        let file = netns
            .name
            .as_deref()
            .map(crate::enrich::netns_open::open)
            .transpose()?;
        apply::put_back(file.as_ref(), want, seq, send, same)
    }
}

/// The repairs of one watch.
#[derive(Debug, Default)]
pub struct RepairState {
    /// When requests were sent, within the window.
    history: VecDeque<Instant>,
    /// This breakage is dealt with (repaired, dry-run reported, found back,
    /// or failed): nothing more until it breaks again.
    done: bool,
    /// Waiting for a device: which, and when to look again.
    waiting: Option<(String, Instant)>,
    /// `guard_repair_gave_up` was said (until the window lets repairs in).
    gave_up: bool,
}

impl RepairState {
    /// It broke again (or holds again): a new breakage to deal with.
    pub fn rearm(&mut self) {
        self.done = false;
        self.waiting = None;
    }

    /// Whether a repair is to be looked at now.
    pub fn due(&self, now: Instant) -> bool {
        !self.done && self.waiting.as_ref().is_none_or(|(_, at)| now >= *at)
    }

    /// When a waiting repair looks again.
    pub fn next_check(&self) -> Option<Instant> {
        (!self.done).then_some(self.waiting.as_ref()?.1)
    }
}

/// The repair stage of the guard: config, the fixer and request numbers.
pub struct Repairer {
    pub cfg: RepairConfig,
    fixer: Box<dyn Fixer>,
    seq: u32,
}

/// One broken watch whose grace period is over.
pub struct Due<'a> {
    pub text: &'a str,
    pub netns: &'a Netns,
    pub removal: &'a Event,
    pub grace_end: Instant,
    pub state: &'a mut RepairState,
}

impl Repairer {
    pub fn new(cfg: RepairConfig, fixer: Box<dyn Fixer>) -> Repairer {
        // Sequence numbers that differ from run to run, like iproute2's.
        let seq = chrono::Utc::now().timestamp() as u32;
        Repairer { cfg, fixer, seq }
    }

    /// Deal with one due watch; the events it gives rise to.
    pub fn repair(&mut self, d: Due<'_>, now: Instant) -> Option<Event> {
        let window = self.cfg.window;
        while d
            .state
            .history
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            d.state.history.pop_front();
        }
        let made = d.state.history.len() as u32;
        if made >= self.cfg.limit {
            d.state.done = true;
            if std::mem::replace(&mut d.state.gave_up, true) {
                return None;
            }
            return Some(self.event(Kind::GuardRepairGaveUp, &d, None, made, None, None));
        }
        d.state.gave_up = false;
        let Some(c) = d.removal.change() else {
            d.state.done = true;
            return None;
        };
        let (want, id) = match (&c.rule, &c.route) {
            (Some(r), _) => (Wanted::Rule(r), Present::rule(r)),
            (_, Some(r)) => (Wanted::Route(r), Present::route(r)),
            _ => {
                d.state.done = true;
                return None;
            }
        };
        let same = |o: &NlObj| match o {
            NlObj::Route { route, .. } => Present::route(route) == id,
            NlObj::Rule { rule, .. } => Present::rule(rule) == id,
            _ => false,
        };
        self.seq = self.seq.wrapping_add(1);
        let send = !self.cfg.dry_run;
        let applied = self.fixer.put_back(d.netns, want, self.seq, send, &same);
        // Milliseconds, to the microsecond.
        let ms = || {
            let us = Instant::now()
                .saturating_duration_since(d.grace_end)
                .as_micros();
            us as f64 / 1e3
        };
        match applied {
            Ok(Applied::Sent { seq, error }) => {
                d.state.done = true;
                d.state.history.push_back(now);
                let n = d.state.history.len() as u32;
                let result = Some(errno_name(error));
                Some(self.event(Kind::GuardRepair, &d, result, n, Some(seq), Some(ms())))
            }
            Ok(Applied::DryRun) => {
                d.state.done = true;
                Some(self.event(Kind::GuardRepair, &d, None, made + 1, None, None))
            }
            Ok(Applied::Present) => {
                log::debug!("{}: back before the repair, nothing sent", d.text);
                d.state.done = true;
                None
            }
            Ok(Applied::NoDevice { dev, .. }) => {
                let first = d.state.waiting.is_none();
                d.state.waiting = Some((dev.clone(), now + DEVICE_RECHECK));
                first.then(|| {
                    let mut e = self.event(Kind::GuardRepairWaiting, &d, None, made, None, None);
                    if let Body::GuardRepair(r) = &mut e.body {
                        r.waiting_for = Some(dev);
                    }
                    e
                })
            }
            Ok(Applied::Unbuildable(e)) => {
                log::warn!("{}: cannot be put back: {e}", d.text);
                d.state.done = true;
                None
            }
            Err(e) => {
                log::warn!("{}: repair failed: {e:#}", d.text);
                d.state.done = true;
                None
            }
        }
    }

    fn event(
        &self,
        kind: Kind,
        d: &Due<'_>,
        result: Option<crate::event::Name>,
        attempt: u32,
        nl_seq: Option<u32>,
        ms_after_grace: Option<f64>,
    ) -> Event {
        let c = d.removal.change();
        Event {
            ts: format_ts(chrono::Utc::now()),
            kind,
            source: Source::Tracer,
            body: Body::GuardRepair(Box::new(GuardRepair {
                expectation: d.text.to_string(),
                netns: d.netns.clone(),
                rule: c.and_then(|c| c.rule.clone()),
                route: c.and_then(|c| c.route.clone()),
                result,
                attempt,
                limit: self.cfg.limit,
                window_secs: self.cfg.window.as_secs_f64(),
                dry_run: self.cfg.dry_run,
                nl_seq,
                ms_after_grace,
                waiting_for: None,
                removal: Box::new(d.removal.clone()),
            })),
        }
    }
}

#[cfg(test)]
#[path = "repair_tests.rs"]
mod tests;
