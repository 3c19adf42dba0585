//! The sampler's own costs, each beside a baseline measured in the same run.
//!
//! Run: `cargo bench --bench sampler`.
//! - CPU use at 1 kHz (synthetic and a fake RAPL tree), against an empty loop that only sleeps
//!   to the same absolute deadlines: on a VM the wake-up itself is most of the cost.
//! - Resident memory over 10^7 readings after warm-up, taken back to back
//!   (`Meter::run_unpaced`) so they take seconds, not hours. The rings are never drained here:
//!   they fill and then count drops, the worst case for memory.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use hf_eco2ai_core::clock::{monotonic_ns, sleep_until_ns};
use hf_eco2ai_core::sampler::{Meter, MeterConfig};
use hf_eco2ai_core::sources::rapl::RaplSource;
use hf_eco2ai_core::sources::synthetic::{SyntheticSource, Trace};
use hf_eco2ai_core::sources::Source;

const RATE_HZ: f64 = 1_000.0;
const CPU_SECONDS: f64 = 4.0;
// `cargo bench --bench sampler -- --smoke` checks that the benchmark runs, in well under a second.
const SMOKE_CPU_SECONDS: f64 = 0.1;

fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn resident_bytes() -> u64 {
    let statm = fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// % of one core used while `body` runs and the main thread sleeps.
fn cpu_percent(body: impl FnOnce()) -> f64 {
    let cpu_before = process_cpu_s();
    let started = Instant::now();
    body();
    100.0 * (process_cpu_s() - cpu_before) / started.elapsed().as_secs_f64()
}

fn empty_sleep_loop_percent(cpu_seconds: f64) -> f64 {
    cpu_percent(|| {
        std::thread::spawn(move || {
            let period = (1e9 / RATE_HZ) as u64;
            let slack_ns: libc::c_ulong = 50_000;
            // SAFETY: plain integer argument, this thread only.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, slack_ns) };
            let mut deadline = monotonic_ns();
            for _ in 0..(RATE_HZ * cpu_seconds) as u64 {
                deadline += period;
                sleep_until_ns(deadline);
            }
        })
        .join()
        .expect("baseline thread");
    })
}

fn meter_percent(source: Box<dyn Source>, cpu_seconds: f64) -> (f64, u64) {
    let meter = Meter::new(
        vec![source],
        MeterConfig {
            rate_hz: RATE_HZ,
            ring_capacity: 8192,
            boundary_capacity: 1024,
        },
    )
    .expect("meter");
    let percent = cpu_percent(|| {
        meter.start().expect("start");
        std::thread::sleep(Duration::from_secs_f64(cpu_seconds));
        meter.stop().expect("stop");
    });
    (
        percent,
        meter
            .live()
            .missed_ticks
            .load(std::sync::atomic::Ordering::Relaxed),
    )
}

fn fake_rapl_tree(root: &Path) {
    for (dir, name) in [
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:0:0", "core"),
        ("intel-rapl:0:1", "dram"),
    ] {
        let zone = root.join(dir);
        fs::create_dir_all(&zone).expect("zone dir");
        fs::write(zone.join("name"), format!("{name}\n")).expect("name");
        fs::write(zone.join("energy_uj"), "123456789\n").expect("energy_uj");
        fs::write(zone.join("max_energy_range_uj"), "262143328850\n").expect("range");
    }
}

fn main() {
    let smoke = std::env::args().any(|argument| argument == "--smoke");
    let cpu_seconds = if smoke {
        SMOKE_CPU_SECONDS
    } else {
        CPU_SECONDS
    };
    let baseline = empty_sleep_loop_percent(cpu_seconds);
    let synthetic = SyntheticSource::new(
        vec![Trace::Square {
            low_watts: 50.0,
            high_watts: 300.0,
            period_s: 0.1,
        }],
        None,
    )
    .expect("synthetic source");
    let (synthetic_percent, synthetic_missed) = meter_percent(Box::new(synthetic), cpu_seconds);
    let root = std::env::temp_dir().join(format!("hf-eco2ai-bench-{}", std::process::id()));
    fake_rapl_tree(&root);
    let (rapl_percent, rapl_missed) = meter_percent(
        Box::new(RaplSource::open(&root).expect("fake RAPL")),
        cpu_seconds,
    );
    fs::remove_dir_all(&root).expect("clean up");
    println!("CPU at {RATE_HZ} Hz, % of one core, over {cpu_seconds} s:");
    println!("  empty absolute-sleep loop (baseline): {baseline:.2} %");
    println!("  sampler, synthetic:                   {synthetic_percent:.2} % (x{:.2} baseline, {synthetic_missed} missed ticks)", synthetic_percent / baseline);
    println!("  sampler, fake RAPL (3 zones):         {rapl_percent:.2} % (x{:.2} baseline, {rapl_missed} missed ticks)", rapl_percent / baseline);

    let traces = vec![
        Trace::Square {
            low_watts: 50.0,
            high_watts: 300.0,
            period_s: 0.1,
        },
        Trace::Ramp {
            start_watts: 10.0,
            watts_per_s: 1.0,
        },
    ];
    let meter = Meter::new(
        vec![Box::new(
            SyntheticSource::new(traces, None).expect("synthetic source"),
        )],
        MeterConfig {
            rate_hz: RATE_HZ,
            ring_capacity: 8192,
            boundary_capacity: 65536,
        },
    )
    .expect("meter");
    let (warm_up, measured) = if smoke {
        (10_000, 100_000)
    } else {
        (1_000_000, 10_000_000)
    };
    meter.run_unpaced(warm_up).expect("warm-up");
    let before = resident_bytes();
    let started = Instant::now();
    meter.run_unpaced(measured).expect("readings");
    let elapsed = started.elapsed();
    let growth = resident_bytes() as i64 - before as i64;
    println!(
        "resident memory over {measured} readings after warm-up: {} KiB growth (before {} KiB)",
        growth / 1024,
        before / 1024
    );
    println!(
        "cost per reading (2 channels, integrate + trace push): {:.1} ns",
        elapsed.as_nanos() as f64 / measured as f64
    );
    println!("correct: {}", growth <= 0);
}
