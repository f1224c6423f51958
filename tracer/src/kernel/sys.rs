//! The few raw `bpf(2)` calls feature probing needs, without a BPF library:
//! load a do-nothing fexit program, attach it, and create a ring buffer map.
//!
//! Attribute structs mirror the leading part of the kernel's `union bpf_attr`
//! (include/uapi/linux/bpf.h); the kernel zero-fills the rest when it is
//! given a shorter size.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd},
};

// Commands (enum bpf_cmd).
const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_int = 17;
// enum bpf_prog_type / bpf_attach_type / bpf_map_type values.
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FEXIT: u32 = 25;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;

/// `struct bpf_insn`: opcode, dst/src registers (4 bits each), offset, imm.
#[repr(C)]
struct BpfInsn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// `bpf_attr` for BPF_PROG_LOAD, up to `attach_prog_fd` (offset 112).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    _pad: u32,
}

/// `bpf_attr` for BPF_RAW_TRACEPOINT_OPEN.
#[repr(C)]
struct RawTracepointAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// `bpf_attr` for BPF_MAP_CREATE, up to `map_flags`.
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// A failed `bpf(2)` call: the errno and, for program loads, the verifier log.
#[derive(Debug)]
pub(crate) struct BpfSysError {
    pub errno: io::Error,
    pub log: String,
}

impl std::fmt::Display for BpfSysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.errno)?;
        if !self.log.is_empty() {
            write!(f, " (verifier: {})", self.log)?;
        }
        Ok(())
    }
}

/// Calls `bpf(cmd, attr, sizeof(attr))` and wraps the returned descriptor.
///
/// SAFETY contract: `A` must be one of the `repr(C)` attribute structs above,
/// matching `cmd`, and any pointers inside must outlive the call.
unsafe fn bpf<A>(cmd: libc::c_int, attr: &mut A) -> io::Result<OwnedFd> {
    let size = std::mem::size_of::<A>() as libc::c_uint;
    // SAFETY: attr points to `size` initialised bytes (see contract above).
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, size) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success these commands return a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) })
}

/// Loads, as a BPF_PROG_TYPE_TRACING fexit program for the kernel function
/// whose BTF FUNC id is `attach_btf_id`, a program that reads what the
/// tracer's fexit programs read: an argument (slot 0 of its context) and
/// the return value (slot `ret_slot`, the function's argument count), each
/// with the offset in the load instruction, and returns 0. No helper is
/// called, as none of the tracer's fexit programs calls one to read them.
pub(crate) fn load_fexit_probe(attach_btf_id: u32, ret_slot: u32) -> Result<OwnedFd, BpfSysError> {
    let insn = |code, regs, off, imm| BpfInsn {
        code,
        regs,
        off,
        imm,
    };
    let ret_off = i16::try_from(ret_slot * 8).unwrap_or(i16::MAX);
    let insns = [
        // BPF_LDX | BPF_MEM | BPF_DW: r2 = *(u64 *)(r1 + 0), argument 0
        insn(0x79, 0x12, 0, 0),
        // r2 = *(u64 *)(r1 + ret_slot * 8), the return value
        insn(0x79, 0x12, ret_off, 0),
        // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0
        insn(0xb7, 0x00, 0, 0),
        // BPF_JMP | BPF_EXIT
        insn(0x95, 0x00, 0, 0),
    ];
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        expected_attach_type: BPF_TRACE_FEXIT,
        attach_btf_id,
        ..Default::default()
    };
    // SAFETY: insns, license and log outlive the call.
    unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map_err(|errno| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let log = String::from_utf8_lossy(&log[..end])
            .trim()
            .replace('\n', "; ");
        BpfSysError { errno, log }
    })
}

/// Attaches a loaded tracing program to its target function. Dropping the
/// returned descriptor detaches it.
pub(crate) fn attach_tracing(prog: &OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // name = NULL: attach a fentry/fexit program to its attach_btf_id.
    let mut attr = RawTracepointAttr {
        name: 0,
        prog_fd: prog.as_raw_fd() as u32,
        _pad: 0,
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr) }
}

/// Creates a one-page BPF_MAP_TYPE_RINGBUF map.
pub(crate) fn create_ringbuf() -> io::Result<OwnedFd> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: page,
        map_flags: 0,
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { bpf(BPF_MAP_CREATE, &mut attr) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn attr_layouts_match_uapi() {
        assert_eq!(size_of::<BpfInsn>(), 8);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(ProgLoadAttr, func_info), 80);
        assert_eq!(offset_of!(ProgLoadAttr, attach_btf_id), 108);
        assert_eq!(offset_of!(ProgLoadAttr, attach_prog_fd), 112);
        assert_eq!(size_of::<RawTracepointAttr>(), 16);
    }
}
