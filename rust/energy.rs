//! Cumulative energy per channel, and E(t) at any instant between readings.
//!
//! A counter channel's energy is its counter, differenced with wrap handling. A power channel's
//! energy is the trapezoidal integral of its readings. Between two readings E(t) is interpolated
//! so that the energy of consecutive spans telescopes: step energies add up exactly to the
//! total over the same span, whatever the boundaries.

use crate::channel::{ChannelKind, Sample};

/// How many past readings a channel keeps. A boundary stamped just before a reading but pushed
/// just after the sampler drained the queue is older than the newest reading; it still falls
/// within these: 256 ms of slack at 1 kHz. A boundary older than every kept reading is resolved
/// with the oldest one and reported as not exact, so its record is flagged approximate.
const HISTORY: usize = 256;

/// A counter delta implying more than this is no wrap and no real draw but a glitch (a torn
/// read, a counter re-initialised under us): it is rejected rather than integrated. Far above
/// any single GPU, CPU package or DRAM zone.
///
/// The power a delta implies is taken over the time the counter had to accumulate it: since its
/// previous value was first seen, plus one update period before that. A counter that moves in
/// stairs every 100 ms delivers a whole stair between two 1 ms readings; dividing by the sampling
/// interval would make every stair look like tens of kilowatts.
const MAX_PLAUSIBLE_COUNTER_WATTS: f64 = 10_000.0;

/// The update period assumed before one was observed: the slowest published (NVML, 100 ms) with
/// a wide margin.
const ASSUMED_UPDATE_PERIOD_NS: u64 = 1_000_000_000;

/// After this many implausible readings in a row the counter is taken to have been reset, and
/// the newest value becomes the new baseline.
const REBASELINE_AFTER_REJECTS: u32 = 3;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Point {
    t_ns: u64,
    joules: f64,
    watts: f64,
}

/// The difference of two raw counter values, in counter units.
///
/// A counter that wraps at `wrap_units` counts modulo that range, so a smaller value means it
/// wrapped once. A counter with no wrap that goes backwards was reset (a driver reload): the
/// interval is unknown and counts as nothing, and `None` lets the caller flag it.
pub fn counter_delta(previous: u64, current: u64, wrap_units: Option<u64>) -> Option<u64> {
    if current >= previous {
        return Some(current - previous);
    }
    match wrap_units {
        Some(range) if previous <= range => Some(range - previous + current),
        _ => None,
    }
}

/// Linear power between two points, integrated from `a.t` to `t`.
fn trapezoid_partial(a: &Point, b: &Point, t_ns: u64) -> f64 {
    let span = (b.t_ns - a.t_ns) as f64;
    let elapsed = (t_ns - a.t_ns) as f64;
    let watts_at_t = a.watts + (b.watts - a.watts) * (elapsed / span);
    elapsed * 1e-9 * (a.watts + watts_at_t) * 0.5
}

pub struct ChannelIntegrator {
    kind: ChannelKind,
    history: [Point; HISTORY],
    len: usize,
    newest: usize,
    previous_counter: Option<u64>,
    joules: f64,
    /// Intervals between changes of the raw value, for the observed update period. Only
    /// intervals inside one measured span count: a pause between runs is no update period.
    change_intervals: u64,
    change_intervals_ns: u64,
    last_change_ns: Option<u64>,
    /// When the current raw value was first seen.
    value_since_ns: u64,
    last_raw: Option<u64>,
    counter_resets: u64,
    rejected_in_a_row: u32,
    /// When and at what energy the counter last changed, within this span.
    stair_anchor: Option<(u64, f64)>,
    new_stair: Option<Stair>,
}

/// One step of a counter that moves in stairs: the energy it added between two changes.
/// The first change of a span has no known start, so it makes no stair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stair {
    pub t0_ns: u64,
    pub t1_ns: u64,
    pub joules: f64,
}

impl ChannelIntegrator {
    pub fn new(kind: ChannelKind) -> Self {
        ChannelIntegrator {
            kind,
            history: [Point::default(); HISTORY],
            len: 0,
            newest: 0,
            previous_counter: None,
            joules: 0.0,
            change_intervals: 0,
            change_intervals_ns: 0,
            last_change_ns: None,
            value_since_ns: 0,
            last_raw: None,
            counter_resets: 0,
            rejected_in_a_row: 0,
            stair_anchor: None,
            new_stair: None,
        }
    }

    /// Starts a new measured span after a pause: the energy so far is kept, but nothing is
    /// integrated across the pause.
    pub fn begin_span(&mut self) {
        self.len = 0;
        self.previous_counter = None;
        self.last_raw = None;
        self.last_change_ns = None;
        self.stair_anchor = None;
        self.new_stair = None;
    }

    /// The stair completed by the latest reading, once.
    pub fn take_stair(&mut self) -> Option<Stair> {
        self.new_stair.take()
    }

