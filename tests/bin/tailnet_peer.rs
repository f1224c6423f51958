//! tailnet_peer: plays a tailnet peer (100.119.140.15) on the router side of
//! the lab's TUN device `tailscale0`, as tailscaled would hand its packets to
//! the kernel. Run it inside the router's namespace (`ip netns exec`).
//!
//!   tailnet_peer [--dev tailscale0] [--src 100.119.140.15] [--dst 192.168.1.90]
//!                [--id 7] [--count 3] [--interval-ms 200] [--timeout-ms 2000]
//!                [--ttl 64]
//!
//! Attaches to the existing TUN (IFF_TUN | IFF_NO_PI), prints `peer: ready`,
//! then writes COUNT IPv4 ICMP echo requests SRC > DST (echo id ID, seq
//! 1..COUNT, distinct IP ids), one every INTERVAL ms. Every packet the router
//! sends into the TUN is printed on one line, e.g.
//!
//!   peer: got 192.168.1.90 > 100.119.140.15 icmp echo-reply id 7 seq 1 ttl 63
//!   peer: got 100.98.98.126 > 192.168.1.90 icmp echo-request id 7 seq 1 ttl 63 (looped back)
//!
//! the second being the routing loop as the peer sees it: its own request,
//! routed back to the tailnet with the router's address as source. Echo
//! requests addressed to SRC are answered. The peer stops once every request
//! got an echo reply or came back looped, or TIMEOUT ms after the last
//! request, and prints a summary line:
//!
//!   peer: summary sent=3 replies=3 looped=0 other=0 unanswered=0
//!
//! Exits 0 unless the device cannot be used (status 1) or the arguments are
//! wrong (status 2).
use std::{
    collections::BTreeSet,
    io::Write,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
/// Echo payload length (as ping's default): an 84-byte IPv4 packet.
const PAYLOAD: usize = 56;

struct Args {
    dev: String,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    count: u16,
    interval: Duration,
    timeout: Duration,
    ttl: u8,
}

fn usage(msg: &str) -> ! {
    eprintln!("tailnet_peer: {msg}");
    eprintln!(
        "usage: tailnet_peer [--dev NAME] [--src ADDR] [--dst ADDR] [--id N] [--count N] \
         [--interval-ms MS] [--timeout-ms MS] [--ttl N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        dev: "tailscale0".into(),
        src: Ipv4Addr::new(100, 119, 140, 15),
        dst: Ipv4Addr::new(192, 168, 1, 90),
        id: 7,
        count: 3,
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(2000),
        ttl: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            usage("plays tailnet peer SRC and pings DST through the TUN device");
        }
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> T {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("bad value for {flag}: {v}")))
        }
        match flag.as_str() {
            "--dev" => {
                if value.is_empty() || value.len() >= libc::IFNAMSIZ {
                    usage(&format!("bad interface name: {value}"));
                }
                a.dev = value
            }
            "--src" => a.src = num(&flag, &value),
            "--dst" => a.dst = num(&flag, &value),
            "--id" => a.id = num(&flag, &value),
            "--count" => a.count = num(&flag, &value),
            "--interval-ms" => a.interval = Duration::from_millis(num(&flag, &value)),
            "--timeout-ms" => a.timeout = Duration::from_millis(num(&flag, &value)),
            "--ttl" => a.ttl = num(&flag, &value),
            _ => usage(&format!("unknown argument: {flag}")),
        }
    }
    a
}

