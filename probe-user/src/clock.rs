//! Kernel boot-clock nanoseconds -> wall-clock time, with an offset measured once at start-up.
use nix::time::{clock_gettime, ClockId};

#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// Wall-clock ns at boot (realtime - boottime).
    offset_ns: i128,
}

fn ns(c: ClockId) -> i128 {
    let t = clock_gettime(c).expect("clock_gettime on a standard clock");
    t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128
}

impl BootClock {
    pub fn measure() -> Self {
        // Bracket the realtime read with two boottime reads to halve the error.
        let b1 = ns(ClockId::CLOCK_BOOTTIME);
        let r = ns(ClockId::CLOCK_REALTIME);
        let b2 = ns(ClockId::CLOCK_BOOTTIME);
        BootClock {
            offset_ns: r - (b1 + b2) / 2,
        }
    }

    /// Current boot-clock ns (the kernel's `bpf_ktime_get_boot_ns`).
    pub fn now_boot_ns() -> u64 {
        ns(ClockId::CLOCK_BOOTTIME) as u64
    }

    /// Wall-clock ns since the Unix epoch.
    pub fn wall_ns(&self, boot_ns: u64) -> i128 {
        self.offset_ns + boot_ns as i128
    }

    /// RFC 3339 UTC with nanoseconds, e.g. `2026-11-27T17:42:47.123456789Z`.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        rfc3339_ns(self.wall_ns(boot_ns))
    }

    /// [`BootClock::rfc3339`] as a [`Stamp`] (no allocation).
    pub fn stamp(&self, boot_ns: u64) -> Stamp {
        stamp_ns(self.wall_ns(boot_ns))
    }
}

/// Nanoseconds per clock tick (`CLK_TCK`), the unit of start times in `/proc/<pid>/stat`.
pub fn tick_ns() -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&v| v > 0)
        .unwrap_or(100) as u64;
    1_000_000_000 / hz
}

/// Formats Unix-epoch nanoseconds as RFC 3339 UTC with nine fractional digits. Hand-rolled
/// (days-to-civil conversion) because it runs two or three times per event.
pub fn rfc3339_ns(wall_ns: i128) -> String {
    stamp_ns(wall_ns).as_str().to_owned()
}

/// [`rfc3339_ns`] without an allocation for any date this side of year 10000.
pub fn stamp_ns(wall_ns: i128) -> Stamp {
    let secs = wall_ns.div_euclid(1_000_000_000) as i64;
    let nanos = wall_ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        let mut out = String::with_capacity(32);
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        );
        return Stamp::Long(out);
    }
    // Fixed width: digits written in place, no formatter and no allocation.
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, (sod / 3600) as u64);
    put(14, 2, (sod / 60 % 60) as u64);
    put(17, 2, (sod % 60) as u64);
    put(20, 9, nanos as u64);
    Stamp::Short(b)
}

/// An RFC 3339 time stamp: 30 bytes for years 0 to 9999, else a string.
pub enum Stamp {
    Short([u8; 30]),
    Long(String),
}

impl Stamp {
    pub fn as_str(&self) -> &str {
        match self {
            // Only ASCII digits and separators were written.
            Stamp::Short(b) => std::str::from_utf8(b).unwrap_or(""),
            Stamp::Long(s) => s,
        }
    }
}

impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_nanoseconds() {
        assert_eq!(
            rfc3339_ns(1_000_000_000_000_000_007),
            "2001-09-09T01:46:40.000000007Z"
        );
        // Leap day, end of a day, and the epoch itself.
        assert_eq!(
            rfc3339_ns(951_868_799_999_999_999),
            "2000-02-29T23:59:59.999999999Z"
        );
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        // Outside four-digit years: the formatted (long) form, still exact.
        let y10k = 253_402_300_800i128 * 1_000_000_000;
        assert_eq!(rfc3339_ns(y10k), "10000-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_ns(-1),
            "1969-12-31T23:59:59.999999999Z",
            "before the epoch"
        );
    }

    #[test]
    fn boot_clock_maps_now_to_now() {
        let c = BootClock::measure();
        let wall = c.wall_ns(BootClock::now_boot_ns());
        let real = ns(ClockId::CLOCK_REALTIME);
        assert!((wall - real).abs() < 50_000_000, "{wall} vs {real}");
    }
}
