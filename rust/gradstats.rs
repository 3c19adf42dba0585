//! Per-layer gradient statistics: a bounded history per series, rolling windows, and anomaly
//! flags raised as rows are pushed.
//!
//! One row per training step holds, for each watched layer (or layer group), the gradient's L2
//! norm, its largest absolute value and its count of NaN/Inf values. A negative norm marks a
//! layer that had no gradient in that step: it is skipped, not treated as zero. The ring adds a
//! `total` series (the norm over every layer), and takes the loss and the device memory as two
//! more series, so that the same detectors serve the live run and the offline pass over a store.
//!
//! An anomaly is reported when a series *enters* an anomalous state, and again only after at
//! least one normal value: a run of NaN steps is one anomaly, not one per step.

use std::collections::VecDeque;

use crate::error::{CoreError, CoreResult};

/// Figures per layer in a pushed row: L2 norm, max |g|, NaN/Inf count.
pub const STATS_PER_LAYER: usize = 3;
/// Pending anomalies kept between drains; beyond this they are counted, not kept.
pub const MAX_PENDING_ANOMALIES: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AnomalyKind {
    GradientExplosion = 0,
    VanishingGradient = 1,
    NanOrInf = 2,
    LossSpike = 3,
    MemorySpike = 4,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::GradientExplosion,
        AnomalyKind::VanishingGradient,
        AnomalyKind::NanOrInf,
        AnomalyKind::LossSpike,
        AnomalyKind::MemorySpike,
    ];

    /// The name the store, the logs and Prometheus use.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::GradientExplosion => "gradient_explosion",
            AnomalyKind::VanishingGradient => "vanishing_gradient",
            AnomalyKind::NanOrInf => "nan_or_inf",
            AnomalyKind::LossSpike => "loss_spike",
            AnomalyKind::MemorySpike => "memory_spike",
        }
    }
}

/// One flagged value: what was seen, the limit it crossed and the rolling statistic behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anomaly {
    pub step: u64,
    pub kind: AnomalyKind,
    /// Layer index, or `n_layers` (total), `n_layers + 1` (loss), `n_layers + 2` (memory).
    pub series: usize,
    pub value: f64,
    pub threshold: f64,
    /// The rolling median the value was compared with (the run length for vanishing gradients);
    /// NaN while the window is still filling.
    pub statistic: f64,
}

/// Every limit the detectors use. `Default` holds the documented defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Values in each rolling window.
    pub window: usize,
    /// Values a window needs before the relative detectors (explosion, loss, memory) fire.
    pub min_history: usize,
    /// A gradient norm above `explosion_factor` × the rolling median is an explosion.
    pub explosion_factor: f64,
    /// A gradient norm above this is an explosion whatever the history (infinity: off).
    pub explosion_threshold: f64,
    /// A norm below this for `vanishing_steps` consecutive steps is a vanishing gradient.
    pub vanishing_eps: f64,
    pub vanishing_steps: u32,
    /// A loss whose robust z-score (median/MAD over the window) exceeds this is a spike.
    pub loss_z_threshold: f64,
    /// Device memory above `memory_spike_factor` × the rolling median is a spike.
    pub memory_spike_factor: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            window: 100,
            min_history: 20,
            explosion_factor: 10.0,
            explosion_threshold: f64::INFINITY,
            vanishing_eps: 1e-8,
            vanishing_steps: 50,
            loss_z_threshold: 10.0,
            memory_spike_factor: 1.5,
        }
    }
}

fn config_error(field: &str, value: impl std::fmt::Display, rule: &str) -> CoreError {
    CoreError::Config(format!("{field} = {value} is invalid: {rule}"))
}

