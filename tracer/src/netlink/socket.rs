//! NETLINK_ROUTE sockets of the tracer itself, one pair per watched network
//! namespace: one subscribed to the kernel's notifications (the outcome of
//! every change) and one for dumps (the state to diff against).
//!
//! A socket belongs to the namespace it was created in, so each is created
//! on a short-lived thread that first enters the namespace (setns only
//! affects the calling thread).
use std::{fs::File, os::fd::AsRawFd};

use anyhow::{Context as _, Result, anyhow, bail};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::AddressMessage,
    link::LinkMessage,
    route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage},
    rule::RuleMessage,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{
    decode::{NlItem, NlObj, decode_buffer, decode_one, route_message},
    nexthop_msg,
    route_msg::RouteMsg,
};
use crate::event::Route;

// rtnetlink multicast groups (uapi rtnetlink.h): legacy bitmask for bind()
// and group numbers for NETLINK_ADD_MEMBERSHIP.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV4_RULE: u32 = 0x80;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
const RTNLGRP_IPV6_RULE: u32 = 19;
const RTNLGRP_NEXTHOP: u32 = 32;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;

/// Receive buffer for notification sockets: a 1,000,000-route flush sends
/// that many notifications within seconds.
const NOTIFY_RCVBUF: usize = 256 << 20;
/// Overrides [`NOTIFY_RCVBUF`] (bytes): the tests shrink it to make the
/// kernel drop notifications, so that recovering from it is exercised.
pub const NOTIFY_RCVBUF_ENV: &str = "TRACER_NOTIFY_RCVBUF";

/// The notification sockets' receive buffer: [`NOTIFY_RCVBUF`], or what
/// `TRACER_NOTIFY_RCVBUF` says (ignored, with a warning, when not a size).
fn notify_rcvbuf() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| match std::env::var(NOTIFY_RCVBUF_ENV) {
        Err(_) => NOTIFY_RCVBUF,
        Ok(v) => v.parse().unwrap_or_else(|_| {
            log::warn!("{NOTIFY_RCVBUF_ENV}={v:?} is not a number of bytes; using {NOTIFY_RCVBUF}");
            NOTIFY_RCVBUF
        }),
    })
}

pub use crate::nsfs::in_netns;

/// A socket subscribed to link, address, route, rule and nexthop
/// notifications, in the calling thread's namespace (see [`in_netns`]).
pub fn notification_socket() -> Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE).context("cannot open a NETLINK_ROUTE socket")?;
    let groups = RTMGRP_LINK
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV4_RULE
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV6_ROUTE;
    s.bind(&SocketAddr::new(0, groups))
        .context("cannot bind the notification socket")?;
    s.add_membership(RTNLGRP_IPV6_RULE)
        .context("cannot join the IPv6 rule group")?;
    // Nexthop objects came with 5.3; without them there is nothing to miss.
    if let Err(e) = s.add_membership(RTNLGRP_NEXTHOP) {
        log::debug!("cannot join the nexthop group (a kernel before 5.3?): {e}");
    }
    force_rcvbuf(&s, notify_rcvbuf());
    Ok(s)
}

/// A socket for dumps and route queries.
pub fn dump_socket(ns: Option<&File>) -> Result<Socket> {
    in_netns(ns, dump_socket_here)
}

/// [`dump_socket`] in the calling thread's namespace.
pub fn dump_socket_here() -> Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE).context("cannot open a NETLINK_ROUTE socket")?;
    s.bind_auto().context("cannot bind the dump socket")?;
    force_rcvbuf(&s, 32 << 20);
    Ok(s)
}

/// SO_RCVBUFFORCE (root may exceed rmem_max); falls back to SO_RCVBUF.
fn force_rcvbuf(s: &Socket, size: usize) {
    let v = size as libc::c_int;
    // SAFETY: setsockopt with a valid fd and an int option value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let _ = s.set_rx_buf_sz(size);
    }
}

/// Outcome of reading a notification socket.
pub enum Received {
    /// Notifications read (at most the batch asked for). `overflow`: the
    /// kernel then reported ENOBUFS, having dropped notifications for us.
    Items { items: Vec<NlItem>, overflow: bool },
    /// Nothing within the timeout.
    Idle,
}

/// Datagrams one `receive` takes from the socket in one system call, and
/// the room for each (rtnetlink notifications are far smaller).
const RECV_SLOTS: usize = 64;
const RECV_SLOT_BYTES: usize = 32 << 10;