    pub fn joules(&self) -> f64 {
        self.joules
    }

    pub fn watts(&self) -> f64 {
        if self.len == 0 {
            0.0
        } else {
            self.history[self.newest].watts
        }
    }

    pub fn newest_t_ns(&self) -> Option<u64> {
        (self.len > 0).then(|| self.history[self.newest].t_ns)
    }

    pub fn counter_resets(&self) -> u64 {
        self.counter_resets
    }

    /// Mean time between changes of the raw sensor value, in ns; None until it changed twice.
    pub fn observed_update_period_ns(&self) -> Option<f64> {
        (self.change_intervals >= 1)
            .then(|| self.change_intervals_ns as f64 / self.change_intervals as f64)
    }

    /// Returns true when the raw value changed since the previous reading.
    fn note_raw_value(&mut self, t_ns: u64, raw: u64) -> bool {
        let changed = self.last_raw.is_some_and(|last| last != raw);
        if changed {
            if let Some(previous) = self.last_change_ns {
                self.change_intervals += 1;
                self.change_intervals_ns += t_ns - previous;
            }
            self.last_change_ns = Some(t_ns);
        }
        if changed || self.last_raw.is_none() {
            self.value_since_ns = t_ns;
        }
        self.last_raw = Some(raw);
        changed
    }

    /// The longest time the counter can have been accumulating the delta seen at `t_ns`.
    fn accumulation_ns(&self, t_ns: u64) -> u64 {
        let update_period = self
            .observed_update_period_ns()
            .map_or(ASSUMED_UPDATE_PERIOD_NS, |p| (2.0 * p) as u64);
        t_ns.saturating_sub(self.value_since_ns) + update_period
    }

    /// Adds one reading taken at `t_ns` (non-decreasing). Returns false when the reading was
    /// not used: a failed read, or a counter value that cannot be real.
    pub fn update(&mut self, t_ns: u64, sample: &Sample) -> bool {
        if !sample.ok {
            return false;
        }
        let previous = (self.len > 0).then(|| self.history[self.newest]);
        if previous.is_some_and(|p| t_ns <= p.t_ns) {
            return false;
        }
        let watts = match self.kind {
            ChannelKind::Counter {
                joules_per_unit,
                wrap_units,
            } => {
                let delta_joules = match (self.previous_counter, previous) {
                    (Some(prev), Some(_)) => {
                        let seconds = self.accumulation_ns(t_ns) as f64 * 1e-9;
                        let delta = counter_delta(prev, sample.counter_units, wrap_units)
                            .map(|units| units as f64 * joules_per_unit)
                            .filter(|joules| *joules <= MAX_PLAUSIBLE_COUNTER_WATTS * seconds);
                        match delta {
                            Some(joules) => joules,
                            None if self.rejected_in_a_row + 1 < REBASELINE_AFTER_REJECTS => {
                                self.rejected_in_a_row += 1;
                                return false;
                            }
                            None => {
                                self.counter_resets += 1;
                                0.0
                            }
                        }
                    }
                    _ => 0.0,
                };
                self.rejected_in_a_row = 0;
                let changed = self.note_raw_value(t_ns, sample.counter_units);
                self.previous_counter = Some(sample.counter_units);
                self.joules += delta_joules;
                if changed {
                    // The counter changed somewhere since the previous reading: the midpoint is
                    // the unbiased guess, off by at most half a sampling interval.
                    let change_ns = previous.map_or(t_ns, |p| p.t_ns + (t_ns - p.t_ns) / 2);
                    if let Some((t0_ns, joules_at_t0)) = self.stair_anchor {
                        self.new_stair = Some(Stair {
                            t0_ns,
                            t1_ns: change_ns,
                            joules: self.joules - joules_at_t0,
                        });
                    }
                    self.stair_anchor = Some((change_ns, self.joules));
                }
                if sample.power_watts.is_finite() {
                    sample.power_watts
                } else {
                    match previous {
                        Some(p) => delta_joules / ((t_ns - p.t_ns) as f64 * 1e-9),
                        None => 0.0,
                    }
                }
            }
            ChannelKind::Power => {
                let _ = self.note_raw_value(t_ns, sample.power_watts.to_bits());
                if let Some(p) = previous {
                    self.joules +=
                        (t_ns - p.t_ns) as f64 * 1e-9 * (p.watts + sample.power_watts) * 0.5;
                }
                sample.power_watts
            }
        };
        self.newest = (self.newest + 1) % HISTORY;
        self.len = (self.len + 1).min(HISTORY);
        self.history[self.newest] = Point {
            t_ns,
            joules: self.joules,
            watts,
        };
        true
    }

    fn point(&self, age: usize) -> &Point {
        &self.history[(self.newest + HISTORY - age) % HISTORY]
    }

