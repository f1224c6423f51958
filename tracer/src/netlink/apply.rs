//! Putting a removed route or rule back in its namespace (`tracer guard
//! --repair`): on a thread inside the namespace, the devices the route needs
//! are looked up (by name: a device created again has a new index), the
//! object is looked for once more, and only if it is still missing is the
//! create-exclusive request of `request` sent and its answer awaited.
//!
//! The request is sent from the thread inside the namespace, so the kernel
//! records it (and the tracer's own tracepoints see it) there.
use std::{fs::File, os::fd::AsRawFd, time::Duration};

use anyhow::{Context as _, Result};
use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage},
    route::{RouteAttribute, RouteMessage},
    rule::RuleMessage,
};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

use super::{
    decode::{NlObj, decode_buffer, decode_one},
    request::{self, BuildError},
    socket::{dump_request, in_netns},
};
use crate::event::{Family, Route, Rule};

/// The object to put back.
#[derive(Clone, Copy, Debug)]
pub enum Wanted<'a> {
    Route(&'a Route),
    Rule(&'a Rule),
}

/// What became of a repair.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The request was sent: the kernel's answer (0 or a negative errno).
    Sent { seq: u32, error: i32 },
    /// `--dry-run`: everything was checked, nothing was sent.
    DryRun,
    /// The object is there again (looked for just before the request):
    /// nothing was sent.
    Present,
    /// A device the route needs is missing or down: nothing was sent.
    NoDevice { dev: String, exists: bool },
    /// The object cannot be expressed as a request.
    Unbuildable(BuildError),
}

/// SOL_NETLINK and NETLINK_GET_STRICT_CHK (uapi netlink.h): dumps filtered
/// by the kernel (the routes of one table).
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;
/// How long to wait for the kernel's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Put `want` back in the namespace `ns` (None: the tracer's own), unless
/// `same` finds it there already. `send` false: check only (`--dry-run`).
pub fn put_back(
    ns: Option<&File>,
    want: Wanted<'_>,
    seq: u32,
    send: bool,
    same: &(dyn Fn(&NlObj) -> bool + Sync),
) -> Result<Applied> {
    in_netns(ns, || {
        let s = socket()?;
        let inner = match want {
            Wanted::Route(r) => {
                let mut r = r.clone();
                if let Some(missing) = resolve_devices(&s, &mut r, seq)? {
                    return Ok(missing);
                }
                if route_present(&s, &r, seq, same)? {
                    return Ok(Applied::Present);
                }
                match request::route_message(&r) {
                    Ok(m) => RouteNetlinkMessage::NewRoute(m),
                    Err(e) => return Ok(Applied::Unbuildable(e)),
                }
            }
            Wanted::Rule(r) => {
                if rule_present(&s, r, seq, same)? {
                    return Ok(Applied::Present);
                }
                match request::rule_message(r) {
                    Ok(m) => RouteNetlinkMessage::NewRule(m),
                    Err(e) => return Ok(Applied::Unbuildable(e)),
                }
            }
        };
        if !send {
            return Ok(Applied::DryRun);
        }
        let bytes = request::create_exclusive(inner, seq);
        s.send(&bytes, 0).context("sending the repair request")?;
        let error = answer(&s, seq).context("reading the answer to the repair request")?;
        Ok(Applied::Sent { seq, error })
    })
}

fn socket() -> Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE).context("cannot open a NETLINK_ROUTE socket")?;
    s.bind_auto()
        .context("cannot bind a NETLINK_ROUTE socket")?;
    let on: libc::c_int = 1;
    let tv = libc::timeval {
        tv_sec: ANSWER_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a valid fd and values that live for the call.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            SOL_NETLINK,
            NETLINK_GET_STRICT_CHK,
            &on as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    Ok(s)
}

/// The kernel's answer to request `seq`: 0 or a negative errno.
fn answer(s: &Socket, seq: u32) -> Result<i32> {
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        buf.clear();
        s.recv(&mut buf, 0)?;
        for item in decode_buffer(&buf).0 {
            if let NlObj::Ack { error, seq: acked } = item.obj
                && (item.seq == seq || acked == seq)
            {
                return Ok(error);
            }
        }
    }
}

