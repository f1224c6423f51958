//! mmsg: a UDP sender that sends small datagrams with sendmmsg(2) in
//! batches, for the packet-rate benchmark (bench/packets.sh, SENDER=mmsg).
//!
//!   mmsg ADDR:PORT SECONDS [BATCH [PAYLOAD]]
//!
//! Sends PAYLOAD-byte datagrams (default 18) to ADDR:PORT from a connected
//! UDP socket, BATCH of them per sendmmsg call (default 64), for SECONDS
//! seconds (a decimal), then prints how many datagrams the kernel took and
//! over how many seconds: `sent N in S s`.

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

fn usage() -> ! {
    eprintln!("usage: mmsg ADDR:PORT SECONDS [BATCH [PAYLOAD]]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dest), Some(secs)) = (args.first(), args.get(1)) else {
        usage()
    };
    let dest: SocketAddr = dest.parse().unwrap_or_else(|_| usage());
    let secs: f64 = secs.parse().unwrap_or_else(|_| usage());
    let batch: usize = args
        .get(2)
        .map_or(64, |b| b.parse().unwrap_or_else(|_| usage()));
    let payload: usize = args
        .get(3)
        .map_or(18, |p| p.parse().unwrap_or_else(|_| usage()));
    if batch == 0 || batch > 1024 {
        usage()
    }
    let bind = if dest.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).unwrap_or_else(|e| fail("bind", e));
    sock.connect(dest).unwrap_or_else(|e| fail("connect", e));
    let mut data = vec![0x41u8; payload];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: zeroed mmsghdrs are valid; each points at the one iovec,
    // which outlives every call below.
    let mut msgs: Vec<libc::mmsghdr> = (0..batch)
        .map(|_| unsafe {
            let mut m: libc::mmsghdr = std::mem::zeroed();
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let fd = sock.as_raw_fd();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut sent: u64 = 0;
    while Instant::now() < end {
        // SAFETY: `msgs` holds `batch` initialised headers.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), batch as libc::c_uint, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                // A full device queue or a refusal from the peer (an ICMP
                // error queued on the socket): go on.
                Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED | libc::EINTR) => continue,
                _ => fail("sendmmsg", e),
            }
        }
        sent += n as u64;
    }
    println!("sent {sent} in {:.6} s", start.elapsed().as_secs_f64());
}

fn fail(what: &str, e: std::io::Error) -> ! {
    eprintln!("mmsg: {what}: {e}");
    std::process::exit(1)
}
