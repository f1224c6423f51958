//! Loops as flows: flows counted apart, summaries while a loop goes on and
//! an end when it stops, repeats and looped copies kept in their flow; the
//! capture of loops' packets; state bounded and pruned.
use std::{sync::Arc, time::Duration};

use super::{recent::Recent, test_stream::*, *};
use crate::collect::packet::L4;

#[test]
fn two_flows_at_once_are_counted_apart() {
    let mut d = det();
    // Two pings from the same peer to the same host (echo ids 7 and 8),
    // interleaved; masquerade gives them ids 41000 and 41001.
    for seq in 1..=3u16 {
        let t = u64::from(seq) * 10;
        let a = 0x100 + seq;
        let b = 0x200 + seq;
        d.packet(&rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(a).obs());
        if seq <= 2 {
            d.packet(&rx(TS, PEER, HOST).at(ms(t + 1)).echo(8, seq).id(b).obs());
            let looped_b = tx(TS, OWN, HOST).at(ms(t + 2)).ttl(63);
            d.packet(&looped_b.echo(41001, seq).id(b).obs());
        }
        let looped_a = tx(TS, OWN, HOST).at(ms(t) + 500_000).ttl(63);
        d.packet(&looped_a.echo(41000, seq).id(a).obs());
    }
    let f = d.tick(ms(200));
    assert_eq!(kinds(&f), [("loop", 3, 3), ("loop", 2, 2)]);
    assert_eq!(
        f[0].info().original.l4,
        L4::Echo {
            request: true,
            id: 7,
            seq: 1
        }
    );
    assert_eq!(
        f[1].info().original.l4,
        L4::Echo {
            request: true,
            id: 8,
            seq: 1
        }
    );
    assert_eq!(
        f[0].info().looped.l4,
        L4::Echo {
            request: true,
            id: 41000,
            seq: 1
        }
    );
    assert_eq!(
        (f[0].info().first_seen_ns, f[0].info().last_seen_ns),
        (ms(10), ms(30) + 500_000)
    );
    assert_eq!(
        (f[1].info().first_seen_ns, f[1].info().last_seen_ns),
        (ms(11), ms(22))
    );
    // Shutdown ends both.
    let f = d.finish(ms(300));
    assert_eq!(kinds(&f), [("end", 3, 0), ("end", 2, 0)]);
    assert!(d.flows.is_empty());
}

#[test]
fn summaries_only_while_looping_then_end_and_restart() {
    let mut d = det_with(DetectorConfig {
        summary_every: Duration::from_secs(2),
        end_after: Duration::from_secs(5),
        ..DetectorConfig::default()
    });
    let mut seen = Vec::new();
    for step in (0..=12_000u64).step_by(100) {
        // Looping every 500 ms until 3 s, and again from 10 s.
        if step % 500 == 0 && (step <= 3000 || step == 10_000) {
            let seq = u16::try_from(step / 500).expect("small") + 1;
            let id = 0x1000 + seq;
            d.packet(&rx(TS, PEER, HOST).at(ms(step)).echo(7, seq).id(id).obs());
            let looped = tx(TS, OWN, HOST).at(ms(step) + 20_000).ttl(63);
            d.packet(&looped.echo(7, seq).id(id).obs());
        }
        for f in d.tick(ms(step)) {
            seen.push((step, kinds(std::slice::from_ref(&f))[0]));
        }
    }
    assert_eq!(
        seen,
        [
            (200, ("loop", 1, 1)),
            (2200, ("summary", 5, 4)),
            (4200, ("summary", 7, 2)),
            // No summary at 6200: nothing new. Last looped at 3 s.
            (8100, ("end", 7, 0)),
            // It restarts: a new loop.
            (10_200, ("loop", 1, 1)),
        ]
    );
}

#[test]
fn repeated_looping_packets_are_one_flow() {
    let mut d = det();
    for seq in 1..=20u16 {
        let t = u64::from(seq) * 10;
        d.packet(&rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(seq).obs());
        let looped = tx(TS, OWN, HOST).at(ms(t) + 30_000).ttl(63);
        d.packet(&looped.echo(41000, seq).id(seq).obs());
    }
    let f = d.tick(ms(300));
    let i = only_loop(&f);
    assert_eq!((i.packets, i.new_packets), (20, 20));
    assert_eq!(
        i.original.l4,
        L4::Echo {
            request: true,
            id: 7,
            seq: 1
        }
    );
    assert_eq!(
        (i.first_seen_ns, i.last_seen_ns),
        (ms(10), ms(200) + 30_000)
    );
}

