//! The repair policy on injected outcomes: one repair per breakage after
//! the grace period, none while the owner restores in time, `limit`
//! repairs then one `guard_repair_gave_up` naming the remover, a route
//! that waits for its device (said once), and `--dry-run`.
use std::{cell::RefCell, rc::Rc, sync::Arc, time::Duration};

use super::*;
use crate::{
    event::{Change, Family, Process, Route, StateEntry},
    guard::{Guard, expect::Expectation},
    netlink::names::TableNames,
};

/// Answers scripted per call (the last one repeats); the calls made.
#[derive(Default)]
struct Script {
    answers: Vec<Applied>,
    calls: Vec<(u32, bool)>,
}

struct Fake(Rc<RefCell<Script>>);

impl Fixer for Fake {
    fn put_back(
        &mut self,
        _netns: &Netns,
        _want: Wanted<'_>,
        seq: u32,
        send: bool,
        _same: &(dyn Fn(&NlObj) -> bool + Sync),
    ) -> Result<Applied> {
        let mut s = self.0.borrow_mut();
        s.calls.push((seq, send));
        let n = s.calls.len().min(s.answers.len()) - 1;
        Ok(match s.answers[n].clone() {
            Applied::Sent { error, .. } => Applied::Sent { seq, error },
            other => other,
        })
    }
}

fn ns() -> Netns {
    Netns {
        inode: Some(4026532177),
        name: Some("router".into()),
    }
}

fn throw() -> Route {
    Route {
        family: Some(Family::Inet),
        table: Some(52),
        rtype: Some("throw".into()),
        dst: Some("192.168.1.0/24".into()),
        ..Route::default()
    }
}

fn ev(kind: Kind, body: Body) -> Event {
    Event {
        ts: "2026-04-10T15:52:46.118310Z".into(),
        kind,
        source: Source::Tracepoint,
        body,
    }
}

fn change(kind: Kind, comm: &str) -> Event {
    ev(
        kind,
        Body::Change(Box::new(Change {
            process: Some(Arc::new(Process {
                pid: 812,
                comm: comm.into(),
                ..Process::default()
            })),
            netns: ns(),
            rule: None,
            route: Some(throw()),
            result: Some("ok".into()),
            cause: None,
            old: None,
            nexthop: None,
            old_nexthop: None,
            cause_nhid: None,
            nl_seq: None,
            note: None,
        })),
    )
}

fn guard(cfg: RepairConfig, answers: Vec<Applied>) -> (Guard, Rc<RefCell<Script>>) {
    let t = "throw 192.168.1.0/24 table 52";
    let e = Expectation::parse(t, &TableNames::load()).unwrap();
    let script = Rc::new(RefCell::new(Script {
        answers,
        calls: Vec::new(),
    }));
    let mut g = Guard::new(vec![(t.into(), e)], &[ns()], Duration::ZERO, None)
        .with_repair(Repairer::new(cfg, Box::new(Fake(script.clone()))));
    g.event(&ev(
        Kind::Snapshot,
        Body::State(Box::new(StateEntry {
            netns: ns(),
            rule: None,
            route: Some(throw()),
        })),
    ));
    assert!(g.start().is_empty());
    (g, script)
}

const CFG: RepairConfig = RepairConfig {
    dry_run: false,
    limit: 2,
    window: Duration::from_secs(600),
};

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn repair(e: &Event) -> &GuardRepair {
    match &e.body {
        Body::GuardRepair(r) => r,
        other => panic!("not a repair: {other:?}"),
    }
}

