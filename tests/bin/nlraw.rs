//! nlraw: add or delete a route or rule with a raw NETLINK_ROUTE socket and
//! sendto(2), as a program that does not use iproute2 would.
//!
//!   nlraw route-add|route-del TABLE PREFIX/LEN [blackhole]
//!   nlraw rule-add|rule-del PRIORITY TABLE
//!
//! Prints the kernel's answer ("ok" or the errno) and exits non-zero on error.
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