/// Attaches to the existing TUN device `dev` (no packet-info header).
fn open_tun(dev: &str) -> std::io::Result<OwnedFd> {
    // SAFETY: open(2) with a NUL-terminated path; the fd is owned from here.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is not owned elsewhere.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which ifr is.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Waits (up to 5 s) for the kernel to see `dev` as operational. Attaching
/// turns the carrier on, but the kernel activates the device's queue a
/// little later (linkwatch); until then what the router sends into the TUN
/// is dropped, and the first reply would be lost.
fn wait_operational(dev: &str) -> std::io::Result<()> {
    let path = format!("/sys/class/net/{dev}/operstate");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = std::fs::read_to_string(&path)?;
        if state.trim() == "up" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(std::io::Error::other(format!(
                "{dev} is still `{}` 5 s after attaching ({path})",
                state.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (DF set, no options) around an ICMP message whose
/// checksum field is computed here.
fn ipv4_icmp(src: Ipv4Addr, dst: Ipv4Addr, ip_id: u16, ttl: u8, mut icmp: Vec<u8>) -> Vec<u8> {
    icmp[2..4].copy_from_slice(&[0, 0]);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut p = Vec::with_capacity(total as usize);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&ip_id.to_be_bytes());
    p.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    p.extend_from_slice(&[ttl, ICMP, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&icmp);
    p
}

fn echo(kind: u8, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// What a packet from the router is, as far as the peer cares.
#[derive(Debug, PartialEq)]
enum Packet {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        proto: u8,
        /// The bytes after the IPv4 header (as far as captured).
        l4: Vec<u8>,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hlim: u8,
        next: u8,
        l4: Vec<u8>,
    },
    Other(usize),
}

fn parse(p: &[u8]) -> Packet {
    match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
            let l4 = p.get(ihl.max(20)..total.max(ihl)).unwrap_or(&[]).to_vec();
            Packet::V4 {
                src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
                dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
                ttl: p[8],
                proto: p[9],
                l4,
            }
        }
        Some(6) if p.len() >= 40 => {
            let addr = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&p[o..o + 16]).unwrap());
            Packet::V6 {
                src: addr(8),
                dst: addr(24),
                hlim: p[7],
                next: p[6],
                l4: p[40..].to_vec(),
            }
        }
        _ => Packet::Other(p.len()),
    }
}

/// ICMP echo fields: (type, id, seq) when `l4` is an echo request/reply.
fn echo_fields(l4: &[u8]) -> Option<(u8, u16, u16)> {
    if l4.len() < 8 || !(l4[0] == ECHO_REQUEST || l4[0] == ECHO_REPLY) || l4[1] != 0 {
        return None;
    }
    Some((
        l4[0],
        u16::from_be_bytes([l4[4], l4[5]]),
        u16::from_be_bytes([l4[6], l4[7]]),
    ))
}

fn describe(p: &Packet) -> String {
    match p {
        Packet::V4 {
            src,
            dst,
            ttl,
            proto,
            l4,
        } => {
            let what = match (*proto, echo_fields(l4)) {
                (ICMP, Some((t, id, seq))) => format!(
                    "icmp {} id {id} seq {seq}",
                    if t == ECHO_REQUEST {
                        "echo-request"
                    } else {
                        "echo-reply"
                    }
                ),
                (ICMP, None) if l4.len() >= 2 => format!("icmp type {} code {}", l4[0], l4[1]),
                (6 | 17, _) if l4.len() >= 4 => format!(
                    "{} {} > {}",
                    if *proto == 6 { "tcp" } else { "udp" },
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]])
                ),
                _ => format!("proto {proto}"),
            };
            format!("{src} > {dst} {what} ttl {ttl}")
        }
        Packet::V6 {
            src,
            dst,
            hlim,
            next,
            l4,
        } => {
            // Skip a hop-by-hop options header (MLD reports carry one).
            let (next, l4) = match (*next, l4.get(..2)) {
                (0, Some(&[n, len])) => (n, l4.get((usize::from(len) + 1) * 8..).unwrap_or(&[])),
                _ => (*next, l4.as_slice()),
            };
            let what = match (next, l4.first()) {
                (ICMPV6, Some(t)) => format!("icmp6 type {t}"),
                _ => format!("next-header {next}"),
            };
            format!("{src} > {dst} {what} hlim {hlim}")
        }
        Packet::Other(len) => format!("a {len}-byte packet that is neither IPv4 nor IPv6"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "peer: {line}");
    let _ = out.flush();
}

fn write_packet(fd: &OwnedFd, p: &[u8]) -> std::io::Result<()> {
    // SAFETY: p is a valid buffer of p.len() bytes.
    let n = unsafe { libc::write(fd.as_raw_fd(), p.as_ptr().cast(), p.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if n as usize != p.len() {
        return Err(std::io::Error::other(format!(
            "short write: {n} of {} bytes",
            p.len()
        )));
    }
    Ok(())
}

/// Waits up to `timeout` for the TUN to be readable; true if it is.
fn readable(fd: &OwnedFd, timeout: Duration) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        return Err(std::io::Error::other(
            "the TUN device went away (was the namespace deleted?)",
        ));
    }
    Ok(n > 0)
}

#[derive(Default)]
struct Tally {
    sent: u16,
    replies: u32,
    looped: u32,
    other: u32,
    /// Requests (by seq) that got a reply or came back looped.
    answered: BTreeSet<u16>,
}