#[test]
fn a_removal_past_the_grace_period_is_repaired_once() {
    let (mut g, script) = guard(CFG, vec![Applied::Sent { seq: 0, error: 0 }]);
    assert!(
        g.event(&change(Kind::RouteDel, "systemd-network"))
            .is_empty()
    );
    let out = g.tick();
    assert_eq!(kinds(&out), ["guard_violation", "guard_repair"]);
    let r = repair(&out[1]);
    assert_eq!(r.result.as_deref(), Some("ok"));
    assert_eq!((r.attempt, r.limit, r.dry_run), (1, 2, false));
    assert_eq!(r.route.as_ref(), Some(&throw()));
    assert_eq!(r.removal.kind, Kind::RouteDel);
    assert_eq!(r.nl_seq, Some(script.borrow().calls[0].0));
    // Nothing more until the repair's own addition arrives.
    assert!(g.tick().is_empty());
    assert_eq!(script.borrow().calls.len(), 1);
    let back = g.event(&change(Kind::RouteAdd, "tracer"));
    assert_eq!(kinds(&back), ["guard_restored"]);
}

#[test]
fn a_remover_that_keeps_removing_gets_limit_repairs_then_gave_up() {
    let (mut g, script) = guard(CFG, vec![Applied::Sent { seq: 0, error: 0 }]);
    let mut all = Vec::new();
    for _ in 0..4 {
        g.event(&change(Kind::RouteDel, "remover"));
        all.extend(g.tick());
        all.extend(g.event(&change(Kind::RouteAdd, "tracer")));
    }
    // The fourth removal: nothing repaired, nothing said again.
    g.event(&change(Kind::RouteDel, "remover"));
    all.extend(g.tick());
    let k = kinds(&all);
    assert_eq!(
        k.iter().filter(|k| **k == "guard_repair").count(),
        2,
        "{k:?}"
    );
    assert_eq!(
        k.iter().filter(|k| **k == "guard_repair_gave_up").count(),
        1,
        "{k:?}"
    );
    assert_eq!(script.borrow().calls.len(), 2);
    let gave = all
        .iter()
        .find(|e| e.kind == Kind::GuardRepairGaveUp)
        .unwrap();
    let r = repair(gave);
    assert_eq!(r.attempt, 2);
    let who = r.removal.change().unwrap().process.as_ref().unwrap();
    assert_eq!(who.comm, "remover");
    // The violation stays open.
    assert!(g.status().values().all(|holds| !holds));
}

#[test]
fn a_route_whose_device_is_gone_waits_and_says_so_once() {
    let gone = Applied::NoDevice {
        dev: "tailscale0".into(),
        exists: false,
    };
    let (mut g, script) = guard(
        CFG,
        vec![gone.clone(), gone, Applied::Sent { seq: 0, error: 0 }],
    );
    g.event(&change(Kind::RouteDel, "ip"));
    let out = g.tick();
    assert_eq!(kinds(&out), ["guard_violation", "guard_repair_waiting"]);
    assert_eq!(repair(&out[1]).waiting_for.as_deref(), Some("tailscale0"));
    // Not looked at again before its time.
    assert!(g.tick().is_empty());
    assert_eq!(script.borrow().calls.len(), 1);
    let mut out = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(DEVICE_RECHECK);
        out.extend(g.tick());
    }
    assert_eq!(kinds(&out), ["guard_repair"]);
    assert_eq!(repair(&out[0]).result.as_deref(), Some("ok"));
    assert_eq!(script.borrow().calls.len(), 3);
}

#[test]
fn dry_run_sends_nothing_and_says_what_it_would_do() {
    let cfg = RepairConfig {
        dry_run: true,
        ..CFG
    };
    let (mut g, script) = guard(cfg, vec![Applied::DryRun]);
    g.event(&change(Kind::RouteDel, "ip"));
    let out = g.tick();
    assert_eq!(kinds(&out), ["guard_violation", "guard_repair"]);
    let r = repair(&out[1]);
    assert!(r.dry_run && r.result.is_none() && r.nl_seq.is_none());
    assert!(!script.borrow().calls[0].1, "nothing sent");
}

#[test]
fn back_before_the_request_is_left_alone() {
    let (mut g, script) = guard(CFG, vec![Applied::Present]);
    g.event(&change(Kind::RouteDel, "ip"));
    assert_eq!(kinds(&g.tick()), ["guard_violation"]);
    assert!(g.tick().is_empty());
    assert_eq!(script.borrow().calls.len(), 1);
}
