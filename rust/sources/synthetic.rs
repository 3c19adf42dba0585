//! Analytic power traces, so tests and benchmarks know the exact integral.

use crate::channel::{ChannelKind, ChannelSpec, Provenance, Sample};
use crate::error::{CoreError, CoreResult};
use crate::sources::{Source, SOURCE_SYNTHETIC};

#[derive(Clone, Debug, PartialEq)]
pub enum Trace {
    Constant {
        watts: f64,
    },
    /// `high_watts` for the first half of each period, `low_watts` for the second.
    Square {
        low_watts: f64,
        high_watts: f64,
        period_s: f64,
    },
    Ramp {
        start_watts: f64,
        watts_per_s: f64,
    },
    /// Linear between `(t_s, watts)` points, held flat before the first and after the last.
    Piecewise {
        points: Vec<(f64, f64)>,
    },
}

impl Trace {
    pub fn validate(&self) -> CoreResult<()> {
        let bad = |what: String| Err(CoreError::Config(format!("synthetic trace: {what}")));
        match self {
            Trace::Square { period_s, .. } if period_s.is_nan() || *period_s <= 0.0 => {
                bad(format!("period_s={period_s} must be > 0"))
            }
            Trace::Piecewise { points } if points.is_empty() => {
                bad("piecewise trace needs at least one (t_s, watts) point".into())
            }
            Trace::Piecewise { points } if points.windows(2).any(|w| w[1].0 <= w[0].0) => {
                bad("piecewise points must have strictly increasing t_s".into())
            }
            _ => Ok(()),
        }
    }

    pub fn watts_at(&self, t_s: f64) -> f64 {
        match self {
            Trace::Constant { watts } => *watts,
            Trace::Square {
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
            Trace::Ramp {
                start_watts,
                watts_per_s,
            } => start_watts + watts_per_s * t_s,
            Trace::Piecewise { points } => {
                let first = points[0];
                if t_s <= first.0 {
                    return first.1;
                }
                for pair in points.windows(2) {
                    let ((t0, w0), (t1, w1)) = (pair[0], pair[1]);
                    if t_s <= t1 {
                        return w0 + (w1 - w0) * (t_s - t0) / (t1 - t0);
                    }
                }
                points[points.len() - 1].1
            }
        }
    }
}

pub struct SyntheticSource {
    traces: Vec<Trace>,
    channels: Vec<ChannelSpec>,
    origin_ns: Option<u64>,
    /// Every read fails from this many seconds after the origin: a sensor dying mid-run.
    fail_after_s: Option<f64>,
}

impl SyntheticSource {
    pub fn new(traces: Vec<Trace>, fail_after_s: Option<f64>) -> CoreResult<Self> {
        if traces.is_empty() {
            return Err(CoreError::Config(
                "synthetic source needs at least one trace".into(),
            ));
        }
        for trace in &traces {
            trace.validate()?;
        }
        let channels = (0..traces.len())
            .map(|i| ChannelSpec {
                name: format!("synthetic:{i}"),
                kind: ChannelKind::Power,
                provenance: Provenance::Measured,
                source: SOURCE_SYNTHETIC,
                parent: None,
            })
            .collect();
        Ok(SyntheticSource {
            traces,
            channels,
            origin_ns: None,
            fail_after_s,
        })
    }

    /// The instant trace time 0 corresponds to: the first reading ever taken.
    pub fn origin_ns(&self) -> Option<u64> {
        self.origin_ns
    }
}

impl Source for SyntheticSource {
    fn name(&self) -> &'static str {
        SOURCE_SYNTHETIC
    }

    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self, t_ns: u64, out: &mut [Sample]) {
        let origin = *self.origin_ns.get_or_insert(t_ns);
        let t_s = (t_ns - origin) as f64 * 1e-9;
        let failing = self.fail_after_s.is_some_and(|after| t_s >= after);
        for (slot, trace) in out.iter_mut().zip(&self.traces) {
            *slot = if failing {
                Sample::FAILED
            } else {
                Sample::power(trace.watts_at(t_s))
            };
        }
    }

    fn describe(&self) -> Vec<(String, String)> {
        let mut facts = vec![("traces".to_string(), format!("{:?}", self.traces))];
        if let Some(origin) = self.origin_ns {
            facts.push((
                "origin_s".to_string(),
                format!("{:.9}", origin as f64 * 1e-9),
            ));
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piecewise_interpolates_and_holds_at_the_ends() {
        let trace = Trace::Piecewise {
            points: vec![(1.0, 10.0), (3.0, 30.0)],
        };
        assert_eq!(trace.watts_at(0.0), 10.0);
        assert_eq!(trace.watts_at(2.0), 20.0);
        assert_eq!(trace.watts_at(9.0), 30.0);
    }

    #[test]
    fn square_wave_alternates_each_half_period() {
        let trace = Trace::Square {
            low_watts: 1.0,
            high_watts: 2.0,
            period_s: 1.0,
        };
        assert_eq!(trace.watts_at(0.25), 2.0);
        assert_eq!(trace.watts_at(0.75), 1.0);
    }

    #[test]
    fn unordered_piecewise_points_are_a_config_error() {
        let trace = Trace::Piecewise {
            points: vec![(2.0, 1.0), (1.0, 1.0)],
        };
        assert!(matches!(trace.validate(), Err(CoreError::Config(_))));
    }

    #[test]
    fn source_fails_after_the_configured_time() {
        let mut source =
            SyntheticSource::new(vec![Trace::Constant { watts: 5.0 }], Some(1.0)).unwrap();
        let mut out = [Sample::FAILED];
        source.read(0, &mut out);
        assert!(out[0].ok);
        source.read(2_000_000_000, &mut out);
        assert!(!out[0].ok);
    }
}
