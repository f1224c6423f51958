use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::event::Op;
use crate::netlink::{
    decode::{NlObj, decode_buffer, decode_one},
    forms_tests::unhex,
    socket::{
        DumpKind, Received, RecvBuffers, dump, dump_socket, in_netns, notification_socket, receive,
    },
};
use crate::test_util::{Netns, root_or_skip};

/// RTM_NEWNEXTHOP/RTM_DELNEXTHOP notifications captured on Linux 6.18
/// (RTNLGRP_NEXTHOP) in a namespace where v0 (ifindex 3) has 10.9.0.1/24 and
/// fd09::1/64, made by iproute2 6.1 except id 50, sent raw with 16-bit
/// weights. The groups carry NHA_OP_FLAGS (14), which is skipped.
const CAPTURED: &[(&str, &str)] = &[
    (
        "ip nexthop add id 10 via 10.9.0.2 dev v0",
        "30000000680005066d66136b1c13000002fd000000000000080001000a0000000800050003000000080006000a090002",
    ),
    (
        "ip nexthop add id 11 via 10.9.0.3 dev v0 proto static",
        "30000000680005066d66136b1d13000002fd040000000000080001000b0000000800050003000000080006000a090003",
    ),
    (
        "ip -6 nexthop add id 12 via fd09::2 dev v0",
        "3c000000680005066d66136b1e1300000afd000000000000080001000c000000080005000300000014000600fd090000000000000000000000000002",
    ),
    (
        "ip nexthop add id 13 blackhole",
        "24000000680005066d66136b1f1300000200000000000000080001000d00000004000400",
    ),
    (
        "ip nexthop add id 14 dev v0",
        "28000000680005066d66136b2013000002fe000000000000080001000e0000000800050003000000",
    ),
    (
        "ip nexthop add id 20 group 10,3/11,200",
        "44000000680005066d66136b21130000000000000000000008000100140000000600030000000000140002000a000000020000000b000000c700000008000e0000000080",
    ),
    (
        "ip nexthop add id 30 group 10/11 type resilient buckets 8 idle_timer 60 unbalanced_timer 300",
        "6c000000680005066d66136b221300000000000000000000080001001e0000000600030001000000140002000a000000000000000b0000000000000028000c800600010008000000080002007017000008000300307500000c000400000000000000000008000e0000000080",
    ),
    (
        "ip nexthop add id 40 via 10.9.0.4 fdb",
        "2c000000680005066d66136b2313000002fd000000000000080001002800000004000b00080006000a090004",
    ),
    (
        "ip nexthop add id 41 group 40 fdb",
        "40000000680005066d66136b241300000000000000000000080001002900000004000b0006000300000000000c000200280000000000000008000e0000000080",
    ),
    (
        "ip nexthop del id 13",
        "24000000690005006d66136b251300000200000000000000080001000d00000004000400",
    ),
    (
        "raw: id 50 group 10 weight 1000, 11 weight 300",
        "4400000068000506630000005c52b4d6000000000000000008000100320000000600030000000000140002000a000000e70300000b0000002b01000008000e0000000080",
    ),
];

fn single(id: u32, family: Family, gateway: Option<&str>, ifindex: Option<u32>) -> Nexthop {
    Nexthop {
        id,
        family: Some(family),
        gateway: gateway.map(String::from),
        ifindex,
        ..Nexthop::default()
    }
}

fn grouped(id: u32, members: &[(u32, u32)], group_type: &str) -> Nexthop {
    Nexthop {
        id,
        group: members
            .iter()
            .map(|&(id, weight)| GroupMember { id, weight })
            .collect(),
        group_type: Some(group_type.into()),
        ..Nexthop::default()
    }
}

