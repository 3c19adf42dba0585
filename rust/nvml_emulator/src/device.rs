//! The emulated devices and what their sensors report, from a configuration string.
//!
//! Sensor semantics follow the published behaviour of NVIDIA GPUs (Volta and newer):
//! - the total-energy counter (mJ) moves in stairs, once every `stair_ms`;
//! - `nvmlDeviceGetPowerUsage` is a trailing average over `average_s`, refreshed at each stair;
//! - the instant-power field (186) is the mean over the last `duty × instant_ms` of each
//!   `instant_ms` period, refreshed once per period;
//! - with `duty < 1` (A100/H100 report about 0.25) the counter too only sees that fraction of
//!   each stair and scales it up, so energy outside the observed window is never seen.
//!
//! These defaults are published figures (Yang, Adámek, Armour, SC'24), not yet confirmed on a
//! real device.

use std::sync::Mutex;

use crate::scenario::{Scenario, Timeline};

/// Seconds on CLOCK_MONOTONIC: the clock of `time.monotonic()` and of the meter's readings.
pub fn monotonic_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The environment variable holding the configuration, `key=value` pairs separated by `;`.
pub const CONFIG_VARIABLE: &str = "NVML_EMULATOR";

#[derive(Clone, Debug)]
pub struct Config {
    pub gpus: u32,
    pub stair_s: f64,
    pub instant_s: f64,
    pub duty: f64,
    pub average_s: f64,
    pub latency_us: u64,
    /// An NVML return code for `nvmlInit*` (0 = success).
    pub init_error: u32,
    /// Scenario time 0 on the monotonic clock; None = when the configuration is first read.
    pub origin_s: Option<f64>,
    pub name: String,
    pub scenarios: Vec<Scenario>,
    pub lost_after_s: Vec<Option<f64>>,
    pub energy_supported: Vec<bool>,
    pub mig: Vec<bool>,
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut pairs = Vec::new();
        for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{CONFIG_VARIABLE}: {item:?} is not key=value"))?;
            pairs.push((key.trim(), value.trim()));
        }
        let number = |key: &str, value: &str| {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{CONFIG_VARIABLE}: {key}={value:?} is not a number >= 0"))
        };
        let gpus = match pairs.iter().find(|(k, _)| *k == "gpus") {
            Some((k, v)) => number(k, v)? as u32,
            None => 1,
        };
        let n = gpus as usize;
        let default_scenario = Scenario::Constant { watts: 300.0 };
        let mut config = Config {
            gpus,
            stair_s: 0.1,
            instant_s: f64::NAN,
            duty: 1.0,
            average_s: 1.0,
            latency_us: 0,
            init_error: 0,
            origin_s: None,
            name: "NVIDIA H100 80GB HBM3".into(),
            scenarios: vec![default_scenario; n],
            lost_after_s: vec![None; n],
            energy_supported: vec![true; n],
            mig: vec![false; n],
        };
        for (key, value) in pairs {
            let (base, device) = match key.split_once('.') {
                Some((base, index)) => {
                    let index: usize = index
                        .parse()
                        .ok()
                        .filter(|i| *i < n)
                        .ok_or_else(|| format!("{CONFIG_VARIABLE}: {key}: no GPU {index}"))?;
                    (base, Some(index))
                }
                None => (key, None),
            };
            let targets: Vec<usize> = device.map_or_else(|| (0..n).collect(), |i| vec![i]);
            match base {
                "gpus" => {}
                "stair_ms" => config.stair_s = number(key, value)? * 1e-3,
                "instant_ms" => config.instant_s = number(key, value)? * 1e-3,
                "duty" => config.duty = number(key, value)?.clamp(0.01, 1.0),
                "average_s" => config.average_s = number(key, value)?,
                "latency_us" => config.latency_us = number(key, value)? as u64,
                "init_error" => config.init_error = number(key, value)? as u32,
                "origin_s" => config.origin_s = Some(number(key, value)?),
                "name" => config.name = value.to_string(),
                "scenario" => {
                    let scenario = Scenario::parse(value)?;
                    for i in targets {
                        config.scenarios[i] = scenario.clone();
                    }
                }
                "lost_after_s" => {
                    let after = number(key, value)?;
                    for i in targets {
                        config.lost_after_s[i] = Some(after);
                    }
                }
                "no_energy" => {
                    for i in targets {
                        config.energy_supported[i] = value == "0";
                    }
                }
                "mig" => {
                    for i in targets {
                        config.mig[i] = value != "0";
                    }
                }
                _ => return Err(format!("{CONFIG_VARIABLE}: unknown key {key:?}")),
            }
        }
        if config.stair_s <= 0.0 {
            return Err(format!("{CONFIG_VARIABLE}: stair_ms must be > 0"));
        }
        if config.instant_s.is_nan() || config.instant_s <= 0.0 {
            config.instant_s = config.stair_s;
        }
        Ok(config)
    }
}

/// The energy the counter has reported: stairs counted so far and their joules.
#[derive(Clone, Copy, Default)]
struct CounterState {
    stairs: u64,
    joules: f64,
}

pub struct Device {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    pub mig: bool,
    pub energy_supported: bool,
    pub lost_after_s: Option<f64>,
    timeline: Mutex<Timeline>,
    counter: Mutex<CounterState>,
}

/// What the counter says since driver load, before this emulated run: a real counter starts
/// far from zero, and readers must difference it.
const COUNTER_BASE_MJ: u64 = 123_456_789;

pub struct Emulator {
    pub config: Config,
    pub origin_s: f64,
    pub loaded_s: f64,
    pub devices: Vec<Device>,
}