/// A device by name now: its index and whether it is up.
fn link(s: &Socket, name: &str, seq: u32) -> Result<Option<(u32, bool)>> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(m)),
    );
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    s.send(&out, 0).context("asking for a device")?;
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        buf.clear();
        s.recv(&mut buf, 0).context("reading a device")?;
        for item in decode_buffer(&buf).0 {
            match item.obj {
                NlObj::Link(l) if item.seq == seq => {
                    return Ok(Some((l.ifindex, l.up.unwrap_or(false))));
                }
                // ENODEV: there is no such device.
                NlObj::Ack { seq: acked, .. } if acked == seq || item.seq == seq => {
                    return Ok(None);
                }
                _ => {}
            }
        }
    }
}

/// Sets the indices of the route's devices (and its next hops') to the
/// devices' indices now. Some(NoDevice) when one is missing or down.
fn resolve_devices(s: &Socket, r: &mut Route, seq: u32) -> Result<Option<Applied>> {
    if r.nhid.is_some() {
        return Ok(None);
    }
    // Reject routes need no device: IPv6 reports them on `lo`, where the
    // kernel puts them by itself.
    if matches!(
        r.rtype.as_deref(),
        Some("throw" | "blackhole" | "unreachable" | "prohibit")
    ) {
        r.dev = None;
        r.ifindex = None;
        return Ok(None);
    }
    let mut devs: Vec<(&mut Option<u32>, String)> = Vec::new();
    if let Some(d) = r.dev.clone() {
        devs.push((&mut r.ifindex, d));
    }
    for h in &mut r.nexthops {
        if let Some(d) = h.dev.clone() {
            devs.push((&mut h.ifindex, d));
        }
    }
    for (slot, dev) in devs {
        match link(s, &dev, seq)? {
            Some((index, true)) => *slot = Some(index),
            Some((_, false)) => return Ok(Some(Applied::NoDevice { dev, exists: true })),
            None => return Ok(Some(Applied::NoDevice { dev, exists: false })),
        }
    }
    Ok(None)
}

fn family(f: Option<Family>) -> AddressFamily {
    match f {
        Some(Family::Inet) => AddressFamily::Inet,
        Some(Family::Inet6) => AddressFamily::Inet6,
        None => AddressFamily::Unspec,
    }
}

/// Whether `same` finds the route among the routes of its table now (a
/// dump the kernel filters by table and family).
fn route_present(
    s: &Socket,
    r: &Route,
    seq: u32,
    same: &(dyn Fn(&NlObj) -> bool + Sync),
) -> Result<bool> {
    let mut m = RouteMessage::default();
    m.header.address_family = family(r.family);
    if let Some(t) = r.table {
        m.header.table = u8::try_from(t).unwrap_or(0);
        m.attributes.push(RouteAttribute::Table(t));
    }
    dump_has(s, RouteNetlinkMessage::GetRoute(m), seq, same)
}

fn rule_present(
    s: &Socket,
    r: &Rule,
    seq: u32,
    same: &(dyn Fn(&NlObj) -> bool + Sync),
) -> Result<bool> {
    let mut m = RuleMessage::default();
    m.header.family = family(r.family);
    dump_has(s, RouteNetlinkMessage::GetRule(m), seq, same)
}

fn dump_has(
    s: &Socket,
    inner: RouteNetlinkMessage,
    seq: u32,
    same: &(dyn Fn(&NlObj) -> bool + Sync),
) -> Result<bool> {
    let mut found = false;
    let done = dump_request(s, inner, seq, &mut |m| {
        if let Ok(Some(item)) = decode_one(m) {
            found |= same(&item.obj);
        }
    });
    match done {
        Ok(()) => Ok(found),
        // IPv4: a table that does not exist holds nothing.
        Err(e)
            if e.root_cause()
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                == Some(libc::ENOENT) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.context("looking for the object before the repair")),
    }
}