/// Buffers for `receive`, kept by the reader from call to call (only the
/// pages datagrams are written to are ever touched).
pub struct RecvBuffers {
    data: Vec<u8>,
}

impl Default for RecvBuffers {
    fn default() -> Self {
        RecvBuffers {
            data: vec![0u8; RECV_SLOTS * RECV_SLOT_BYTES],
        }
    }
}

/// recvmmsg(MSG_DONTWAIT) into the slots; decodes what arrived onto
/// `items`. Ok(false) when nothing was queued.
fn recv_many(s: &Socket, bufs: &mut RecvBuffers, items: &mut Vec<NlItem>) -> std::io::Result<bool> {
    let mut iov: Vec<libc::iovec> = bufs
        .data
        .chunks_mut(RECV_SLOT_BYTES)
        .map(|c| libc::iovec {
            iov_base: c.as_mut_ptr() as *mut libc::c_void,
            iov_len: c.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: every header points at its own slot of `bufs`, alive for the call.
    let n = unsafe {
        libc::recvmmsg(
            s.as_raw_fd(),
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock => Ok(false),
            _ => Err(e),
        };
    }
    for (h, slot) in hdrs
        .iter()
        .zip(bufs.data.chunks(RECV_SLOT_BYTES))
        .take(n as usize)
    {
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            log::warn!("a notification larger than {RECV_SLOT_BYTES} bytes was cut short");
        }
        let len = (h.msg_len as usize).min(slot.len());
        items.append(&mut decode_buffer(&slot[..len]).0);
    }
    Ok(n > 0)
}

/// Read the notifications already queued, up to about `max` messages,
/// waiting up to `timeout_ms` for the first. One system call per burst of
/// datagrams (recvmmsg) rather than one per notification: a flush sends
/// one datagram per route.
pub fn receive(
    s: &Socket,
    bufs: &mut RecvBuffers,
    timeout_ms: i32,
    max: usize,
) -> Result<Received> {
    let mut items = Vec::new();
    let mut waited = false;
    while items.len() < max {
        match recv_many(s, bufs, &mut items) {
            Ok(true) => {}
            Ok(false) if !items.is_empty() => break,
            Ok(false) => {
                if waited {
                    return Ok(Received::Idle);
                }
                waited = true;
                let mut pfd = libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, timeout_ms) } <= 0 {
                    return Ok(Received::Idle);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(Received::Items {
                    items,
                    overflow: true,
                });
            }
            Err(e) => return Err(e).context("reading netlink notifications"),
        }
    }
    Ok(Received::Items {
        items,
        overflow: false,
    })
}

/// What to dump.
#[derive(Clone, Copy, Debug)]
pub enum DumpKind {
    Links,
    Routes,
    Rules,
    Addresses,
    /// Nexthop objects (`ip nexthop`).
    Nexthops,
}

/// NLM_F_DUMP_INTR: the dump changed while it was read.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// Dump links, routes, rules, addresses or nexthop objects of the socket's
/// namespace (both families).
pub fn dump(s: &Socket, what: DumpKind, seq: u32) -> Result<Vec<NlItem>> {
    let mut items = Vec::new();
    dump_raw(s, what, seq, &mut |m| {
        if let Ok(Some(item)) = decode_one(m) {
            items.push(item);
        }
    })?;
    Ok(items)
}

/// Dump the routes of the socket's namespace, handing each to `each` as it
/// is read (a million routes are never held at once). Err when the dump
/// failed or was interrupted by changes (it may then miss routes).
pub fn dump_routes(s: &Socket, seq: u32, each: &mut dyn FnMut(&RouteMsg)) -> Result<()> {
    let mut intr = false;
    dump_raw(s, DumpKind::Routes, seq, &mut |m| {
        intr |= u16::from_ne_bytes([m[6], m[7]]) & NLM_F_DUMP_INTR != 0;
        if let Ok(Some((_, r))) = route_message(m) {
            each(&r);
        }
    })?;
    if intr {
        bail!("the route dump was interrupted by changes");
    }
    Ok(())
}

