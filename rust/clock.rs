//! The one clock every reading and boundary is stamped with: CLOCK_MONOTONIC, the clock behind
//! Python's `time.monotonic()`, so Python callers can place their own timestamps on our axis.

/// Nanoseconds on CLOCK_MONOTONIC. A vDSO call: no syscall, about 20 ns.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn ns_to_s(ns: u64) -> f64 {
    ns as f64 * 1e-9
}

/// Sleeps until `deadline_ns` on CLOCK_MONOTONIC. An absolute deadline keeps a periodic loop
/// free of drift, and wakes exactly once when nothing interrupts it.
pub fn sleep_until_ns(deadline_ns: u64) {
    let deadline = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec; a null remainder is allowed with TIMER_ABSTIME. An EINTR return
    // just ends the sleep early, and callers re-check the clock.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &deadline,
            std::ptr::null_mut(),
        );
    }
}