fn expected() -> Vec<(Op, Nexthop)> {
    let v4 = Family::Inet;
    let blackhole = Nexthop {
        blackhole: true,
        ..single(13, v4, None, None)
    };
    vec![
        (Op::Add, single(10, v4, Some("10.9.0.2"), Some(3))),
        (
            Op::Add,
            Nexthop {
                protocol: Some("static".into()),
                ..single(11, v4, Some("10.9.0.3"), Some(3))
            },
        ),
        (Op::Add, single(12, Family::Inet6, Some("fd09::2"), Some(3))),
        (Op::Add, blackhole.clone()),
        (Op::Add, single(14, v4, None, Some(3))),
        (Op::Add, grouped(20, &[(10, 3), (11, 200)], "mpath")),
        (
            Op::Add,
            Nexthop {
                resilient: Some(Resilient {
                    buckets: Some(8),
                    idle_timer: Some(60),
                    unbalanced_timer: Some(300),
                    unbalanced_time: Some(0),
                }),
                ..grouped(30, &[(10, 1), (11, 1)], "resilient")
            },
        ),
        (
            Op::Add,
            Nexthop {
                fdb: true,
                ..single(40, v4, Some("10.9.0.4"), None)
            },
        ),
        (
            Op::Add,
            Nexthop {
                fdb: true,
                ..grouped(41, &[(40, 1)], "mpath")
            },
        ),
        (Op::Del, blackhole),
        (Op::Add, grouped(50, &[(10, 1000), (11, 300)], "mpath")),
    ]
}

fn captured(i: usize) -> Vec<u8> {
    unhex(CAPTURED[i].1)
}

#[test]
fn decodes_the_kernels_notifications() {
    for (i, (op, nh)) in expected().into_iter().enumerate() {
        let msg = captured(i);
        let (items, errors) = decode_buffer(&msg);
        assert!(errors.is_empty(), "{}: {errors:?}", CAPTURED[i].0);
        let [item] = &items[..] else {
            panic!("{}: {items:?}", CAPTURED[i].0)
        };
        let NlObj::Nexthop {
            op: got_op,
            nexthop,
        } = &item.obj
        else {
            panic!("{}: not a nexthop: {item:?}", CAPTURED[i].0)
        };
        assert_eq!((*got_op, &**nexthop), (op, &nh), "{}", CAPTURED[i].0);
    }
}

#[test]
fn get_requests_are_ignored() {
    assert_eq!(decode_one(&dump_request(5)), Ok(None));
    assert_eq!(dump_request(5)[..8], [24, 0, 0, 0, 106, 0, 1, 3]);
}

fn payload(attrs: &[(u16, &[u8])], family: u8) -> Vec<u8> {
    let mut p = nhmsg(family, 0, 0).to_vec();
    for (kind, v) in attrs {
        p.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        p.extend_from_slice(&kind.to_ne_bytes());
        p.extend_from_slice(v);
        p.resize((p.len() + 3) & !3, 0);
    }
    p
}

const ID: (u16, &[u8]) = (NHA_ID, &[7, 0, 0, 0]);

#[test]
fn a_deletion_request_names_only_the_id() {
    let nh = parse(&payload(&[ID], 0)).unwrap();
    assert_eq!(
        nh,
        Nexthop {
            id: 7,
            ..Nexthop::default()
        }
    );
}

#[test]
fn malformed_messages_are_typed_errors() {
    let cases: Vec<(Vec<u8>, MsgError)> = vec![
        (vec![2, 0, 0, 0, 0], MsgError::ShortNexthop(5)),
        (payload(&[], 2), MsgError::NexthopNoId),
        (
            payload(&[(NHA_OIF, &[3, 0, 0, 0])], 2),
            MsgError::NexthopNoId,
        ),
        (
            payload(&[(NHA_ID, &[7, 0])], 0),
            MsgError::NexthopAttribute {
                attr: "NHA_ID",
                len: 2,
                want: 4,
            },
        ),
        (
            payload(&[ID, (NHA_GROUP, &[10, 0, 0, 0, 0, 0])], 0),
            MsgError::NexthopGroup(6),
        ),
        (
            payload(&[ID, (NHA_GATEWAY, &[0; 16])], 2),
            MsgError::NexthopGateway { family: 2, len: 16 },
        ),
        (
            payload(&[ID, (NHA_GATEWAY, &[0; 4])], 10),
            MsgError::NexthopGateway { family: 10, len: 4 },
        ),
        (
            payload(&[ID, (NHA_GATEWAY, &[0; 4])], 0),
            MsgError::NexthopGateway { family: 0, len: 4 },
        ),
        (
            payload(&[ID, (NHA_RES_GROUP, &[8, 0, 1, 0, 8, 0, 0, 0])], 0),
            MsgError::NexthopAttribute {
                attr: "NHA_RES_GROUP_BUCKETS",
                len: 4,
                want: 2,
            },
        ),
    ];
    for (p, want) in cases {
        assert_eq!(parse(&p), Err(want.clone()), "{want}");
    }
}