impl Thresholds {
    pub fn validate(&self) -> CoreResult<()> {
        if self.window < 3 {
            return Err(config_error("window", self.window, "it must be at least 3"));
        }
        if self.min_history < 1 || self.min_history > self.window {
            return Err(config_error(
                "min_history",
                self.min_history,
                "it must be between 1 and window",
            ));
        }
        for (field, value) in [
            ("explosion_factor", self.explosion_factor),
            ("loss_z_threshold", self.loss_z_threshold),
            ("memory_spike_factor", self.memory_spike_factor),
            ("explosion_threshold", self.explosion_threshold),
        ] {
            if value.is_nan() || value <= 0.0 {
                return Err(config_error(field, value, "it must be a positive number"));
            }
        }
        if !(self.vanishing_eps >= 0.0 && self.vanishing_eps.is_finite()) {
            return Err(config_error(
                "vanishing_eps",
                self.vanishing_eps,
                "it must be a finite number >= 0",
            ));
        }
        if self.vanishing_steps < 1 {
            return Err(config_error(
                "vanishing_steps",
                self.vanishing_steps,
                "it must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The last `capacity` finite values of a series, in arrival order and sorted: the median is an
/// index, and one push costs a binary search plus a shift of at most `capacity` values.
#[derive(Clone, Debug)]
pub struct RollingWindow {
    capacity: usize,
    values: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl RollingWindow {
    pub fn new(capacity: usize) -> Self {
        RollingWindow {
            capacity,
            values: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, value: f64) {
        if self.values.len() == self.capacity {
            if let Some(oldest) = self.values.pop_front() {
                let at = self
                    .sorted
                    .partition_point(|v| v.total_cmp(&oldest).is_lt());
                self.sorted.remove(at);
            }
        }
        self.values.push_back(value);
        let at = self.sorted.partition_point(|v| v.total_cmp(&value).is_le());
        self.sorted.insert(at, value);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn median(&self) -> f64 {
        median_of_sorted(&self.sorted)
    }

    /// Mean of the window (NaN when empty), by a pass over it so that no cancellation builds up.
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// Population standard deviation (ddof 0) of the window, two-pass.
    pub fn std(&self) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        let mean = self.mean();
        let squares: f64 = self.values.iter().map(|v| (v - mean) * (v - mean)).sum();
        (squares / self.values.len() as f64).sqrt()
    }

    /// Median absolute deviation from the median.
    pub fn mad(&self) -> f64 {
        let median = self.median();
        let mut deviations: Vec<f64> = self.sorted.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(|a, b| a.total_cmp(b));
        median_of_sorted(&deviations)
    }

    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().copied()
    }
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The last `capacity` rows of one series (step and its three figures), oldest first.
#[derive(Clone, Debug)]
pub struct History {
    capacity: usize,
    steps: VecDeque<u64>,
    rows: VecDeque<[f32; STATS_PER_LAYER]>,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History {
            capacity,
            steps: VecDeque::with_capacity(capacity),
            rows: VecDeque::with_capacity(capacity),
        }
    }

    fn push(&mut self, step: u64, row: [f32; STATS_PER_LAYER]) {
        if self.steps.len() == self.capacity {
            self.steps.pop_front();
            self.rows.pop_front();
        }
        self.steps.push_back(step);
        self.rows.push_back(row);
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, [f32; STATS_PER_LAYER])> + '_ {
        self.steps.iter().copied().zip(self.rows.iter().copied())
    }
}

#[derive(Clone, Debug)]
struct Series {
    history: History,
    window: RollingWindow,
    relative_active: bool,
    nonfinite_active: bool,
    below_eps_run: u32,
}

impl Series {
    fn new(history_capacity: usize, window: usize) -> Self {
        Series {
            history: History::new(history_capacity),
            window: RollingWindow::new(window),
            relative_active: false,
            nonfinite_active: false,
            below_eps_run: 0,
        }
    }
}

/// The gradient-statistics ring of one run. Not thread-safe by itself: the binding wraps it in a
/// mutex, and the training thread is its only writer.
#[derive(Clone, Debug)]
pub struct GradientRing {
    thresholds: Thresholds,
    n_layers: usize,
    history_capacity: usize,
    /// Layers, then total, loss and memory.
    series: Vec<Series>,
    pending: Vec<Anomaly>,
    anomalies_dropped: u64,
    rows_pushed: u64,
}

impl GradientRing {
    pub fn new(
        n_layers: usize,
        history_capacity: usize,
        thresholds: Thresholds,
    ) -> CoreResult<Self> {
        thresholds.validate()?;
        if n_layers == 0 {
            return Err(config_error(
                "n_layers",
                n_layers,
                "a ring needs at least one layer",
            ));
        }
        if history_capacity == 0 {
            return Err(config_error(
                "history_capacity",
                history_capacity,
                "it must be at least 1",
            ));
        }
        let series = (0..n_layers + 3)
            .map(|_| Series::new(history_capacity, thresholds.window))
            .collect();
        Ok(GradientRing {
            thresholds,
            n_layers,
            history_capacity,
            series,
            pending: Vec::new(),
            anomalies_dropped: 0,
            rows_pushed: 0,
        })
    }

    pub fn n_layers(&self) -> usize {
        self.n_layers
    }
    pub fn total_series(&self) -> usize {
        self.n_layers
    }
    pub fn loss_series(&self) -> usize {
        self.n_layers + 1
    }
    pub fn memory_series(&self) -> usize {
        self.n_layers + 2
    }
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
    pub fn history_capacity(&self) -> usize {
        self.history_capacity
    }
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }
    pub fn anomalies_dropped(&self) -> u64 {
        self.anomalies_dropped
    }
    pub fn rows_pushed(&self) -> u64 {
        self.rows_pushed
    }
    pub fn pending_anomalies(&self) -> usize {
        self.pending.len()
    }

    fn flag(&mut self, anomaly: Anomaly) {
        if self.pending.len() < MAX_PENDING_ANOMALIES {
            self.pending.push(anomaly);
        } else {
            self.anomalies_dropped += 1;
        }
    }

    /// One step's row: `STATS_PER_LAYER` figures per layer, layer after layer. Returns how many
    /// anomalies the row raised.
    pub fn push_gradients(&mut self, step: u64, row: &[f32]) -> CoreResult<usize> {
        if row.len() != self.n_layers * STATS_PER_LAYER {
            return Err(CoreError::Config(format!(
                "a gradient row has {} values; this ring takes {} ({} layers x {STATS_PER_LAYER})",
                row.len(),
                self.n_layers * STATS_PER_LAYER,
                self.n_layers
            )));
        }
        let before = self.pending.len() as u64 + self.anomalies_dropped;
        let mut squares = 0.0f64;
        let mut largest = 0.0f32;
        let mut nonfinite = 0.0f32;
        let mut present = false;
        for (layer, stats) in row.chunks_exact(STATS_PER_LAYER).enumerate() {
            let figures = [stats[0], stats[1], stats[2]];
            if figures[0] < 0.0 {
                continue;
            }
            present = true;
            squares += f64::from(figures[0]) * f64::from(figures[0]);
            // NaN never wins a comparison, so it is carried over explicitly.
            largest = if figures[1].is_nan() || figures[1] > largest {
                figures[1]
            } else {
                largest
            };
            nonfinite += figures[2];
            self.gradient_figures(layer, step, figures);
        }
        if present {
            let total = [squares.sqrt() as f32, largest, nonfinite];
            self.gradient_figures(self.n_layers, step, total);
        }
        self.rows_pushed += 1;
        Ok((self.pending.len() as u64 + self.anomalies_dropped - before) as usize)
    }

    fn gradient_figures(&mut self, index: usize, step: u64, figures: [f32; STATS_PER_LAYER]) {
        let t = &self.thresholds;
        let (explosion_factor, explosion_threshold) = (t.explosion_factor, t.explosion_threshold);
        let (vanishing_eps, vanishing_steps, min_history) =
            (t.vanishing_eps, t.vanishing_steps, t.min_history);
        let norm = f64::from(figures[0]);
        let series = &mut self.series[index];
        series.history.push(step, figures);
        let median = if series.window.len() >= min_history {
            series.window.median()
        } else {
            f64::NAN
        };
        let mut raised: [Option<Anomaly>; 2] = [None, None];
        let nonfinite = figures[2] > 0.0 || !norm.is_finite() || !figures[1].is_finite();
        if nonfinite {
            if !series.nonfinite_active {
                // The count, or the norm when it overflowed without a non-finite element.
                let value = if figures[2] > 0.0 {
                    f64::from(figures[2])
                } else {
                    norm
                };
                raised[0] = Some(anomaly(
                    step,
                    AnomalyKind::NanOrInf,
                    index,
                    value,
                    0.0,
                    median,
                ));
            }
            series.nonfinite_active = true;
        } else {
            series.nonfinite_active = false;
            let relative = if median > 0.0 {
                explosion_factor * median
            } else {
                f64::INFINITY
            };
            let limit = relative.min(explosion_threshold);
            if norm > limit {
                if !series.relative_active {
                    raised[0] = Some(anomaly(
                        step,
                        AnomalyKind::GradientExplosion,
                        index,
                        norm,
                        limit,
                        median,
                    ));
                }
                series.relative_active = true;
            } else {
                series.relative_active = false;
            }
            if norm < vanishing_eps {
                series.below_eps_run += 1;
                if series.below_eps_run == vanishing_steps {
                    raised[1] = Some(anomaly(
                        step,
                        AnomalyKind::VanishingGradient,
                        index,
                        norm,
                        vanishing_eps,
                        f64::from(vanishing_steps),
                    ));
                }
            } else {
                series.below_eps_run = 0;
            }
            series.window.push(norm);
        }
        for found in raised.into_iter().flatten() {
            self.flag(found);
        }
    }

    /// The step's training loss. Returns how many anomalies it raised (0 or 1).
    pub fn push_loss(&mut self, step: u64, loss: f64) -> usize {
        let index = self.loss_series();
        let threshold = self.thresholds.loss_z_threshold;
        let min_history = self.thresholds.min_history;
        let series = &mut self.series[index];
        series.history.push(step, [loss as f32, 0.0, 0.0]);
        let warm = series.window.len() >= min_history;
        let median = if warm {
            series.window.median()
        } else {
            f64::NAN
        };
        let mut raised = None;
        if !loss.is_finite() {
            if !series.nonfinite_active {
                raised = Some(anomaly(
                    step,
                    AnomalyKind::NanOrInf,
                    index,
                    loss,
                    0.0,
                    median,
                ));
            }
            series.nonfinite_active = true;
        } else {
            series.nonfinite_active = false;
            if warm {
                let limit = median + threshold * robust_scale(&series.window, median);
                if loss > limit {
                    if !series.relative_active {
                        raised = Some(anomaly(
                            step,
                            AnomalyKind::LossSpike,
                            index,
                            loss,
                            limit,
                            median,
                        ));
                    }
                    series.relative_active = true;
                } else {
                    series.relative_active = false;
                }
            }
            series.window.push(loss);
        }
        self.finish_push(raised)
    }

    /// The device memory in use or at its peak in this step, in bytes.
    pub fn push_memory(&mut self, step: u64, bytes: f64) -> usize {
        let index = self.memory_series();
        let factor = self.thresholds.memory_spike_factor;
        let min_history = self.thresholds.min_history;
        let series = &mut self.series[index];
        series.history.push(step, [bytes as f32, 0.0, 0.0]);
        if !bytes.is_finite() {
            return 0;
        }
        let mut raised = None;
        if series.window.len() >= min_history {
            let median = series.window.median();
            let limit = factor * median;
            if median > 0.0 && bytes > limit {
                if !series.relative_active {
                    raised = Some(anomaly(
                        step,
                        AnomalyKind::MemorySpike,
                        index,
                        bytes,
                        limit,
                        median,
                    ));
                }
                series.relative_active = true;
            } else {
                series.relative_active = false;
            }
        }
        series.window.push(bytes);
        self.finish_push(raised)
    }

    fn finish_push(&mut self, raised: Option<Anomaly>) -> usize {
        match raised {
            Some(found) => {
                self.flag(found);
                1
            }
            None => 0,
        }
    }

    /// The anomalies raised since the last drain, in the order they were raised.
    pub fn drain_anomalies(&mut self) -> Vec<Anomaly> {
        std::mem::take(&mut self.pending)
    }

    pub fn history(&self, series: usize) -> CoreResult<&History> {
        self.series_at(series).map(|s| &s.history)
    }

    pub fn window(&self, series: usize) -> CoreResult<&RollingWindow> {
        self.series_at(series).map(|s| &s.window)
    }

    fn series_at(&self, series: usize) -> CoreResult<&Series> {
        self.series.get(series).ok_or_else(|| {
            config_error(
                "series",
                series,
                &format!("this ring has series 0 to {}", self.series.len() - 1),
            )
        })
    }
}

/// Sum of squares (f64), largest |x| (NaN when any element is NaN) and NaN/Inf count of a slice,
/// in one pass. Uses AVX-512 or AVX2 where the CPU has it (the same code, compiled for it).
pub fn slice_stats(values: &[f32]) -> (f64, f32, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just checked to support AVX-512F.
            return unsafe { slice_stats_avx512(values) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just checked to support AVX2.
            return unsafe { slice_stats_avx2(values) };
        }
    }
    slice_stats_portable(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn slice_stats_avx512(values: &[f32]) -> (f64, f32, u64) {
    slice_stats_lanes(values, |x, y, acc| x.mul_add(y, acc))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn slice_stats_avx2(values: &[f32]) -> (f64, f32, u64) {
    slice_stats_lanes(values, |x, y, acc| x.mul_add(y, acc))
}

fn slice_stats_portable(values: &[f32]) -> (f64, f32, u64) {
    slice_stats_lanes(values, |x, y, acc| x * y + acc)
}

/// Values per block: the unit summed in float32, and read again in float64 when it must be.
const STATS_BLOCK: usize = 4096;
/// Independent accumulators: enough vector registers in flight that the multiply-adds do not
/// wait on each other.
const STATS_LANES: usize = 64;
/// 2^96: each square is taken as x * (x * 2^96), whose product is rounded only once (a fused
/// multiply-add), so the square of a gradient down to 4e-34 is a normal float32: the CPU takes a
/// slow microcode path for every subnormal result, and gradients below 1e-19 (whose plain
/// squares are subnormal) are common in deep networks.
const SQUARE_SCALE: f32 = 79_228_162_514_264_337_593_543_950_336.0;
/// 2^-96, exact in float64.
const SQUARE_UNSCALE: f64 = 1.0 / 79_228_162_514_264_337_593_543_950_336.0;

/// The common case costs a multiply, a multiply-add, an abs and a max per value, in float32
/// vector lanes; NaN/Inf are not looked for value by value. A block is read again in float64
/// only when its scaled sum of squares is not finite: a NaN or an infinity (then counted), or a
/// block whose L2 norm exceeds 65,536 (where the scaled squares leave the float32 range).
#[inline(always)]
fn slice_stats_lanes(values: &[f32], add_square: impl Fn(f32, f32, f32) -> f32) -> (f64, f32, u64) {
    let mut total_squares = 0.0f64;
    let mut largest = [0.0f32; STATS_LANES];
    let mut total_nonfinite = 0u64;
    for block in values.chunks(STATS_BLOCK) {
        let mut squares = [0.0f32; STATS_LANES];
        let chunks = block.chunks_exact(STATS_LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            prefetch_ahead(chunk.as_ptr());
            for lane in 0..STATS_LANES {
                let x = chunk[lane];
                squares[lane] = add_square(x, x * SQUARE_SCALE, squares[lane]);
                let magnitude = x.abs();
                // A comparison, not f32::max: it maps onto one vector max (NaN is the slow path's).
                largest[lane] = if magnitude > largest[lane] {
                    magnitude
                } else {
                    largest[lane]
                };
            }
        }
        let mut block_squares: f32 = squares.iter().sum();
        for &x in rest {
            block_squares = add_square(x, x * SQUARE_SCALE, block_squares);
            let magnitude = x.abs();
            largest[0] = if magnitude > largest[0] {
                magnitude
            } else {
                largest[0]
            };
        }
        if block_squares.is_finite() {
            total_squares += f64::from(block_squares) * SQUARE_UNSCALE;
        } else {
            let (squares, nonfinite) = block_stats_f64(block);
            total_squares += squares;
            total_nonfinite += nonfinite;
        }
    }
    let mut total_largest = largest.iter().fold(0.0f32, |a, &b| a.max(b));
    // The lanes skip NaN; a NaN element shows in the sum of squares, and then in the max too,
    // as torch's reductions give it.
    if total_squares.is_nan() {
        total_largest = f32::NAN;
    }
    (total_squares, total_largest, total_nonfinite)
}

/// Bytes read ahead of the pass: gradients read after a backward pass are partly out of the
/// core's cache, and the hardware prefetcher restarts at every 4 KiB page.
const PREFETCH_BYTES: usize = 2048;

/// Asks for the cache lines `PREFETCH_BYTES` past one chunk of `STATS_LANES` values. A prefetch
/// never faults, so addresses past the end of the buffer are harmless.
#[inline(always)]
fn prefetch_ahead(chunk: *const f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let ahead = chunk.cast::<i8>().wrapping_add(PREFETCH_BYTES);
        for line in 0..STATS_LANES * 4 / 64 {
            // SAFETY: SSE is part of x86_64, and a prefetch reads nothing the program sees.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line * 64)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = chunk;
}

/// Sum of squares in float64 (every square of a float32 is a normal float64, so huge gradients
/// keep an exact, finite norm) and the NaN/Inf count of one block.
#[inline(always)]
fn block_stats_f64(block: &[f32]) -> (f64, u64) {
    const WIDE_LANES: usize = 16;
    let mut squares = [0.0f64; WIDE_LANES];
    let chunks = block.chunks_exact(WIDE_LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..WIDE_LANES {
            let x = f64::from(chunk[lane]);
            squares[lane] += x * x;
        }
    }
    let total = squares.iter().sum::<f64>()
        + rest
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>();
    let nonfinite = block.iter().filter(|x| !x.is_finite()).count() as u64;
    (total, nonfinite)
}

/// Per-group gradient figures (L2 norm, max |g|, NaN/Inf count) of slices that each belong to a
/// group, written as one row of `STATS_PER_LAYER` floats per group; a group without any slice
/// gets a norm of -1 (no gradient).
pub fn group_stats(slices: &[(&[f32], usize)], n_groups: usize, row: &mut [f32]) -> CoreResult<()> {
    if row.len() != n_groups * STATS_PER_LAYER {
        return Err(CoreError::Config(format!(
            "the row has {} values; {n_groups} groups need {}",
            row.len(),
            n_groups * STATS_PER_LAYER
        )));
    }
    let mut squares = vec![0.0f64; n_groups];
    let mut largest = vec![0.0f32; n_groups];
    let mut nonfinite = vec![0u64; n_groups];
    let mut present = vec![false; n_groups];
    for &(values, group) in slices {
        if group >= n_groups {
            return Err(config_error(
                "group",
                group,
                &format!("there are {n_groups} groups"),
            ));
        }
        let (s, l, n) = slice_stats(values);
        squares[group] += s;
        largest[group] = if l.is_nan() || largest[group].is_nan() {
            f32::NAN
        } else {
            largest[group].max(l)
        };
        nonfinite[group] += n;
        present[group] = true;
    }
    for group in 0..n_groups {
        let out = &mut row[group * STATS_PER_LAYER..(group + 1) * STATS_PER_LAYER];
        out[0] = if present[group] {
            squares[group].sqrt() as f32
        } else {
            -1.0
        };
        out[1] = largest[group];
        out[2] = nonfinite[group] as f32;
    }
    Ok(())
}

/// The robust scale of a window: 1.4826 × MAD (the standard deviation for normal data), floored
/// so that a loss that has stayed constant does not turn rounding noise into a spike.
fn robust_scale(window: &RollingWindow, median: f64) -> f64 {
    (1.4826 * window.mad()).max(1e-3 * median.abs()).max(1e-12)
}

fn anomaly(
    step: u64,
    kind: AnomalyKind,
    series: usize,
    value: f64,
    threshold: f64,
    statistic: f64,
) -> Anomaly {
    Anomaly {
        step,
        kind,
        series,
        value,
        threshold,
        statistic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(layers: usize) -> GradientRing {
        GradientRing::new(layers, 8, Thresholds::default()).unwrap()
    }

    fn row(norms: &[f32]) -> Vec<f32> {
        norms.iter().flat_map(|&n| [n, n / 2.0, 0.0]).collect()
    }

    #[test]
    fn window_median_mean_and_std_follow_the_last_values() {
        let mut window = RollingWindow::new(3);
        for value in [5.0, 1.0, 3.0, 10.0] {
            window.push(value);
        }
        assert_eq!(window.len(), 3);
        assert_eq!(window.median(), 3.0);
        assert!((window.mean() - 14.0 / 3.0).abs() < 1e-12);
        assert_eq!(window.mad(), 2.0);
    }

    #[test]
    fn history_keeps_only_the_last_rows() {
        let mut ring = ring(1);
        for step in 0..20 {
            ring.push_gradients(step, &row(&[1.0])).unwrap();
        }
        let steps: Vec<u64> = ring.history(0).unwrap().iter().map(|(s, _)| s).collect();
        assert_eq!(steps, (12..20).collect::<Vec<_>>());
    }

    #[test]
    fn an_explosion_is_flagged_once_at_its_step() {
        let mut ring = ring(2);
        for step in 0..30 {
            ring.push_gradients(step, &row(&[1.0, 2.0])).unwrap();
        }
        assert!(ring.drain_anomalies().is_empty());
        ring.push_gradients(30, &row(&[1e6, 2.0])).unwrap();
        ring.push_gradients(31, &row(&[1e6, 2.0])).unwrap();
        let found = ring.drain_anomalies();
        let kinds: Vec<_> = found.iter().map(|a| (a.step, a.kind, a.series)).collect();
        assert_eq!(
            kinds,
            vec![
                (30, AnomalyKind::GradientExplosion, 0),
                (30, AnomalyKind::GradientExplosion, 2)
            ]
        );
        assert_eq!(found[0].statistic, 1.0);
        assert_eq!(found[0].threshold, 10.0);
    }

    #[test]
    fn a_run_of_nan_steps_is_one_anomaly_and_missing_layers_are_skipped() {
        let mut ring = ring(2);
        ring.push_gradients(0, &[f32::NAN, f32::NAN, 4.0, -1.0, 0.0, 0.0])
            .unwrap();
        ring.push_gradients(1, &[f32::NAN, f32::NAN, 4.0, -1.0, 0.0, 0.0])
            .unwrap();
        let found = ring.drain_anomalies();
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|a| a.kind == AnomalyKind::NanOrInf));
        assert_eq!(found[0].value, 4.0);
        assert!(ring.history(1).unwrap().is_empty());
    }

    #[test]
    fn vanishing_needs_consecutive_small_norms() {
        let thresholds = Thresholds {
            vanishing_steps: 3,
            ..Thresholds::default()
        };
        let mut ring = GradientRing::new(1, 8, thresholds).unwrap();
        for (step, norm) in [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0].iter().enumerate() {
            ring.push_gradients(step as u64, &row(&[*norm])).unwrap();
        }
        let steps: Vec<_> = ring
            .drain_anomalies()
            .iter()
            .filter(|a| a.series == 0)
            .map(|a| (a.step, a.kind))
            .collect();
        assert_eq!(steps, vec![(5, AnomalyKind::VanishingGradient)]);
    }

    #[test]
    fn loss_spike_uses_the_robust_z_score() {
        let mut ring = ring(1);
        for step in 0..40 {
            ring.push_loss(step, 1.0 + 0.01 * (step % 5) as f64);
        }
        assert!(ring.drain_anomalies().is_empty());
        assert_eq!(ring.push_loss(40, 50.0), 1);
        let found = ring.drain_anomalies();
        assert_eq!(found[0].kind, AnomalyKind::LossSpike);
        assert_eq!(found[0].series, ring.loss_series());
    }

    #[test]
    fn memory_spike_needs_history() {
        let mut ring = ring(1);
        assert_eq!(ring.push_memory(0, 1e9), 0);
        for step in 1..25 {
            ring.push_memory(step, 1e9);
        }
        assert_eq!(ring.push_memory(25, 3e9), 1);
    }

    #[test]
    fn bad_thresholds_name_the_field() {
        let bad = Thresholds {
            explosion_factor: -1.0,
            ..Thresholds::default()
        };
        let error = GradientRing::new(1, 8, bad).unwrap_err();
        assert!(error.to_string().contains("explosion_factor"));
        let mut ring = ring(2);
        assert!(ring.push_gradients(0, &[1.0, 2.0]).is_err());
    }
    #[test]
    fn group_stats_fold_slices_into_their_groups() {
        let a = [3.0f32, -4.0, f32::NAN];
        let b = [1.0f32; 9];
        let c = [f32::INFINITY, 2.0];
        let mut row = vec![0.0f32; 9];
        group_stats(&[(&a, 0), (&b, 0), (&c, 2)], 3, &mut row).unwrap();
        assert!(row[0].is_nan() && row[1].is_nan());
        assert_eq!(row[2], 1.0);
        assert_eq!(row[3], -1.0);
        assert_eq!(
            (row[6], row[7], row[8]),
            (f32::INFINITY, f32::INFINITY, 1.0)
        );
        let finite: Vec<f32> = (0..1037).map(|i| (i % 37) as f32 - 18.0).collect();
        let (squares, largest, count) = slice_stats(&finite);
        let expected: f64 = finite.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        assert_eq!((squares, largest, count), (expected, 18.0, 0));
        let huge = [3e30f32; 300];
        let (squares, _, count) = slice_stats(&huge);
        assert_eq!(count, 0);
        assert!((squares.sqrt() / (3e30 * 300f64.sqrt()) - 1.0).abs() < 1e-6);
    }
    #[test]
    fn slice_stats_count_nonfinite_values_anywhere_in_long_slices() {
        let mut values: Vec<f32> = (0..3 * 4096 + 45)
            .map(|i| ((i % 11) as f32 - 5.0) * 0.5)
            .collect();
        let finite_squares: f64 = values.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let last = values.len() - 1;
        values[last] = -7.5;
        let (_, largest, count) = slice_stats(&values);
        assert_eq!(
            (largest, count),
            (7.5, 0),
            "the largest value sits in the tail"
        );
        values[5000] = f32::INFINITY;
        values[last] = f32::NEG_INFINITY;
        let (squares, largest, count) = slice_stats(&values);
        assert_eq!((squares, largest, count), (f64::INFINITY, f32::INFINITY, 2));
        values[9000] = f32::NAN;
        let (squares, largest, count) = slice_stats(&values);
        assert!(squares.is_nan() && largest.is_nan());
        assert_eq!(count, 3);
        assert!(finite_squares > 0.0);
    }
}
