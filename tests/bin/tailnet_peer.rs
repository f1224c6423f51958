//! tailnet_peer: plays a tailnet peer (100.119.140.15, or
//! fd7a:115c:a1e0::15 over IPv6) on the router side of the lab's TUN device
//! `tailscale0`, as tailscaled would hand its packets to the kernel. Run it
//! inside the router's namespace (`ip netns exec`).
//!
//!   tailnet_peer [--dev tailscale0] [--src 100.119.140.15] [--dst 192.168.1.90]
//!                [--id 7] [--count 3] [--interval-ms 200] [--timeout-ms 2000]
//!                [--ttl 64] [--reflect]
//!
//! Attaches to the existing TUN (IFF_TUN | IFF_NO_PI), prints `peer: ready`,
//! then writes COUNT echo requests SRC > DST (ICMP for IPv4 addresses,
//! ICMPv6 for IPv6 ones; echo id ID, seq 1..COUNT, distinct IPv4 ids), one
//! every INTERVAL ms. Every packet the router sends into the TUN is printed
//! on one line, e.g.
//!
//!   peer: got 192.168.1.90 > 100.119.140.15 icmp echo-reply id 7 seq 1 ttl 63
//!   peer: got 100.98.98.126 > 192.168.1.90 icmp echo-request id 7 seq 1 ttl 63 (looped back)
//!
//! the second being the routing loop as the peer sees it: its own request,
//! routed back to the tailnet with the router's address as source. Echo
//! requests addressed to SRC are answered.
//!
//! `--reflect` plays tailscaled's forwarding for a subnet the router
//! advertises itself: every looped request is written back into the TUN as
//! it came (`(looped back, reflected)`), so the router routes it again, one
//! pass per TTL, until the TTL runs out.
//!
//! The peer stops once every request got an echo reply or came back looped
//! (with --reflect, once nothing came for 300 ms after that), or TIMEOUT ms
//! after the last request, and prints a summary line:
//!
//!   peer: summary sent=3 replies=3 looped=0 other=0 unanswered=0 reflected=0 lowest_ttl=0
//!
//! (`looped` counts requests that came back, once each; `reflected` the
//! copies written back; `lowest_ttl` the lowest TTL or hop limit of a
//! looped copy, 0 when none came.) Exits 0 unless the device cannot be used
//! (status 1) or the arguments are wrong (status 2).
#[path = "tailnet_peer/packets.rs"]
mod packets;

use std::{
    collections::BTreeSet,
    io::Write,
    net::IpAddr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use packets::{Echo, describe, echo, ip_icmp, parse};

/// Echo payload length (as ping's default): an 84-byte IPv4 packet.
const PAYLOAD: usize = 56;
/// With --reflect: how long the loop must be quiet before the peer stops.
const REFLECT_QUIET: Duration = Duration::from_millis(300);

struct Args {
    dev: String,
    src: IpAddr,
    dst: IpAddr,
    id: u16,
    count: u16,
    interval: Duration,
    timeout: Duration,
    ttl: u8,
    reflect: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("tailnet_peer: {msg}");
    eprintln!(
        "usage: tailnet_peer [--dev NAME] [--src ADDR] [--dst ADDR] [--id N] [--count N] \
         [--interval-ms MS] [--timeout-ms MS] [--ttl N] [--reflect]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        dev: "tailscale0".into(),
        src: IpAddr::from([100, 119, 140, 15]),
        dst: IpAddr::from([192, 168, 1, 90]),
        id: 7,
        count: 3,
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(2000),
        ttl: 64,
        reflect: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            usage("plays tailnet peer SRC and pings DST through the TUN device");
        }
        if flag == "--reflect" {
            a.reflect = true;
            continue;
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
    if a.src.is_ipv6() != a.dst.is_ipv6() {
        usage(&format!(
            "{} and {} are of different families",
            a.src, a.dst
        ));
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
    /// Looped copies written back into the TUN (--reflect).
    reflected: u32,
    /// The lowest TTL or hop limit of a looped copy (0: none came).
    lowest_ttl: u8,
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
    let v6 = a.src.is_ipv6();
    let mut t = Tally::default();
    let mut next_send = Instant::now();
    let mut deadline: Option<Instant> = None;
    let mut last_got = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut ip_id_reply = id_base.wrapping_add(0x8000);
    loop {
        let now = Instant::now();
        if t.sent < a.count && now >= next_send {
            t.sent += 1;
            let seq = t.sent;
            let msg = echo(Echo::Request, v6, a.id, seq, &payload);
            let pkt = ip_icmp(a.src, a.dst, id_base.wrapping_add(seq), a.ttl, msg);
            write_packet(fd, &pkt)?;
            say(&format!(
                "sent {}",
                describe(&parse(&pkt).expect("a packet built here"))
            ));
            next_send = now + a.interval;
            if t.sent == a.count {
                deadline = Some(now + a.timeout);
            }
        }
        let all_answered = t.sent == a.count && (1..=a.count).all(|s| t.answered.contains(&s));
        if all_answered && (!a.reflect || now >= last_got + REFLECT_QUIET) {
            break;
        }
        let until = match deadline {
            Some(d) if now >= d => break,
            Some(d) if all_answered => d.min(last_got + REFLECT_QUIET),
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
        last_got = Instant::now();
        let raw = &buf[..n as usize];
        let p = match parse(raw) {
            Ok(p) => p,
            Err(len) => {
                t.other += 1;
                say(&format!(
                    "got a {len}-byte packet that is neither IPv4 nor IPv6"
                ));
                continue;
            }
        };
        let mut line = format!("got {}", describe(&p));
        match p.echo() {
            Some((Echo::Reply, id, seq)) if p.src == a.dst && p.dst == a.src && id == a.id => {
                t.replies += 1;
                t.answered.insert(seq);
            }
            // Masquerade may give a reflected copy another echo id.
            Some((Echo::Request, id, seq)) if p.dst == a.dst && (id == a.id || a.reflect) => {
                if t.answered.insert(seq) {
                    t.looped += 1;
                }
                t.lowest_ttl = match t.lowest_ttl {
                    0 => p.ttl,
                    l => l.min(p.ttl),
                };
                line.push_str(" (looped back");
                if a.reflect {
                    // tailscaled handing it back to the kernel, as it came.
                    write_packet(fd, raw)?;
                    t.reflected += 1;
                    line.push_str(", reflected");
                }
                line.push(')');
            }
            Some((Echo::Request, id, seq)) if p.dst == a.src => {
                t.other += 1;
                ip_id_reply = ip_id_reply.wrapping_add(1);
                let msg = echo(Echo::Reply, v6, id, seq, &p.l4[8..]);
                write_packet(fd, &ip_icmp(a.src, p.src, ip_id_reply, 64, msg))?;
                line.push_str(" (answered)");
            }
            _ => t.other += 1,
        }
        say(&line);
    }
    say(&format!(
        "summary sent={} replies={} looped={} other={} unanswered={} reflected={} lowest_ttl={}",
        t.sent,
        t.replies,
        t.looped,
        t.other,
        usize::from(t.sent) - t.answered.len(),
        t.reflected,
        t.lowest_ttl
    ));
    Ok(())
}