/// Dump `what` and hand every message of the answer to `each`.
fn dump_raw(s: &Socket, what: DumpKind, seq: u32, each: &mut dyn FnMut(&[u8])) -> Result<()> {
    let inner = match what {
        DumpKind::Links => RouteNetlinkMessage::GetLink(LinkMessage::default()),
        DumpKind::Routes => RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        DumpKind::Rules => RouteNetlinkMessage::GetRule(RuleMessage::default()),
        DumpKind::Addresses => RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        // netlink-packet-route has no nexthop messages.
        DumpKind::Nexthops => {
            return dump_raw_request(s, &nexthop_msg::dump_request(seq), seq, each)
                .with_context(|| format!("dumping {what:?}"));
        }
    };
    dump_request(s, inner, seq, each).with_context(|| format!("dumping {what:?}"))
}

/// Send the dump request `inner` (which may carry filters the kernel
/// applies with NETLINK_GET_STRICT_CHK) and hand every message of the
/// answer (whole, header included) to `each`, until NLMSG_DONE.
pub fn dump_request(
    s: &Socket,
    inner: RouteNetlinkMessage,
    seq: u32,
    each: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    dump_raw_request(s, &out, seq, each)
}

/// [`dump_request`] for a request already encoded (header included, with
/// `seq` as its sequence number): one netlink-packet-route cannot build.
pub fn dump_raw_request(
    s: &Socket,
    request: &[u8],
    seq: u32,
    each: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    s.send(request, 0).context("sending the dump request")?;

    let mut buf = Vec::with_capacity(1 << 20);
    loop {
        buf.clear();
        s.recv(&mut buf, 0).context("reading the dump")?;
        let mut off = 0usize;
        while buf.len() - off >= 16 {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            if len < 16 || len > buf.len() - off {
                break;
            }
            let m = &buf[off..off + len];
            let t = u16::from_ne_bytes([m[4], m[5]]);
            let mseq = u32::from_ne_bytes(m[8..12].try_into().expect("4 bytes"));
            if mseq == seq {
                match t {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = m
                            .get(16..20)
                            .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                            .unwrap_or(0);
                        if code == 0 {
                            return Ok(());
                        }
                        return Err(std::io::Error::from_raw_os_error(-code))
                            .context("the dump failed");
                    }
                    _ => each(m),
                }
            }
            off = (off + ((len + 3) & !3)).min(buf.len());
        }
    }
}

/// What a forwarded packet looks like to the FIB: `ip route get DST from SRC
/// iif IIF mark MARK fibmatch`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteQuery {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub iif: u32,
    pub mark: u32,
}

/// Asks the kernel which route it would choose for `q` now (RTM_GETROUTE
/// with RTM_F_FIB_MATCH: the matching FIB entry, table included). Err with
/// the kernel's error when there is none (e.g. unreachable).
pub fn get_route(s: &Socket, q: &RouteQuery, seq: u32) -> Result<Route> {
    let mut m = RouteMessage::default();
    let (family, len, dst, src) = match (q.dst, q.src) {
        (std::net::IpAddr::V4(d), std::net::IpAddr::V4(s)) => (
            AddressFamily::Inet,
            32,
            RouteAddress::Inet(d),
            RouteAddress::Inet(s),
        ),
        (std::net::IpAddr::V6(d), std::net::IpAddr::V6(s)) => (
            AddressFamily::Inet6,
            128,
            RouteAddress::Inet6(d),
            RouteAddress::Inet6(s),
        ),
        _ => return Err(anyhow!("source and destination families differ")),
    };
    m.header.address_family = family;
    m.header.destination_prefix_length = len;
    // LOOKUP_TABLE: without it the kernel reports the main table, whatever
    // table matched (iproute2 sets it too).
    m.header.flags = RouteFlags::FibMatch | RouteFlags::LookupTable;
    m.attributes = vec![
        RouteAttribute::Destination(dst),
        RouteAttribute::Source(src),
        RouteAttribute::Iif(q.iif),
    ];
    if q.mark != 0 {
        m.attributes.push(RouteAttribute::Mark(q.mark));
    }
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetRoute(m)),
    );
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    s.send(&out, 0).context("sending the route query")?;
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        buf.clear();
        s.recv(&mut buf, 0)
            .context("reading the route query's answer")?;
        for item in decode_buffer(&buf).0 {
            if item.seq != seq {
                continue;
            }
            match item.obj {
                NlObj::Route { route, .. } => return Ok(route),
                NlObj::Ack { error, .. } if error != 0 => {
                    return Err(std::io::Error::from_raw_os_error(-error))
                        .context("the kernel has no route for it");
                }
                _ => {}
            }
        }
    }
}
