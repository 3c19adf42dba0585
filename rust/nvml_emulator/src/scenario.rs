//! Ground-truth power programs and their exact integrals.
//!
//! A scenario is a function of scenario time (seconds since the device's program started). Its
//! energy is integrated in closed form, so the truth a test compares with carries no numerical
//! error of its own.

#[derive(Clone, Debug, PartialEq)]
pub enum Scenario {
    Constant {
        watts: f64,
    },
    /// `high_watts` for the first half of each period, `low_watts` for the second.
    Square {
        low_watts: f64,
        high_watts: f64,
        period_s: f64,
    },
    /// `(duration_s, watts)` phases, repeated for ever.
    Phases {
        phases: Vec<(f64, f64)>,
    },
}

impl Scenario {
    /// Parses `constant:300`, `square:100,500,0.2` or `phases:0.010@600,0.020@450,0.005@300,0.065@60`.
    pub fn parse(spec: &str) -> Result<Scenario, String> {
        let (kind, params) = spec
            .split_once(':')
            .ok_or_else(|| format!("scenario {spec:?}: expected KIND:PARAMS"))?;
        let number = |text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("scenario {spec:?}: {text:?} is not a number"))
        };
        let scenario = match kind.trim() {
            "constant" => Scenario::Constant {
                watts: number(params)?,
            },
            "square" => {
                let values = params
                    .split(',')
                    .map(number)
                    .collect::<Result<Vec<_>, _>>()?;
                match values[..] {
                    [low_watts, high_watts, period_s] => Scenario::Square {
                        low_watts,
                        high_watts,
                        period_s,
                    },
                    _ => return Err(format!("scenario {spec:?}: square takes low,high,period_s")),
                }
            }
            "phases" => {
                let phases = params
                    .split(',')
                    .map(|phase| {
                        let (duration, watts) = phase.split_once('@').ok_or_else(|| {
                            format!("scenario {spec:?}: a phase is DURATION_S@WATTS")
                        })?;
                        Ok((number(duration)?, number(watts)?))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Scenario::Phases { phases }
            }
            other => {
                return Err(format!(
                    "scenario {spec:?}: unknown kind {other:?} (constant, square, phases)"
                ))
            }
        };
        scenario.validate().map(|()| scenario)
    }

    fn validate(&self) -> Result<(), String> {
        let ok = match self {
            Scenario::Constant { watts } => *watts >= 0.0,
            Scenario::Square {
                low_watts,
                high_watts,
                period_s,
            } => *low_watts >= 0.0 && *high_watts >= 0.0 && *period_s > 0.0,
            Scenario::Phases { phases } => {
                !phases.is_empty() && phases.iter().all(|(d, w)| *d > 0.0 && *w >= 0.0)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "scenario {self:?}: durations must be > 0 and watts >= 0"
            ))
        }
    }

    pub fn watts_at(&self, t_s: f64) -> f64 {
        let t_s = t_s.max(0.0);
        match self {
            Scenario::Constant { watts } => *watts,
            Scenario::Square {
                low_watts,
                high_watts,
                period_s,
            } => {
                if (t_s / period_s).fract() < 0.5 {
                    *high_watts
                } else {
                    *low_watts
                }
            }
            Scenario::Phases { phases } => {
                let period: f64 = phases.iter().map(|p| p.0).sum();
                let mut within = t_s % period;
                for (duration, watts) in phases {
                    if within < *duration {
                        return *watts;
                    }
                    within -= duration;
                }
                phases[phases.len() - 1].1
            }
        }
    }

    /// Joules from scenario time 0 to `t_s` (0 for `t_s <= 0`).
    pub fn joules_until(&self, t_s: f64) -> f64 {
        if t_s <= 0.0 {
            return 0.0;
        }
        match self {
            Scenario::Constant { watts } => watts * t_s,
            Scenario::Square {
                low_watts,
                high_watts,
                period_s,
            } => {
                let half = period_s * 0.5;
                let periods = (t_s / period_s).floor();
                let rest = t_s - periods * period_s;
                periods * (low_watts + high_watts) * half
                    + high_watts * rest.min(half)
                    + low_watts * (rest - half).max(0.0)
            }
            Scenario::Phases { phases } => {
                let period: f64 = phases.iter().map(|p| p.0).sum();
                let per_period: f64 = phases.iter().map(|(d, w)| d * w).sum();
                let periods = (t_s / period).floor();
                let mut rest = t_s - periods * period;
                let mut joules = periods * per_period;
                for (duration, watts) in phases {
                    let part = rest.min(*duration);
                    joules += part * watts;
                    rest -= part;
                    if rest <= 0.0 {
                        break;
                    }
                }
                joules
            }
        }
    }
}

