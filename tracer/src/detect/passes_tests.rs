//! A loop of several passes: a forwarder hands the looped copy back to the
//! router as it came (tailscaled, for a subnet the router advertises
//! itself), the router sends it out again one TTL lower, and masquerade
//! may give each pass another echo id. One flow, one `Loop`, every pass
//! counted, the lowest TTL reported.
use super::test_stream::*;

/// Pass `n` (1-based) of the peer's request seq `seq`: the copy coming
/// back in (pass 1: the peer's own request) and the copy sent out.
fn pass(seq: u16, n: u8, at: u64) -> [Pkt; 2] {
    let ip_id = 100 + seq;
    let echo_id = |k: u8| if k <= 1 { 7 } else { 7 + u16::from(k) };
    let back_in = if n == 1 {
        rx(TS, PEER, HOST).echo(7, seq)
    } else {
        // As it went out, written back unchanged (same TTL).
        rx(TS, OWN, HOST)
            .ttl(64 - (n - 1))
            .echo(echo_id(n - 1), seq)
    };
    [
        back_in.at(at).id(ip_id),
        tx(TS, OWN, HOST)
            .at(at + 30_000)
            .ttl(64 - n)
            .echo(echo_id(n), seq)
            .id(ip_id),
    ]
}

#[test]
fn every_pass_of_a_reflected_loop_counts_in_one_flow() {
    let mut d = det();
    let mut t = ms(0);
    let mut out = Vec::new();
    for seq in 1..=2u16 {
        for n in 1..=63u8 {
            for p in pass(seq, n, t) {
                d.packet(&p.obs());
            }
            t += 50_000;
        }
        // Reported 100 ms after it was found (no lookups come here).
        out.extend(run_until(&mut d, t, t + ms(150) - T0));
        t += ms(200) - T0;
    }
    out.extend(run_until(&mut d, t, t + ms(6000) - T0));
    assert_eq!(kinds(&out), [("loop", 63, 63), ("end", 126, 63)]);
    let first = out[0].info();
    assert_eq!(first.original.ttl, 64);
    assert_eq!(first.looped.ttl, 63, "the first pass's copy");
    assert_eq!(first.lowest_ttl, 1, "one TTL lower per pass");
    assert_eq!(out[1].info().lowest_ttl, 1);
}

#[test]
fn a_single_pass_loop_reports_its_copys_ttl() {
    let mut d = det();
    for p in pass(1, 1, ms(0)) {
        d.packet(&p.obs());
    }
    let f = d.tick(ms(101));
    let i = only_loop(&f);
    assert_eq!((i.packets, i.lowest_ttl), (1, 63));
}

#[test]
fn ipv6_passes_with_new_echo_ids_count_in_one_flow() {
    let mut d = det();
    let mut t = ms(0);
    // Pass 1: the peer's request and its masqueraded copy (same echo id);
    // then the copy comes back in and goes out again with another echo id
    // each time.
    d.packet(&rx(TS, PEER6, HOST6).at(t).obs());
    for n in 1..=10u8 {
        let out = tx(TS, OWN6, HOST6)
            .at(t + 30_000)
            .ttl(64 - n)
            .echo(6 + u16::from(n), 1);
        d.packet(&out.obs());
        t += 50_000;
        let back = rx(TS, OWN6, HOST6)
            .at(t)
            .ttl(64 - n)
            .echo(6 + u16::from(n), 1);
        d.packet(&back.obs());
    }
    let f = run_until(&mut d, t, t + ms(6000) - T0);
    assert_eq!(kinds(&f), [("loop", 10, 10), ("end", 10, 0)]);
    assert_eq!(f[0].info().lowest_ttl, 54);
}
