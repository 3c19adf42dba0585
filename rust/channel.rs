//! What a channel is and what one reading of it holds.

/// The most channels one meter integrates. Fixed so that records and trace rows are plain
/// arrays: the sampler never allocates while it runs. 8 GPUs plus 2 sockets of RAPL zones fit.
pub const MAX_CHANNELS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChannelKind {
    /// A hardware energy counter (NVML mJ, RAPL µJ). `wrap_units` is the value at which it wraps
    /// to zero; None for counters that never wrap within a run.
    Counter {
        joules_per_unit: f64,
        wrap_units: Option<u64>,
    },
    /// Instant power in watts, integrated by the trapezoidal rule.
    Power,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    Measured,
    Estimated,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Measured => "measured",
            Provenance::Estimated => "estimated",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSpec {
    /// `gpu:0`, `cpu:package-0`, `dram:0`, `cpu:estimate`, `synthetic:0`.
    pub name: String,
    pub kind: ChannelKind,
    pub provenance: Provenance,
    pub source: &'static str,
    /// The channel this one is a part of (RAPL core inside package): never summed with it.
    pub parent: Option<String>,
}

impl ChannelSpec {
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            ChannelKind::Counter { .. } => "counter",
            ChannelKind::Power => "power",
        }
    }
}

/// One reading of one channel. A counter fills `counter_units`; every channel may fill
/// `power_watts` (NaN when it has none). `ok == false` marks a failed read: it is skipped, and
/// the next good reading spans the gap.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub counter_units: u64,
    pub power_watts: f64,
    pub ok: bool,
}

impl Sample {
    pub const FAILED: Sample = Sample {
        counter_units: 0,
        power_watts: f64::NAN,
        ok: false,
    };

    pub fn power(watts: f64) -> Sample {
        Sample {
            counter_units: 0,
            power_watts: watts,
            ok: watts.is_finite(),
        }
    }

    pub fn counter(units: u64, power_watts: f64) -> Sample {
        Sample {
            counter_units: units,
            power_watts,
            ok: true,
        }
    }
}