fn main() {
    let a = parse_args();
    let fd = match open_tun(&a.dev) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!(
                "tailnet_peer: cannot attach to TUN device {}: {e} (it must exist in this network \
                 namespace: `ip tuntap add dev {} mode tun`, and we need CAP_NET_ADMIN)",
                a.dev, a.dev
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = wait_operational(&a.dev) {
        eprintln!("tailnet_peer: {e}");
        std::process::exit(1);
    }
    say(&format!(
        "ready on {} as {}: {} echo request(s) to {}, id {}, every {} ms",
        a.dev,
        a.src,
        a.count,
        a.dst,
        a.id,
        a.interval.as_millis()
    ));
    if let Err(e) = run(&a, &fd) {
        eprintln!("tailnet_peer: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args, fd: &OwnedFd) -> std::io::Result<()> {
    // Distinct IP ids, also across runs.
    let id_base = (std::process::id() as u16).wrapping_mul(251);
    let payload: Vec<u8> = (0..PAYLOAD as u8).map(|i| 0x10 + i).collect();
    let mut t = Tally::default();
    let mut next_send = Instant::now();
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    let mut ip_id_reply = id_base.wrapping_add(0x8000);
    loop {
        let now = Instant::now();
        if t.sent < a.count && now >= next_send {
            t.sent += 1;
            let seq = t.sent;
            let pkt = ipv4_icmp(
                a.src,
                a.dst,
                id_base.wrapping_add(seq),
                a.ttl,
                echo(ECHO_REQUEST, a.id, seq, &payload),
            );
            write_packet(fd, &pkt)?;
            say(&format!(
                "sent {} > {} icmp echo-request id {} seq {seq} ttl {}",
                a.src, a.dst, a.id, a.ttl
            ));
            next_send = now + a.interval;
            if t.sent == a.count {
                deadline = Some(now + a.timeout);
            }
        }
        if t.sent == a.count && (1..=a.count).all(|s| t.answered.contains(&s)) {
            break;
        }
        let until = match deadline {
            Some(d) if now >= d => break,
            Some(d) => d,
            None => next_send,
        };
        if !readable(fd, until.saturating_duration_since(Instant::now()))? {
            continue;
        }
        // SAFETY: buf is a valid, writable buffer of buf.len() bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) {
                continue;
            }
            return Err(e);
        }
        let p = parse(&buf[..n as usize]);
        let mut line = format!("got {}", describe(&p));
        match &p {
            Packet::V4 {
                src,
                dst,
                proto: ICMP,
                l4,
                ..
            } => match echo_fields(l4) {
                Some((ECHO_REPLY, id, seq)) if *src == a.dst && *dst == a.src && id == a.id => {
                    t.replies += 1;
                    t.answered.insert(seq);
                }
                Some((ECHO_REQUEST, id, seq)) if *dst == a.dst && id == a.id => {
                    t.looped += 1;
                    t.answered.insert(seq);
                    line.push_str(" (looped back)");
                }
                Some((ECHO_REQUEST, id, seq)) if *dst == a.src => {
                    t.other += 1;
                    ip_id_reply = ip_id_reply.wrapping_add(1);
                    let reply = ipv4_icmp(
                        a.src,
                        *src,
                        ip_id_reply,
                        64,
                        echo(ECHO_REPLY, id, seq, &l4[8..]),
                    );
                    write_packet(fd, &reply)?;
                    line.push_str(" (answered)");
                }
                _ => t.other += 1,
            },
            _ => t.other += 1,
        }
        say(&line);
    }
    say(&format!(
        "summary sent={} replies={} looped={} other={} unanswered={}",
        t.sent,
        t.replies,
        t.looped,
        t.other,
        usize::from(t.sent) - t.answered.len()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_well_formed() {
        let src = Ipv4Addr::new(100, 119, 140, 15);
        let dst = Ipv4Addr::new(192, 168, 1, 90);
        let p = ipv4_icmp(src, dst, 42, 64, echo(ECHO_REQUEST, 7, 1, &[1, 2, 3]));
        assert_eq!(p.len(), 20 + 8 + 3);
        assert_eq!(checksum(&p[..20]), 0, "IPv4 header checksum");
        assert_eq!(checksum(&p[20..]), 0, "ICMP checksum");
        match parse(&p) {
            Packet::V4 {
                src: s,
                dst: d,
                ttl,
                proto,
                l4,
            } => {
                assert_eq!((s, d, ttl, proto), (src, dst, 64, ICMP));
                assert_eq!(echo_fields(&l4), Some((ECHO_REQUEST, 7, 1)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            describe(&parse(&p)),
            "100.119.140.15 > 192.168.1.90 icmp echo-request id 7 seq 1 ttl 64"
        );
    }
}
