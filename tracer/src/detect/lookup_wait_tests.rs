//! The first `loop` event carries the FIB lookups that sent the packet
//! back: FIB lookup tracing is switched on by a flow's first looped packet,
//! so the event waits (up to 600 ms) for the lookups that come with the
//! flow's next packet, and is reported at once when they come.
use super::{test_stream::*, *};

/// One echo request of the peer (seq `seq`, received at `at`) and its
/// masqueraded copy sent back out 30 us later.
fn pass(seq: u16, at: u64) -> [Pkt; 2] {
    [
        rx(TS, PEER, HOST).at(at).echo(7, seq).id(seq),
        tx(TS, OWN, HOST)
            .at(at + 30_000)
            .ttl(63)
            .echo(41000, seq)
            .id(seq),
    ]
}

/// The lookups the kernel makes for the peer's packet on the broken
/// router: the local table (no match), then table 52's default route.
fn lookups(at: u64) -> [LookupObs; 2] {
    [
        lookup(at + 5_000, 255, -11, "", PEER, HOST),
        lookup(at + 8_000, 52, 0, "tailscale0", PEER, HOST),
    ]
}

#[test]
fn first_loop_event_carries_the_next_packets_lookups() {
    let mut d = det();
    let [o1, l1] = pass(1, ms(0));
    feed(&mut d, &[&o1, &l1]);
    // The first looped packet switched lookup tracing on.
    d.set_lookups_expected(true);
    assert!(
        run_until(&mut d, ms(0), ms(100)).is_empty(),
        "the first loop event waits for the lookups"
    );
    let [o2, l2] = pass(2, ms(100));
    d.packet(&o2.obs());
    for l in lookups(ms(100)) {
        d.lookup(&l);
    }
    d.packet(&l2.obs());
    let f = d.tick(ms(101));
    let i = only_loop(&f);
    assert_eq!(i.tables_tried, [(255, -11), (52, 0)]);
    assert_eq!(i.hairpin.as_ref().map(|h| h.table), Some(52));
    assert_eq!(i.original.l4, o1.brief().l4, "the flow's first packet");
    assert_eq!(i.packets, 2);
}

#[test]
fn without_lookup_tracing_the_loop_is_reported_after_100_ms() {
    let mut d = det();
    let [o1, l1] = pass(1, ms(0));
    feed(&mut d, &[&o1, &l1]);
    assert!(d.tick(ms(99)).is_empty());
    let f = d.tick(ms(101));
    assert!(only_loop(&f).tables_tried.is_empty());
}

#[test]
fn lookups_that_never_come_delay_the_first_event_at_most_600_ms() {
    let mut d = det();
    d.set_lookups_expected(true);
    let [o1, l1] = pass(1, ms(0));
    feed(&mut d, &[&o1, &l1]);
    assert!(run_until(&mut d, ms(0), ms(580)).is_empty());
    let f = d.tick(ms(601));
    assert!(only_loop(&f).tables_tried.is_empty());
}

#[test]
fn lookups_after_the_first_event_reach_its_summaries() {
    let mut d = det_with(DetectorConfig {
        summary_every: std::time::Duration::from_millis(100),
        ..DetectorConfig::default()
    });
    let [o1, l1] = pass(1, ms(0));
    feed(&mut d, &[&o1, &l1]);
    let f = d.tick(ms(101));
    assert!(only_loop(&f).tables_tried.is_empty());
    let [o2, l2] = pass(2, ms(150));
    d.packet(&o2.obs());
    for l in lookups(ms(150)) {
        d.lookup(&l);
    }
    d.packet(&l2.obs());
    let f = d.tick(ms(250));
    assert_eq!(kinds(&f), [("summary", 2, 1)]);
    assert_eq!(f[0].info().tables_tried, [(255, -11), (52, 0)]);
}

#[test]
fn lookups_of_another_destination_or_before_the_flow_are_not_its_own() {
    let mut d = det();
    d.set_lookups_expected(true);
    // A healthy lookup for the same addresses long before the loop.
    d.lookup(&lookup(ms(0), 254, 0, "enp1s0", PEER, HOST));
    let [o1, l1] = pass(1, ms(50));
    feed(&mut d, &[&o1, &l1]);
    d.lookup(&lookup(ms(60), 52, 0, "tailscale0", PEER, "192.168.1.91"));
    assert!(run_until(&mut d, ms(50), ms(600)).is_empty());
    let f = d.tick(ms(651));
    assert!(only_loop(&f).tables_tried.is_empty());
}