#[test]
fn attribute_lengths_are_checked_against_the_buffer() {
    let mut p = payload(&[ID], 2);
    // An attribute claiming 12 bytes with 8 left.
    p.extend_from_slice(&[12, 0, 5, 0, 3, 0, 0, 0]);
    let bounds = |len, left| MsgError::NexthopAttributeBounds {
        offset: 8,
        len,
        left,
    };
    assert_eq!(parse(&p), Err(bounds(12, 8)));
    // A length shorter than the attribute header.
    p[16] = 2;
    assert_eq!(parse(&p), Err(bounds(2, 8)));
    // A truncated value (the message ends inside NHA_ID).
    assert_eq!(
        parse(&payload(&[ID], 2)[..14]),
        Err(MsgError::NexthopAttributeBounds {
            offset: 0,
            len: 8,
            left: 6,
        })
    );
    // Fewer than 4 bytes after the last attribute are padding.
    let mut p = payload(&[ID], 2);
    p.extend_from_slice(&[1, 2]);
    assert_eq!(parse(&p).map(|n| n.id), Ok(7));
}

#[test]
fn unknown_attributes_and_flag_bits_are_skipped() {
    let p = payload(
        &[
            (NHA_RES_GROUP | 0x8000, &[]),
            (200, &[1, 2, 3]),
            (0x3fff, &[]),
            (14, &[0, 0, 0, 0x80]),
            ID,
            (NHA_OIF | 0x4000, &[3, 0, 0, 0]),
        ],
        2,
    );
    let nh = parse(&p).unwrap();
    assert_eq!((nh.id, nh.ifindex), (7, Some(3)));
    assert_eq!(nh.resilient, Some(Resilient::default()));

    let mut p = payload(&[ID], 2);
    p[4..8].copy_from_slice(&(1u32 | 4 | 16 | 64 | 0x100).to_ne_bytes());
    assert_eq!(
        parse(&p).unwrap().flags,
        ["dead", "onlink", "linkdown", "trap"]
    );
}

#[test]
fn sixteen_bit_weights() {
    let p = payload(
        &[
            ID,
            (
                NHA_GROUP,
                &[1, 0, 0, 0, 0xff, 0xff, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0],
            ),
        ],
        0,
    );
    let got = parse(&p).unwrap().group;
    assert_eq!(
        got,
        [
            GroupMember {
                id: 1,
                weight: 65536
            },
            GroupMember { id: 2, weight: 257 },
        ]
    );
}

/// A nexthop of every shape the kernel reports, from `rng`.
fn random_nexthop(rng: &mut fastrand::Rng) -> Nexthop {
    let mut nh = Nexthop {
        id: rng.u32(1..),
        protocol: rng.bool().then(|| names::protocol(rng.u8(1..))),
        flags: FLAGS
            .iter()
            .filter(|_| rng.u8(..4) == 0)
            .map(|(_, n)| n.to_string())
            .collect(),
        fdb: rng.bool(),
        ..Nexthop::default()
    };
    match rng.u8(..4) {
        0 => {
            nh.family = Some(Family::Inet);
            nh.gateway = rng.bool().then(|| Ipv4Addr::from(rng.u32(..)).to_string());
            nh.ifindex = rng.bool().then(|| rng.u32(1..));
        }
        1 => {
            nh.family = Some(Family::Inet6);
            nh.gateway = rng.bool().then(|| Ipv6Addr::from(rng.u128(..)).to_string());
            nh.ifindex = rng.bool().then(|| rng.u32(1..));
        }
        2 => {
            nh.family = [None, Some(Family::Inet), Some(Family::Inet6)][rng.usize(..3)];
            nh.blackhole = true;
        }
        _ => {
            nh.group = (0..rng.usize(1..6))
                .map(|_| GroupMember {
                    id: rng.u32(..),
                    weight: rng.u32(1..=65536),
                })
                .collect();
            nh.group_type = Some(["mpath", "resilient", "7"][rng.usize(..3)].into());
            let seconds = |rng: &mut fastrand::Rng| rng.bool().then(|| rng.u32(..=u32::MAX / 100));
            nh.resilient = rng.bool().then(|| Resilient {
                buckets: rng.bool().then(|| rng.u16(..)),
                idle_timer: seconds(rng),
                unbalanced_timer: seconds(rng),
                unbalanced_time: rng.bool().then(|| rng.u64(..)),
            });
        }
    }
    nh
}