/// A scenario that started at `start_s` (scenario time), with the energy spent before it.
#[derive(Clone, Debug)]
struct Segment {
    start_s: f64,
    joules_before: f64,
    scenario: Scenario,
}

/// The scenarios a device ran, in time order: tests may switch them live.
#[derive(Clone, Debug)]
pub struct Timeline {
    segments: Vec<Segment>,
}

impl Timeline {
    pub fn new(scenario: Scenario) -> Self {
        Timeline {
            segments: vec![Segment {
                start_s: 0.0,
                joules_before: 0.0,
                scenario,
            }],
        }
    }

    fn segment_at(&self, t_s: f64) -> &Segment {
        let after = self.segments.partition_point(|s| s.start_s <= t_s);
        &self.segments[after.saturating_sub(1)]
    }

    /// Cumulative true joules at scenario time `t_s`.
    pub fn joules_at(&self, t_s: f64) -> f64 {
        let segment = self.segment_at(t_s);
        segment.joules_before + segment.scenario.joules_until(t_s - segment.start_s)
    }

    pub fn watts_at(&self, t_s: f64) -> f64 {
        let segment = self.segment_at(t_s);
        segment.scenario.watts_at(t_s - segment.start_s)
    }

    /// Runs `scenario` from `t_s` on (its own time 0 at `t_s`). Times before the newest switch
    /// are moved up to it: history is never rewritten.
    pub fn switch(&mut self, t_s: f64, scenario: Scenario) {
        let newest = self.segments.last().map_or(0.0, |s| s.start_s);
        let start_s = t_s.max(newest);
        let joules_before = self.joules_at(start_s);
        self.segments.push(Segment {
            start_s,
            joules_before,
            scenario,
        });
    }

    /// Mean true watts over `[a_s, b_s]`; the power at `b_s` when the span is empty.
    pub fn mean_watts(&self, a_s: f64, b_s: f64) -> f64 {
        let a_s = a_s.max(0.0);
        if b_s - a_s <= 0.0 {
            return self.watts_at(b_s.max(0.0));
        }
        (self.joules_at(b_s) - self.joules_at(a_s)) / (b_s - a_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_program_energy_is_exact_over_periods_and_parts() {
        let program = Scenario::parse("phases:0.010@600,0.020@450,0.005@300,0.065@60").unwrap();
        let per_period = 0.010 * 600.0 + 0.020 * 450.0 + 0.005 * 300.0 + 0.065 * 60.0;
        assert!((program.joules_until(1.0) - 10.0 * per_period).abs() < 1e-9);
        assert!((program.joules_until(0.015) - (6.0 + 0.005 * 450.0)).abs() < 1e-9);
        assert_eq!(program.watts_at(0.031), 300.0);
    }

    #[test]
    fn square_wave_energy_matches_its_halves() {
        let square = Scenario::parse("square:100,500,0.2").unwrap();
        assert!(
            (square.joules_until(0.3) - (0.1 * 500.0 + 0.1 * 100.0 + 0.1 * 500.0)).abs() < 1e-9
        );
    }

    #[test]
    fn a_live_switch_keeps_the_energy_before_it() {
        let mut timeline = Timeline::new(Scenario::Constant { watts: 100.0 });
        timeline.switch(2.0, Scenario::Constant { watts: 300.0 });
        assert!((timeline.joules_at(3.0) - 500.0).abs() < 1e-9);
        assert!((timeline.mean_watts(1.0, 3.0) - 200.0).abs() < 1e-9);
    }

    #[test]
    fn malformed_scenarios_are_refused_with_the_reason() {
        assert!(Scenario::parse("phases:0.01@600,oops").is_err());
        assert!(Scenario::parse("square:1,2").is_err());
        assert!(Scenario::parse("constant:-5").is_err());
    }
}