    /// E(t): cumulative joules at `t_ns`, interpolated between the readings around it.
    ///
    /// Returns `(joules, exact)`; `exact` is false when `t_ns` lies outside the kept readings and
    /// the nearest one was used instead. Callers only ask for `t_ns` up to the newest reading.
    pub fn joules_at(&self, t_ns: u64) -> (f64, bool) {
        if self.len == 0 {
            return (self.joules, false);
        }
        let newest = self.point(0);
        if t_ns >= newest.t_ns {
            return (newest.joules, t_ns == newest.t_ns);
        }
        for age in 1..self.len {
            let a = self.point(age);
            if a.t_ns <= t_ns {
                let b = self.point(age - 1);
                let joules = match self.kind {
                    ChannelKind::Counter { .. } => {
                        let fraction = (t_ns - a.t_ns) as f64 / (b.t_ns - a.t_ns) as f64;
                        a.joules + (b.joules - a.joules) * fraction
                    }
                    ChannelKind::Power => a.joules + trapezoid_partial(a, b, t_ns),
                };
                return (joules, true);
            }
        }
        (self.point(self.len - 1).joules, false)
    }
}

/// The energy of each span between consecutive `boundaries_s`, from power readings at `times_s`,
/// by the same integrator the sampler uses. For tests and offline analysis.
pub fn integrate_power_spans(times_s: &[f64], watts: &[f64], boundaries_s: &[f64]) -> Vec<f64> {
    let to_ns = |s: f64| (s * 1e9).round() as u64;
    let mut integrator = ChannelIntegrator::new(ChannelKind::Power);
    let mut boundary_joules = Vec::with_capacity(boundaries_s.len());
    let mut pending = boundaries_s.iter().map(|&b| to_ns(b)).peekable();
    for (&t, &w) in times_s.iter().zip(watts) {
        integrator.update(to_ns(t), &Sample::power(w));
        let newest = integrator.newest_t_ns().unwrap_or(0);
        while let Some(&b) = pending.peek() {
            if b > newest {
                break;
            }
            boundary_joules.push(integrator.joules_at(b).0);
            pending.next();
        }
    }
    for b in pending {
        boundary_joules.push(integrator.joules_at(b).0);
    }
    boundary_joules.windows(2).map(|w| w[1] - w[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn counter_wrap_never_yields_negative_energy() {
        let range = 262_143_328_850u64;
        assert_eq!(counter_delta(range - 10, 5, Some(range)), Some(15));
        assert_eq!(counter_delta(100, 250, Some(range)), Some(150));
        assert_eq!(counter_delta(100, 100, Some(range)), Some(0));
    }

    #[test]
    fn counter_going_backwards_without_wrap_is_a_reset_not_a_huge_jump() {
        assert_eq!(counter_delta(1_000, 10, None), None);
    }

    #[test]
    fn wrapped_rapl_counter_accumulates_the_true_delta() {
        let range = 1_000_000u64;
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-6,
            wrap_units: Some(range),
        });
        channel.update(0, &Sample::counter(999_000, f64::NAN));
        channel.update(10 * MS, &Sample::counter(500, f64::NAN));
        assert!((channel.joules() - 1_500e-6).abs() < 1e-12);
    }

    #[test]
    fn torn_counter_reads_are_rejected_not_integrated() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-6,
            wrap_units: Some(262_143_328_850),
        });
        assert!(channel.update(0, &Sample::counter(5_000_000, f64::NAN)));
        // A torn read that looks like a wrap would add ~262 kJ in 1 ms.
        assert!(!channel.update(MS, &Sample::counter(4_000_000, f64::NAN)));
        assert!(channel.update(2 * MS, &Sample::counter(5_100_000, f64::NAN)));
        assert!((channel.joules() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_counter_reset_under_us_is_rebaselined_after_repeated_rejects() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        channel.update(0, &Sample::counter(1_000_000_000, f64::NAN));
        for i in 1..=5u64 {
            channel.update(i * 10 * MS, &Sample::counter(1_000 * i, f64::NAN));
        }
        assert!(channel.joules() < 10.0);
        assert_eq!(channel.counter_resets(), 1);
    }

    #[test]
    fn a_counter_with_power_readings_takes_its_energy_from_the_counter() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        // The power readings say 500 W; the counter says 100 J over the second: the counter wins,
        // and the power only feeds the trace.
        channel.update(0, &Sample::counter(0, 500.0));
        channel.update(1_000 * MS, &Sample::counter(100_000, 500.0));
        assert!((channel.joules() - 100.0).abs() < 1e-9);
        assert_eq!(channel.watts(), 500.0);
    }

    #[test]
    fn trapezoid_is_exact_for_linear_power() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Power);
        for i in 0..=10u64 {
            let t_s = i as f64 * 0.1;
            channel.update(i * 100 * MS, &Sample::power(10.0 + 20.0 * t_s));
        }
        // integral of 10 + 20t over [0, 1] = 10 + 10 = 20 J
        assert!((channel.joules() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn interpolation_inside_an_interval_follows_the_linear_power() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Power);
        channel.update(0, &Sample::power(0.0));
        channel.update(1_000 * MS, &Sample::power(100.0));
        // P = 100t, E(0.5) = 50 * 0.25 = 12.5 J
        let (joules, exact) = channel.joules_at(500 * MS);
        assert!(exact);
        assert!((joules - 12.5).abs() < 1e-9);
    }

    #[test]
    fn counter_interpolates_linearly_between_readings() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        channel.update(0, &Sample::counter(1_000, f64::NAN));
        channel.update(100 * MS, &Sample::counter(3_000, f64::NAN));
        let (joules, _) = channel.joules_at(25 * MS);
        assert!((joules - 0.5).abs() < 1e-12);
    }

    #[test]
    fn failed_readings_are_bridged_by_the_next_good_one() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Power);
        channel.update(0, &Sample::power(50.0));
        channel.update(100 * MS, &Sample::FAILED);
        channel.update(200 * MS, &Sample::power(50.0));
        assert!((channel.joules() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn span_energies_add_up_to_the_total_over_the_same_span() {
        let times: Vec<f64> = (0..50).map(|i| i as f64 * 0.01).collect();
        let watts: Vec<f64> = times
            .iter()
            .map(|t| 100.0 + 80.0 * (t * 37.0).sin())
            .collect();
        let boundaries = [0.0, 0.0137, 0.101, 0.2555, 0.3, 0.49];
        let spans = integrate_power_spans(&times, &watts, &boundaries);
        let whole = integrate_power_spans(&times, &watts, &[0.0, 0.49]);
        let sum: f64 = spans.iter().sum();
        assert!((sum - whole[0]).abs() <= 1e-9 * whole[0]);
    }

    #[test]
    fn counter_stairs_read_at_high_rates_keep_all_their_energy() {
        // 700 W in stairs every 100 ms, read every 1 ms for 5 s: each stair arrives between two
        // readings 1 ms apart, 70 J at once.
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        for i in 0..=5_000u64 {
            let stairs_done = i / 100;
            channel.update(i * MS, &Sample::counter(stairs_done * 70_000, f64::NAN));
        }
        assert!(
            (channel.joules() - 3_500.0).abs() < 1e-6,
            "{}",
            channel.joules()
        );
        assert_eq!(channel.counter_resets(), 0);
    }

    #[test]
    fn counter_stairs_at_ten_kilohertz_keep_all_their_energy() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        // 700 W in 20 ms stairs, read every 0.1 ms for 2 s.
        for i in 0..=20_000u64 {
            channel.update(i * MS / 10, &Sample::counter(i / 200 * 14_000, f64::NAN));
        }
        assert!(
            (channel.joules() - 1_400.0).abs() < 1e-6,
            "{}",
            channel.joules()
        );
    }

    #[test]
    fn each_counter_stair_after_the_first_is_reported_once_with_its_energy() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        let mut stairs = Vec::new();
        for i in 0..=350u64 {
            channel.update(i * MS, &Sample::counter(i / 100 * 50_000, f64::NAN));
            stairs.extend(channel.take_stair());
        }
        assert_eq!(stairs.len(), 2);
        assert!(stairs.iter().all(|s| (s.joules - 50.0).abs() < 1e-9));
        assert_eq!(stairs[0].t1_ns, stairs[1].t0_ns);
        assert!((stairs[1].t1_ns - stairs[1].t0_ns).abs_diff(100 * MS) < MS);
    }

    #[test]
    fn a_pause_between_spans_is_not_an_update_period() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        for i in 0..=100u64 {
            channel.update(i * MS, &Sample::counter(i / 20 * 1000, f64::NAN));
        }
        channel.begin_span();
        let hour = 3_600_000 * MS;
        for i in 0..=100u64 {
            channel.update(
                hour + i * MS,
                &Sample::counter(10_000 + i / 20 * 1000, f64::NAN),
            );
        }
        let period = channel.observed_update_period_ns().unwrap();
        assert!((period - 20.0 * MS as f64).abs() < 1.0, "{period}");
    }

    #[test]
    fn observed_update_period_counts_changes_not_reads() {
        let mut channel = ChannelIntegrator::new(ChannelKind::Counter {
            joules_per_unit: 1e-3,
            wrap_units: None,
        });
        // Read every 1 ms, value changes every 20 ms.
        for i in 0..=100u64 {
            channel.update(i * MS, &Sample::counter(i / 20 * 1000, f64::NAN));
        }
        let period = channel.observed_update_period_ns().unwrap();
        assert!((period - 20.0 * MS as f64).abs() < 1.0);
    }
}