#[test]
fn encode_then_parse_round_trips() {
    let mut rng = fastrand::Rng::with_seed(0x6e68);
    let mut table = expected();
    table.extend((0..2000).map(|_| (Op::Add, random_nexthop(&mut rng))));
    for (i, (op, nh)) in table.iter().enumerate() {
        let t = if *op == Op::Add {
            RTM_NEWNEXTHOP
        } else {
            RTM_DELNEXTHOP
        };
        let msg = encode(t, 0x600, i as u32, nh);
        assert_eq!(msg.len() % 4, 0);
        let item = decode_one(&msg).unwrap().unwrap();
        assert_eq!(item.seq, i as u32);
        assert_eq!(item.flags, 0x600);
        assert_eq!(
            item.obj,
            NlObj::Nexthop {
                op: *op,
                nexthop: Box::new(nh.clone())
            }
        );
    }
    // What the kernel sent encodes to the same nexthop.
    for (i, (_, nh)) in expected().iter().enumerate() {
        assert_eq!(&parse(&encode(RTM_NEWNEXTHOP, 0, 0, nh)[16..]).unwrap(), nh);
        assert_eq!(&parse(&captured(i)[16..]).unwrap(), nh);
    }
}

#[test]
fn no_input_panics() {
    let mut rng = fastrand::Rng::with_seed(0x6e69);
    let mut inputs: Vec<Vec<u8>> = (0..CAPTURED.len()).map(captured).collect();
    inputs.extend((0..200).map(|_| encode(RTM_NEWNEXTHOP, 0, 0, &random_nexthop(&mut rng))));
    for msg in &inputs {
        let p = &msg[16..];
        for end in 0..=p.len() {
            let _ = parse(&p[..end]);
        }
        for _ in 0..50 {
            let mut m = p.to_vec();
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(..m.len());
                m[i] = rng.u8(..);
            }
            let _ = parse(&m);
        }
    }
}

/// Against the kernel (root, a namespace of its own): the notification
/// socket hears nexthop objects come and go, and a dump reports the ones
/// left as they were notified.
#[test]
fn notified_and_dumped_by_the_kernel() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new("nh");
    for l in [
        "link set lo up",
        "link add n0 type veth peer name n0p",
        "link set n0p up",
        "link set n0 up",
        "addr add 10.9.0.1/24 dev n0",
    ] {
        ns.ip(l);
    }
    let f = ns.file();
    let sock = in_netns(Some(&f), notification_socket).unwrap();
    for l in [
        "nexthop add id 10 via 10.9.0.2 dev n0",
        "nexthop add id 11 blackhole",
        "nexthop add id 12 via 10.9.0.3 dev n0 proto static",
        "nexthop add id 20 group 10,2/12 type resilient buckets 4 idle_timer 30",
        "nexthop del id 11",
    ] {
        ns.ip(l);
    }
    let mut bufs = RecvBuffers::default();
    let mut notified = Vec::new();
    while let Received::Items { items, .. } = receive(&sock, &mut bufs, 300, 64).unwrap() {
        notified.extend(items.into_iter().filter_map(|i| match i.obj {
            NlObj::Nexthop { op, nexthop } => Some((op, *nexthop)),
            _ => None,
        }));
    }
    let seen: Vec<(Op, u32)> = notified.iter().map(|(op, n)| (*op, n.id)).collect();
    let want = [(Op::Add, 10), (Op::Add, 11), (Op::Add, 12), (Op::Add, 20)];
    assert_eq!(seen, [&want[..], &[(Op::Del, 11)]].concat());
    let res = notified[3].1.resilient.unwrap();
    assert_eq!((res.buckets, res.idle_timer), (Some(4), Some(30)));
    assert_eq!(notified[3].1.group[0], GroupMember { id: 10, weight: 2 });

    let dumped: Vec<Nexthop> = dump(&dump_socket(Some(&f)).unwrap(), DumpKind::Nexthops, 1)
        .unwrap()
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Nexthop {
                op: Op::Add,
                nexthop,
            } => Some(*nexthop),
            _ => None,
        })
        .collect();
    let left: Vec<Nexthop> = [0, 2, 3].iter().map(|&i| notified[i].1.clone()).collect();
    assert_eq!(dumped, left);
}