impl Emulator {
    pub fn new(config: Config) -> Emulator {
        let loaded_s = monotonic_s();
        let origin_s = config.origin_s.unwrap_or(loaded_s);
        let devices = (0..config.gpus as usize)
            .map(|i| Device {
                index: i as u32,
                uuid: format!(
                    "GPU-e0000000-0000-4000-8000-{:012x}",
                    0xe1u64 * 0x1000 + i as u64
                ),
                name: config.name.clone(),
                pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + i),
                mig: config.mig[i],
                energy_supported: config.energy_supported[i],
                lost_after_s: config.lost_after_s[i],
                timeline: Mutex::new(Timeline::new(config.scenarios[i].clone())),
                counter: Mutex::new(CounterState::default()),
            })
            .collect();
        Emulator {
            config,
            origin_s,
            loaded_s,
            devices,
        }
    }

    /// Scenario time now.
    pub fn now_s(&self) -> f64 {
        monotonic_s() - self.origin_s
    }

    pub fn is_lost(&self, device: &Device) -> bool {
        device
            .lost_after_s
            .is_some_and(|after| monotonic_s() - self.loaded_s >= after)
    }

    pub fn switch(&self, device: &Device, scenario: Scenario) {
        let now = self.now_s();
        device
            .timeline
            .lock()
            .expect("timeline")
            .switch(now, scenario);
    }

    /// True joules between two instants on the monotonic clock.
    pub fn true_joules(&self, device: &Device, t0_mono_s: f64, t1_mono_s: f64) -> f64 {
        let timeline = device.timeline.lock().expect("timeline");
        timeline.joules_at(t1_mono_s - self.origin_s)
            - timeline.joules_at(t0_mono_s - self.origin_s)
    }

    pub fn true_watts(&self, device: &Device, t_mono_s: f64) -> f64 {
        let timeline = device.timeline.lock().expect("timeline");
        timeline.watts_at(t_mono_s - self.origin_s)
    }

    /// The energy counter in mJ: the reported energy of every finished stair.
    pub fn counter_mj(&self, device: &Device) -> u64 {
        let stair = self.config.stair_s;
        let finished = (self.now_s() / stair).floor().max(0.0) as u64;
        let timeline = device.timeline.lock().expect("timeline");
        let mut counter = device.counter.lock().expect("counter");
        if self.config.duty >= 1.0 {
            counter.stairs = finished;
            counter.joules = timeline.joules_at(finished as f64 * stair);
        } else {
            let observed = self.config.duty * stair;
            while counter.stairs < finished {
                counter.stairs += 1;
                let end = counter.stairs as f64 * stair;
                counter.joules += stair * timeline.mean_watts(end - observed, end);
            }
        }
        COUNTER_BASE_MJ + (counter.joules * 1e3).floor() as u64
    }

    /// `nvmlDeviceGetPowerUsage` in mW: the trailing average at the newest stair.
    pub fn power_usage_mw(&self, device: &Device) -> u32 {
        let stair = self.config.stair_s;
        let end = (self.now_s() / stair).floor().max(0.0) * stair;
        let timeline = device.timeline.lock().expect("timeline");
        let watts = timeline.mean_watts(end - self.config.average_s, end);
        (watts * 1e3).round() as u32
    }

    /// The instant-power field: (mW, timestamp in µs on the monotonic clock).
    pub fn instant_power(&self, device: &Device) -> (u32, i64) {
        let period = self.config.instant_s;
        let end = (self.now_s() / period).floor().max(0.0) * period;
        let timeline = device.timeline.lock().expect("timeline");
        let watts = timeline.mean_watts(end - self.config.duty * period, end);
        (
            (watts * 1e3).round() as u32,
            ((end + self.origin_s) * 1e6) as i64,
        )
    }

    /// Temperature, memory and utilisation follow the true power, so they move in a run.
    pub fn watts_now(&self, device: &Device) -> f64 {
        device
            .timeline
            .lock()
            .expect("timeline")
            .watts_at(self.now_s())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emulator(text: &str) -> Emulator {
        let mut config = Config::parse(text).unwrap();
        // Scenario time 0 one hour ago, so stairs are far from the start.
        config.origin_s = Some(monotonic_s() - 3600.0);
        Emulator::new(config)
    }

    #[test]
    fn counter_moves_in_stairs_and_matches_the_truth_at_each_stair() {
        let emulator = emulator("gpus=2;stair_ms=100;scenario=constant:700");
        let device = &emulator.devices[1];
        let mj = emulator.counter_mj(device) - COUNTER_BASE_MJ;
        let finished = (emulator.now_s() / 0.1).floor();
        assert!((mj as f64 - finished * 0.1 * 700.0 * 1e3).abs() <= 1.0);
        assert_eq!(mj % 70_000, 0, "whole stairs of 70 J");
    }

    #[test]
    fn a_quarter_duty_window_sees_only_the_end_of_each_stair() {
        let config = "stair_ms=100;duty=0.25;scenario=phases:0.075@0,0.025@400";
        let mut parsed = Config::parse(config).unwrap();
        parsed.origin_s = Some(monotonic_s() - 1.0);
        let emulator = Emulator::new(parsed);
        // Every stair's observed window is the 400 W phase: the counter says 400 W throughout.
        let mj = emulator.counter_mj(&emulator.devices[0]) - COUNTER_BASE_MJ;
        assert!(mj >= 10 * 40_000 - 1, "{mj}");
    }

    #[test]
    fn configuration_names_the_bad_key() {
        assert!(Config::parse("gpus=2;lost_after_s.5=1")
            .unwrap_err()
            .contains("no GPU 5"));
        assert!(Config::parse("colour=red").unwrap_err().contains("colour"));
    }
}
