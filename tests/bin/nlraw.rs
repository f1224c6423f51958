//! nlraw: add or delete a route or rule with a raw NETLINK_ROUTE socket and
//! sendto(2), as a program that does not use iproute2 would.
//!
//!   nlraw route-add|route-del TABLE PREFIX/LEN [blackhole]
//!   nlraw rule-add|rule-del PRIORITY TABLE
//!
//! Prints the kernel's answer ("ok" or the errno) and exits non-zero on error.
//!
//!   nlraw replay sendto|sendmsg|sendmsg-iov|sendmmsg DGRAM...
//!
//! Replays captured request bytes (tests/forms/): each DGRAM is one
//! datagram, its messages in hex separated by commas. See `replay`.

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType},
    rule::{RuleAction, RuleAttribute, RuleMessage},
};

fn usage() -> ! {
    eprintln!(
        "usage: nlraw route-add|route-del TABLE PREFIX/LEN [blackhole] | rule-add|rule-del PRIORITY TABLE"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("replay") {
        replay::main(&args[1..]);
        return;
    }
    let (cmd, a, b) = match args.as_slice() {
        [c, a, b, ..] => (c.as_str(), a.as_str(), b.as_str()),
        _ => usage(),
    };
    let table: u32;
    let (msg, add) = match cmd {
        "route-add" | "route-del" => {
            table = a.parse().unwrap_or_else(|_| usage());
            let (addr, len) = b.split_once('/').unwrap_or_else(|| usage());
            let addr: IpAddr = addr.parse().unwrap_or_else(|_| usage());
            let mut r = RouteMessage::default();
            r.header.address_family = if addr.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            r.header.destination_prefix_length = len.parse().unwrap_or_else(|_| usage());
            r.header.table = 0;
            r.header.protocol = RouteProtocol::Static;
            r.header.scope = RouteScope::Universe;
            let add = cmd == "route-add";
            // A deletion names no type: the kernel then matches any.
            r.header.kind = match (add, args.get(3).map(String::as_str)) {
                (false, _) => RouteType::Unspec,
                (true, Some("blackhole")) => RouteType::BlackHole,
                (true, _) => RouteType::Unicast,
            };
            r.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(addr)));
            r.attributes.push(RouteAttribute::Table(table));
            (
                if add {
                    RouteNetlinkMessage::NewRoute(r)
                } else {
                    RouteNetlinkMessage::DelRoute(r)
                },
                add,
            )
        }
        "rule-add" | "rule-del" => {
            let prio: u32 = a.parse().unwrap_or_else(|_| usage());
            table = b.parse().unwrap_or_else(|_| usage());
            let mut r = RuleMessage::default();
            r.header.family = AddressFamily::Inet;
            r.header.action = RuleAction::ToTable;
            r.attributes.push(RuleAttribute::Priority(prio));
            r.attributes.push(RuleAttribute::Table(table));
            let add = cmd == "rule-add";
            (
                if add {
                    RouteNetlinkMessage::NewRule(r)
                } else {
                    RouteNetlinkMessage::DelRule(r)
                },
                add,
            )
        }
        _ => usage(),
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | if add { NLM_F_CREATE | NLM_F_EXCL } else { 0 };
    header.sequence_number = 4242;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    let mut buf = vec![0u8; m.buffer_len()];
    m.serialize(&mut buf);

    // SAFETY: plain socket calls with valid buffers and lengths.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd,
            buf.as_ptr() as *const _,
            buf.len(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        assert!(
            sent == buf.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
        let mut ans = [0u8; 8192];
        let n = libc::recvfrom(
            fd,
            ans.as_mut_ptr() as *mut _,
            ans.len(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        assert!(n >= 20, "recvfrom: {}", std::io::Error::last_os_error());
        let err = i32::from_ne_bytes(ans[16..20].try_into().unwrap());
        if err == 0 {
            println!("ok");
        } else {
            println!("{}", std::io::Error::from_raw_os_error(-err));
            std::process::exit(1);
        }
    }
}

/// `nlraw replay MODE DGRAM...`: send captured rtnetlink requests as they
/// are, except for nlmsg_seq (fresh numbers) and a non-zero nlmsg_pid (this
/// socket's port id), and print what happened:
///
///   sent SEQ UNIX_NANOS     for each message, taken just before its syscall
///   ack SEQ ok|ERRNAME      for each NLMSG_ERROR the kernel answers with
///   ack SEQ none            for a request without NLM_F_ACK that got no error
///
/// MODE says how the datagrams are sent:
/// - `sendto`: one sendto(2) per datagram;
/// - `sendmsg`: one sendmsg(2) per datagram, with the datagram in one iovec;
/// - `sendmsg-iov`: one sendmsg(2) per datagram, one iovec per message;
/// - `sendmmsg`: one sendmmsg(2) for all the datagrams.
///
/// Except with sendmmsg, the answers to a datagram are read before the next
/// is sent, as iproute2 and the netlink libraries do. Exits 0 when every
/// syscall worked, whatever the kernel answered.
mod replay {
    use std::time::{SystemTime, UNIX_EPOCH};

    const NLM_F_ACK: u16 = 0x4;
    const NLMSG_ERROR: u16 = 2;

    fn fail(what: &str) -> ! {
        eprintln!("nlraw replay: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1)
    }

    fn usage() -> ! {
        eprintln!("usage: nlraw replay sendto|sendmsg|sendmsg-iov|sendmmsg HEX[,HEX...]...");
        std::process::exit(2)
    }

    fn unhex(s: &str) -> Vec<u8> {
        if !s.len().is_multiple_of(2) {
            usage()
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| usage()))
            .collect()
    }

    fn errname(e: i32) -> String {
        let name = match e {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EEXIST => "EEXIST",
            libc::EINVAL => "EINVAL",
            libc::ENODEV => "ENODEV",
            libc::ENOBUFS => "ENOBUFS",
            libc::ERANGE => "ERANGE",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::EHOSTUNREACH => "EHOSTUNREACH",
            _ => return format!("E{e}"),
        };
        name.to_string()
    }

    fn flags_of(m: &[u8]) -> u16 {
        u16::from_ne_bytes([m[6], m[7]])
    }

    fn now_ns() -> u128 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos()
    }

    /// Read answers until every message that asked for an ack has one, then
    /// what else is already queued (errors of requests without NLM_F_ACK).
    /// A request without NLM_F_ACK that got no error is `ack SEQ none`.
    fn read_acks(fd: i32, msgs: &[&Vec<u8>]) {
        let mut want = msgs.iter().filter(|m| flags_of(m) & NLM_F_ACK != 0).count();
        let mut silent: Vec<u32> = msgs
            .iter()
            .filter(|m| flags_of(m) & NLM_F_ACK == 0)
            .map(|m| u32::from_ne_bytes(m[8..12].try_into().unwrap()))
            .collect();
        let mut buf = vec![0u8; 65536];
        loop {
            let flags = if want > 0 { 0 } else { libc::MSG_DONTWAIT };
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut _, buf.len(), flags) };
            if n < 0 && want == 0 {
                for seq in silent {
                    println!("ack {seq} none");
                }
                return;
            }
            if n < 0 {
                fail("recv (no answer within 2 s)")
            }
            let mut off = 0usize;
            let n = n as usize;
            while n - off >= 16 {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || len > n - off {
                    break;
                }
                if kind == NLMSG_ERROR && len >= 36 {
                    let err = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
                    let seq = u32::from_ne_bytes(buf[off + 28..off + 32].try_into().unwrap());
                    let flags = u16::from_ne_bytes([buf[off + 26], buf[off + 27]]);
                    let what = if err == 0 { "ok".into() } else { errname(-err) };
                    println!("ack {seq} {what}");
                    silent.retain(|s| *s != seq);
                    if flags & NLM_F_ACK != 0 {
                        want = want.saturating_sub(1);
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    pub fn main(args: &[String]) {
        let (mode, dgrams) = match args {
            [m, rest @ ..] if !rest.is_empty() => (m.as_str(), rest),
            _ => usage(),
        };
        if !["sendto", "sendmsg", "sendmsg-iov", "sendmmsg"].contains(&mode) {
            usage()
        }
        // SAFETY: plain socket calls with valid buffers and lengths.
        let (fd, port) = unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                fail("socket")
            }
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            let salen = std::mem::size_of::<libc::sockaddr_nl>() as u32;
            if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, salen) < 0 {
                fail("bind")
            }
            let mut len = salen;
            libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len);
            let tv = libc::timeval {
                tv_sec: 2,
                tv_usec: 0,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const _,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            (fd, sa.nl_pid)
        };
        // Fresh sequence numbers: the time of day in ms, so runs differ.
        let mut seq = (now_ns() / 1_000_000 % 1_000_000_000) as u32 * 4;
        // Each datagram: its messages, rewritten.
        let mut data: Vec<Vec<Vec<u8>>> = Vec::new();
        for d in dgrams {
            let mut msgs = Vec::new();
            for h in d.split(',') {
                let mut m = unhex(h);
                if m.len() < 16 {
                    usage()
                }
                // Messages follow each other at 4-byte boundaries.
                m.resize(m.len().div_ceil(4) * 4, 0);
                seq = seq.wrapping_add(1);
                m[8..12].copy_from_slice(&seq.to_ne_bytes());
                if m[12..16] != [0, 0, 0, 0] {
                    m[12..16].copy_from_slice(&port.to_ne_bytes());
                }
                msgs.push(m);
            }
            data.push(msgs);
        }
        let print_sent = |msgs: &[Vec<u8>], t: u128| {
            for m in msgs {
                println!(
                    "sent {} {t}",
                    u32::from_ne_bytes(m[8..12].try_into().unwrap())
                );
            }
        };
        let mut dst: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        dst.nl_family = libc::AF_NETLINK as u16;
        let dstlen = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        let iov = |b: &[u8]| libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        };
        if mode == "sendmmsg" {
            let bufs: Vec<Vec<u8>> = data.iter().map(|d| d.concat()).collect();
            let iovs: Vec<libc::iovec> = bufs.iter().map(|b| iov(b)).collect();
            let mut hdrs: Vec<libc::mmsghdr> = iovs
                .iter()
                .map(|v| {
                    // SAFETY: a zeroed mmsghdr is valid; the pointers set below outlive the call.
                    let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    h.msg_hdr.msg_name = &dst as *const _ as *mut _;
                    h.msg_hdr.msg_namelen = dstlen;
                    h.msg_hdr.msg_iov = v as *const _ as *mut _;
                    h.msg_hdr.msg_iovlen = 1;
                    h
                })
                .collect();
            let t = now_ns();
            data.iter().for_each(|d| print_sent(d, t));
            // SAFETY: hdrs points at live buffers.
            let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as u32, 0) };
            if n != hdrs.len() as i32 {
                fail("sendmmsg")
            }
            read_acks(fd, &data.iter().flatten().collect::<Vec<_>>());
            return;
        }
        for msgs in &data {
            let whole = msgs.concat();
            let t = now_ns();
            print_sent(msgs, t);
            // SAFETY: every pointer refers to a live buffer of the given length.
            let sent = unsafe {
                match mode {
                    "sendto" => libc::sendto(
                        fd,
                        whole.as_ptr() as *const _,
                        whole.len(),
                        0,
                        &dst as *const _ as *const libc::sockaddr,
                        dstlen,
                    ),
                    _ => {
                        let iovs: Vec<libc::iovec> = if mode == "sendmsg" {
                            vec![iov(&whole)]
                        } else {
                            msgs.iter().map(|m| iov(m)).collect()
                        };
                        let mut h: libc::msghdr = std::mem::zeroed();
                        h.msg_name = &dst as *const _ as *mut _;
                        h.msg_namelen = dstlen;
                        h.msg_iov = iovs.as_ptr() as *mut _;
                        h.msg_iovlen = iovs.len();
                        libc::sendmsg(fd, &h, 0)
                    }
                }
            };
            if sent != whole.len() as isize {
                fail(mode)
            }
            read_acks(fd, &msgs.iter().collect::<Vec<_>>());
        }
    }
}
