//! Time of the eBPF records: CLOCK_BOOTTIME stamps turned into wall-clock
//! time. A leaf: every layer may use it.
use crate::event::format_ts;

/// Converts bpf_ktime_get_boot_ns() stamps to wall-clock time.
pub struct Clock {
    /// Wall-clock minus boot-clock, in nanoseconds.
    offset_ns: i128,
}

impl Clock {
    pub fn new() -> Self {
        let boot = Self::boot_now_ns() as i128;
        let wall = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
        Clock {
            offset_ns: wall - boot,
        }
    }

    /// CLOCK_BOOTTIME now, in nanoseconds (the eBPF timestamps' clock).
    pub fn boot_now_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid clock id and out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Wall-clock nanoseconds since the epoch of a boot-clock stamp.
    pub fn unix_ns(&self, boot_ns: u64) -> i128 {
        self.offset_ns + boot_ns as i128
    }

    pub fn wall(&self, boot_ns: Option<u64>) -> String {
        let t = match boot_ns {
            Some(b) if b > 0 => {
                let ns = self.offset_ns + b as i128;
                chrono::DateTime::from_timestamp(
                    (ns / 1_000_000_000) as i64,
                    (ns % 1_000_000_000) as u32,
                )
                .unwrap_or_else(chrono::Utc::now)
            }
            _ => chrono::Utc::now(),
        };
        format_ts(t)
    }
}