#[test]
fn looped_copy_coming_back_stays_in_its_flow() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST).at(us(0));
    let first = tx(TS, OWN, HOST).at(us(30)).ttl(63).echo(41000, 1);
    // The tailnet hands it back; the router loops it again.
    let back = rx(TS, OWN, HOST).at(us(500)).ttl(62).echo(41000, 1);
    let again = tx(TS, OWN, HOST).at(us(530)).ttl(61).echo(41000, 1);
    feed(&mut d, &[&orig, &first, &back, &again]);
    let f = d.tick(ms(200));
    let i = only_loop(&f);
    assert_eq!((i.packets, i.original.src), (2, ip(PEER)));
    assert_eq!(i.looped, first.brief());
    assert_eq!(i.last_seen_ns, us(530));
    assert!(i.snat);
}

#[test]
fn capture_holds_originals_and_looped_copies_of_loops_only() {
    let mut d = det();
    let healthy = rx(TS, PEER2, "192.168.1.91").at(us(0)).id(0x5555);
    let forwarded = tx(LAN, OWN_LAN, "192.168.1.91")
        .at(us(20))
        .ttl(63)
        .id(0x5555);
    let orig = rx(TS, PEER, HOST).at(us(100));
    let looped = tx(TS, OWN, HOST).at(us(130)).ttl(63).echo(41000, 1);
    feed(&mut d, &[&healthy, &forwarded, &looped, &orig]);
    let c = d.take_capture();
    assert_eq!(
        c,
        [(us(100), orig.obs().bytes), (us(130), looped.obs().bytes)]
    );
    assert!(d.take_capture().is_empty());

    // Kept per flow up to capture_per_flow.
    let mut d = det_with(DetectorConfig {
        capture_per_flow: 3,
        ..DetectorConfig::default()
    });
    let mut want = Vec::new();
    for seq in 1..=3u16 {
        let t = u64::from(seq) * 10;
        let o = rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(seq);
        let l = tx(TS, OWN, HOST)
            .at(ms(t) + 30_000)
            .ttl(63)
            .echo(41000, seq)
            .id(seq);
        feed(&mut d, &[&o, &l]);
        want.push((o.0.ts_ns, o.obs().bytes));
        want.push((l.0.ts_ns, l.obs().bytes));
    }
    want.truncate(3);
    assert_eq!(d.take_capture(), want);
}

#[test]
fn state_is_bounded_and_pruned() {
    let mut r = Recent::new(4);
    let brief = |ts: u64, id: u16| rx(TS, PEER, HOST).at(ts).id(id).brief();
    for i in 0..10u16 {
        r.push(recent::Entry::new(
            brief(ms(u64::from(i)), i),
            Arc::from(&[][..]),
        ));
    }
    assert_eq!(r.len(), 4);
    assert!(r.get(5).is_none());
    assert_eq!(r.get(6).map(|e| e.p.ip_id), Some(Some(6)));
    assert!(r.bucket(&MatchKey::of(&brief(0, 1))).is_empty());
    assert_eq!(r.bucket(&MatchKey::of(&brief(0, 9))), [9]);
    r.prune(ms(8));
    assert_eq!(r.len(), 2);

    let mut d = det();
    for seq in 1..=100u16 {
        let t = u64::from(seq);
        d.packet(&rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(seq).obs());
        d.lookup(&lookup(ms(t) + 5_000, 254, 0, "enp1s0", PEER, HOST));
    }
    let looped = tx(TS, OWN, HOST)
        .at(ms(100) + 30_000)
        .ttl(63)
        .echo(41000, 100)
        .id(100);
    d.packet(&looped.obs());
    assert_eq!(d.flows.len(), 1);
    assert!(!d.ifaces.is_empty());
    run_until(&mut d, ms(200), ms(6000));
    assert!(d.flows.is_empty());
    assert!(d.ifaces.is_empty());
    assert!(d.by_addrs.is_empty());
    assert_eq!(d.lookups.iter().count(), 0);
}
