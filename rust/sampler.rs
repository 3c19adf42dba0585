//! One sampler thread per meter: readings on drift-free absolute deadlines, integrated on the
//! spot, boundaries resolved into records, everything handed out through lock-free rings and
//! atomics.
//!
//! The training thread only ever calls [`Meter::mark`]: one clock read and one lock-free push.
//! The sampler thread holds its engine (sources, integrators, ring producers) for the whole run,
//! so it takes no lock and allocates nothing per tick.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::boundary_queue::{Boundary, BoundaryConsumer, BoundaryKind, BoundaryQueue};
use crate::channel::{ChannelSpec, Provenance, Sample, MAX_CHANNELS};
use crate::clock::monotonic_ns;
use crate::energy::{ChannelIntegrator, Stair};
use crate::error::{CoreError, CoreResult};
use crate::sources::Source;
use crate::steps::{HealthCounters, Record, Resolver};

pub const MAX_RATE_HZ: f64 = 20_000.0;

/// Bumped in a `fork()`ed child: a meter from before the fork has no thread there, and must not
/// pretend to run or touch locks the parent's threads held.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER_FORK_HANDLER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

fn register_fork_handler() {
    REGISTER_FORK_HANDLER.call_once(|| {
        // SAFETY: the handler only touches an atomic, which is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

#[derive(Clone, Copy, Debug)]
pub struct TraceRow {
    pub t_ns: u64,
    pub watts: [f64; MAX_CHANNELS],
}

/// A stair of one counter channel (see [`Stair`]), for estimating windows shorter than it.
#[derive(Clone, Copy, Debug)]
pub struct StairRow {
    pub channel: u32,
    pub stair: Stair,
}

#[derive(Clone, Copy, Debug)]
pub struct MeterConfig {
    pub rate_hz: f64,
    /// Records and trace rows buffered between drains.
    pub ring_capacity: usize,
    /// Boundaries buffered between sampler ticks.
    pub boundary_capacity: usize,
}

impl MeterConfig {
    pub fn validate(&self) -> CoreResult<()> {
        if !(self.rate_hz > 0.0 && self.rate_hz <= MAX_RATE_HZ) {
            return Err(CoreError::Config(format!(
                "rate_hz={} is not allowed: it must be > 0 and <= {MAX_RATE_HZ}",
                self.rate_hz
            )));
        }
        if self.ring_capacity < 2 {
            return Err(CoreError::Config(format!(
                "ring_capacity={} is not allowed: it must be >= 2",
                self.ring_capacity
            )));
        }
        Ok(())
    }
}

/// Live figures, published by the sampler after every reading.
pub struct LiveTotals {
    joules_bits: Vec<AtomicU64>,
    watts_bits: Vec<AtomicU64>,
    update_period_ns_bits: Vec<AtomicU64>,
    errors: Vec<AtomicU64>,
    counter_resets: Vec<AtomicU64>,
    pub first_reading_ns: AtomicU64,
    pub last_reading_ns: AtomicU64,
    pub readings: AtomicU64,
    pub missed_ticks: AtomicU64,
    pub boundaries_dropped: AtomicU64,
    pub records_dropped: AtomicU64,
    pub trace_dropped: AtomicU64,
    pub sensor_errors: AtomicU64,
    pub steps_marked: AtomicU64,
    pub steps_resolved: AtomicU64,
    pub stairs_dropped: AtomicU64,
    /// Boundaries stamped before the run they reached (a mark racing `stop()`), discarded.
    pub stale_boundaries: AtomicU64,
    /// Windows opened deeper than the deepest tracked level, or closed with no matching open.
    pub windows_not_recorded: AtomicU64,
}

fn atomics(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl LiveTotals {
    fn new(n: usize) -> Self {
        LiveTotals {
            joules_bits: atomics(n),
            watts_bits: atomics(n),
            update_period_ns_bits: atomics(n),
            errors: atomics(n),
            counter_resets: atomics(n),
            first_reading_ns: AtomicU64::new(0),
            last_reading_ns: AtomicU64::new(0),
            readings: AtomicU64::new(0),
            missed_ticks: AtomicU64::new(0),
            boundaries_dropped: AtomicU64::new(0),
            records_dropped: AtomicU64::new(0),
            trace_dropped: AtomicU64::new(0),
            sensor_errors: AtomicU64::new(0),
            steps_marked: AtomicU64::new(0),
            steps_resolved: AtomicU64::new(0),
            stairs_dropped: AtomicU64::new(0),
            stale_boundaries: AtomicU64::new(0),
            windows_not_recorded: AtomicU64::new(0),
        }
    }

    /// Times the counter of `channel` went backwards or jumped implausibly and was rebaselined.
    pub fn counter_resets(&self, channel: usize) -> u64 {
        self.counter_resets[channel].load(Ordering::Relaxed)
    }

    pub fn joules(&self, channel: usize) -> f64 {
        f64::from_bits(self.joules_bits[channel].load(Ordering::Acquire))
    }

    pub fn watts(&self, channel: usize) -> f64 {
        f64::from_bits(self.watts_bits[channel].load(Ordering::Acquire))
    }

    pub fn errors(&self, channel: usize) -> u64 {
        self.errors[channel].load(Ordering::Relaxed)
    }

    /// None until the raw value was seen to change twice.
    pub fn update_period_s(&self, channel: usize) -> Option<f64> {
        let ns = f64::from_bits(self.update_period_ns_bits[channel].load(Ordering::Relaxed));
        (ns > 0.0).then_some(ns * 1e-9)
    }

    fn health(&self) -> HealthCounters {
        HealthCounters {
            sensor_errors: self.sensor_errors.load(Ordering::Relaxed),
            boundaries_dropped: self.boundaries_dropped.load(Ordering::Relaxed),
        }
    }
}

/// What the sampler thread owns while it runs; parked in a mutex between runs.
struct Engine {
    sources: Vec<Box<dyn Source>>,
    integrators: Vec<ChannelIntegrator>,
    resolver: Resolver,
    boundaries: BoundaryConsumer,
    records_in: rtrb::Producer<Record>,
    trace_in: rtrb::Producer<TraceRow>,
    stairs_in: rtrb::Producer<StairRow>,
    samples: [Sample; MAX_CHANNELS],
    held_boundary: Option<Boundary>,
    period_ns: u64,
    /// Per source: its channels' positions, and when it is next due. Each source is read at the
    /// rate its sensor warrants (`Source::read_interval_ns`), not always at the sampler's.
    source_channels: Vec<std::ops::Range<usize>>,
    next_due_ns: Vec<u64>,
    /// Per channel: when it was last read, and whether that read failed.
    read_at_ns: [u64; MAX_CHANNELS],
    failed: [bool; MAX_CHANNELS],
}

struct Shared {
    channels: Vec<ChannelSpec>,
    source_facts: Vec<(String, Vec<(String, String)>)>,
    config: MeterConfig,
    boundaries: Arc<BoundaryQueue>,
    live: LiveTotals,
    running: AtomicBool,
    stop_requested: AtomicBool,
    /// Set when the sampler thread panicked: the meter cannot run again.
    died: Mutex<Option<String>>,
    engine: Mutex<Engine>,
    records_out: Mutex<rtrb::Consumer<Record>>,
    trace_out: Mutex<rtrb::Consumer<TraceRow>>,
    stairs_out: Mutex<rtrb::Consumer<StairRow>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

pub struct Meter {
    shared: Arc<Shared>,
    fork_generation: u64,
}

impl Engine {
    /// When the next source is due.
    fn next_deadline_ns(&self) -> u64 {
        self.next_due_ns.iter().copied().min().unwrap_or(u64::MAX)
    }

    /// The newest instant every channel has been read at: boundaries up to it can resolve.
    fn resolvable_until_ns(&self) -> u64 {
        self.read_at_ns[..self.integrators.len()]
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
    }

    /// Reads the sources due at `t_ns` (every source with `all`), then integrates them.
    fn take_reading(&mut self, live: &LiveTotals, t_ns: u64, all: bool) {
        let mut read = [false; MAX_CHANNELS];
        for (s, source) in self.sources.iter_mut().enumerate() {
            if !all && self.next_due_ns[s] > t_ns {
                continue;
            }
            let channels = self.source_channels[s].clone();
            source.read(t_ns, &mut self.samples[channels.clone()]);
            let observed = self.integrators[channels.clone()]
                .iter()
                .filter_map(ChannelIntegrator::observed_update_period_ns)
                .fold(None, |slowest: Option<f64>, p| {
                    Some(slowest.map_or(p, |q| q.max(p)))
                });
            let interval = source.read_interval_ns(self.period_ns, observed).max(1);
            // The deadline this read served: its own, or now for a read forced early (or the
            // first one, before any deadline was set).
            let served = match self.next_due_ns[s] {
                0 => t_ns,
                due => due.min(t_ns),
            };
            let mut due = served + interval;
            if due <= t_ns {
                let behind = (t_ns - due) / interval + 1;
                live.missed_ticks.fetch_add(behind, Ordering::Relaxed);
                due += behind * interval;
            }
            self.next_due_ns[s] = due;
            for i in channels {
                read[i] = true;
                self.read_at_ns[i] = t_ns;
            }
        }
        let mut failures = 0;
        // A failed reading shows as NaN in the trace and the live watts, never as the last
        // good value repeated: a dead sensor must not look like a steady one. A channel not
        // due this time keeps its last value.
        let mut row = TraceRow {
            t_ns,
            watts: [f64::NAN; MAX_CHANNELS],
        };
        for (i, (integrator, sample)) in self.integrators.iter_mut().zip(&self.samples).enumerate()
        {
            if !read[i] {
                if !self.failed[i] {
                    row.watts[i] = integrator.watts();
                }
                continue;
            }
            self.failed[i] = false;
            if integrator.update(t_ns, sample) {
                row.watts[i] = integrator.watts();
                live.joules_bits[i].store(integrator.joules().to_bits(), Ordering::Release);
                if let Some(period) = integrator.observed_update_period_ns() {
                    live.update_period_ns_bits[i].store(period.to_bits(), Ordering::Relaxed);
                }
                live.counter_resets[i].store(integrator.counter_resets(), Ordering::Relaxed);
                if let Some(stair) = integrator.take_stair() {
                    let stair_row = StairRow {
                        channel: i as u32,
                        stair,
                    };
                    if self.stairs_in.push(stair_row).is_err() {
                        live.stairs_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else if integrator.newest_t_ns() != Some(t_ns) {
                failures += 1;
                self.failed[i] = true;
                live.errors[i].fetch_add(1, Ordering::Relaxed);
            }
            live.watts_bits[i].store(row.watts[i].to_bits(), Ordering::Release);
        }
        if failures > 0 {
            live.sensor_errors.fetch_add(failures, Ordering::Relaxed);
        }
        if self.trace_in.push(row).is_err() {
            live.trace_dropped.fetch_add(1, Ordering::Relaxed);
        }
        live.last_reading_ns.store(t_ns, Ordering::Release);
        live.readings.fetch_add(1, Ordering::Relaxed);
    }

    /// Spans shorter than this can only be measured statistically: the slowest sensor's observed
    /// update period, and never less than one sampler period.
    fn min_resolvable_ns(&self) -> f64 {
        self.integrators
            .iter()
            .filter_map(ChannelIntegrator::observed_update_period_ns)
            .fold(self.period_ns as f64, f64::max)
    }

    fn emit(&mut self, live: &LiveTotals, record: Record) {
        if self.records_in.push(record).is_err() {
            live.records_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Resolves every queued boundary stamped no later than `up_to_ns`.
    fn resolve_ready(&mut self, live: &LiveTotals, up_to_ns: u64) {
        let min_resolvable_ns = self.min_resolvable_ns();
        loop {
            let boundary = match self.held_boundary.take().or_else(|| self.boundaries.pop()) {
                Some(b) => b,
                None => return,
            };
            if boundary.t_ns > up_to_ns {
                self.held_boundary = Some(boundary);
                return;
            }
            let health = live.health();
            if let Some(record) =
                self.resolver
                    .resolve(boundary, &self.integrators, health, min_resolvable_ns)
            {
                self.emit(live, record);
                live.steps_resolved
                    .store(self.resolver.steps_resolved(), Ordering::Relaxed);
            }
            live.stale_boundaries
                .store(self.resolver.stale_boundaries(), Ordering::Relaxed);
            live.windows_not_recorded
                .store(self.resolver.windows_not_recorded(), Ordering::Relaxed);
        }
    }

    fn finish(&mut self, live: &LiveTotals, t_ns: u64) {
        let min_resolvable_ns = self.min_resolvable_ns();
        let health = live.health();
        let mut tail = Vec::new();
        self.resolver
            .finish(&self.integrators, t_ns, health, min_resolvable_ns, |r| {
                tail.push(r)
            });
        for record in tail {
            self.emit(live, record);
        }
        live.steps_resolved
            .store(self.resolver.steps_resolved(), Ordering::Relaxed);
    }
}

/// Timer slack lets the kernel batch wake-ups: finer slack costs CPU (measured here: 3.3 % of a
/// core at 1 kHz with 1 µs, 1.9 % with the default 50 µs), coarser slack costs punctuality.
/// A tenth of the period, at most the default, keeps ticks on time at every rate.
fn set_timer_slack(period_ns: u64) {
    let slack_ns = (period_ns / 10).clamp(1_000, 50_000);
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, slack_ns as libc::c_ulong) };
}

/// Sleeps until `deadline_ns` on the monotonic clock, or until `stop()` requests a stop and
/// unparks the thread. One wait per tick (each wake-up costs more than the reading). Parked
/// rather than asleep, so that a stop wakes the thread at once: a run's end does not wait out
/// the rest of a sampler period (up to 10 ms at 100 Hz) for its final reading.
fn wait_until(deadline_ns: u64, stop: &AtomicBool) {
    loop {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let now = monotonic_ns();
        if now >= deadline_ns {
            return;
        }
        // The futex wait behind park_timeout turns this into an absolute deadline at once, so
        // ticks stay free of drift; an early or spurious return is re-checked above.
        thread::park_timeout(Duration::from_nanos(deadline_ns - now));
    }
}

fn run_sampler(shared: &Shared, engine: &mut Engine, started: mpsc::SyncSender<()>) {
    let live = &shared.live;
    let period = engine.period_ns;
    set_timer_slack(period);
    let first = monotonic_ns();
    for integrator in &mut engine.integrators {
        integrator.begin_span();
    }
    engine.next_due_ns.iter_mut().for_each(|due| *due = first);
    engine.take_reading(live, first, true);
    let _ = live
        .first_reading_ns
        .compare_exchange(0, first, Ordering::AcqRel, Ordering::Relaxed);
    engine
        .resolver
        .begin(&engine.integrators, first, live.health());
    shared.running.store(true, Ordering::Release);
    let _ = started.send(());

    loop {
        wait_until(engine.next_deadline_ns(), &shared.stop_requested);
        if shared.stop_requested.load(Ordering::Acquire) {
            break;
        }
        let now = monotonic_ns();
        engine.take_reading(live, now, false);
        let until = engine.resolvable_until_ns();
        engine.resolve_ready(live, until);
    }
    // A last reading of every source so the final step resolves, then every boundary queued.
    shared.running.store(false, Ordering::Release);
    let last = monotonic_ns();
    engine.take_reading(live, last, true);
    engine.resolve_ready(live, u64::MAX);
    engine.finish(live, last);
}

/// Marks the meter stopped if the sampler thread unwinds, so that `running` and `mark()` tell
/// the truth after a panic, and records why for the next `start()`.
struct StopOnUnwind<'a> {
    shared: &'a Shared,
}

impl Drop for StopOnUnwind<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.shared.running.store(false, Ordering::Release);
            *self.shared.died.lock().unwrap_or_else(|e| e.into_inner()) = Some(
                "the sampler thread panicked; this meter cannot run again: create a new one".into(),
            );
        }
    }
}

impl Meter {
    pub fn new(sources: Vec<Box<dyn Source>>, config: MeterConfig) -> CoreResult<Meter> {
        config.validate()?;
        register_fork_handler();
        let channels: Vec<ChannelSpec> = sources
            .iter()
            .flat_map(|s| s.channels().iter().cloned())
            .collect();
        if channels.is_empty() {
            return Err(CoreError::Config(
                "a meter needs at least one channel".into(),
            ));
        }
        if channels.len() > MAX_CHANNELS {
            return Err(CoreError::Config(format!(
                "{} channels found, at most {MAX_CHANNELS} are supported: pass devices=[...] to measure fewer GPUs",
                channels.len()
            )));
        }
        let any_estimated = channels
            .iter()
            .any(|c| c.provenance == Provenance::Estimated);
        let source_facts = sources
            .iter()
            .map(|s| (s.name().to_string(), s.describe()))
            .collect();
        let mut source_channels = Vec::with_capacity(sources.len());
        let mut offset = 0;
        for source in &sources {
            let n = source.channels().len();
            source_channels.push(offset..offset + n);
            offset += n;
        }
        let n_sources = sources.len();
        let (records_in, records_out) = rtrb::RingBuffer::new(config.ring_capacity);
        let (trace_in, trace_out) = rtrb::RingBuffer::new(config.ring_capacity);
        let (stairs_in, stairs_out) = rtrb::RingBuffer::new(config.ring_capacity);
        let (boundaries, boundary_consumer) =
            BoundaryQueue::with_consumer(config.boundary_capacity);
        let engine = Engine {
            integrators: channels
                .iter()
                .map(|c| ChannelIntegrator::new(c.kind))
                .collect(),
            resolver: Resolver::new(channels.len(), any_estimated),
            sources,
            boundaries: boundary_consumer,
            records_in,
            trace_in,
            stairs_in,
            samples: [Sample::FAILED; MAX_CHANNELS],
            held_boundary: None,
            period_ns: (1e9 / config.rate_hz).round().max(1.0) as u64,
            source_channels,
            next_due_ns: vec![0; n_sources],
            read_at_ns: [0; MAX_CHANNELS],
            failed: [false; MAX_CHANNELS],
        };
        let shared = Arc::new(Shared {
            live: LiveTotals::new(channels.len()),
            channels,
            source_facts,
            config,
            boundaries,
            running: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
            died: Mutex::new(None),
            engine: Mutex::new(engine),
            records_out: Mutex::new(records_out),
            trace_out: Mutex::new(trace_out),
            stairs_out: Mutex::new(stairs_out),
            thread: Mutex::new(None),
        });
        Ok(Meter {
            shared,
            fork_generation: FORK_GENERATION.load(Ordering::SeqCst),
        })
    }

    fn in_owner_process(&self) -> bool {
        FORK_GENERATION.load(Ordering::Relaxed) == self.fork_generation
    }

    pub fn channels(&self) -> &[ChannelSpec] {
        &self.shared.channels
    }

    pub fn source_facts(&self) -> &[(String, Vec<(String, String)>)] {
        &self.shared.source_facts
    }

    pub fn config(&self) -> MeterConfig {
        self.shared.config
    }

    pub fn live(&self) -> &LiveTotals {
        &self.shared.live
    }

    pub fn boundary_capacity(&self) -> usize {
        self.shared.boundaries.capacity()
    }

    pub fn is_running(&self) -> bool {
        self.in_owner_process() && self.shared.running.load(Ordering::Acquire)
    }

    /// Starts the sampler and returns once its first reading is taken. Idempotent.
    pub fn start(&self) -> CoreResult<()> {
        if !self.in_owner_process() {
            return Err(CoreError::Thread(
                "this meter was created before fork(); its sampler lives in the parent process. \
                 Create a new EnergyMeter in the child"
                    .into(),
            ));
        }
        if let Some(reason) = self.died() {
            return Err(CoreError::Thread(reason));
        }
        let mut thread_slot = self.shared.thread.lock().expect("thread slot lock");
        if thread_slot.is_some() {
            return Ok(());
        }
        self.shared.stop_requested.store(false, Ordering::Release);
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        let shared = Arc::clone(&self.shared);
        let handle = thread::Builder::new()
            .name("hf-eco2ai-sampler".into())
            .spawn(move || {
                let _guard = StopOnUnwind { shared: &shared };
                let mut engine = shared.engine.lock().expect("sampler engine lock");
                run_sampler(&shared, &mut engine, started_tx);
            })
            .map_err(|e| CoreError::Thread(format!("cannot start the sampler thread: {e}")))?;
        if started_rx.recv().is_err() {
            let _ = handle.join();
            return Err(CoreError::Thread(self.died().unwrap_or_else(|| {
                "the sampler thread ended before its first reading".into()
            })));
        }
        *thread_slot = Some(handle);
        Ok(())
    }

    /// Stops the sampler after a final reading; every boundary marked before is resolved.
    /// Idempotent; in a forked child it only reports the meter as stopped.
    pub fn stop(&self) -> CoreResult<()> {
        if !self.in_owner_process() {
            return Ok(());
        }
        let handle = self.shared.thread.lock().expect("thread slot lock").take();
        if let Some(handle) = handle {
            self.shared.stop_requested.store(true, Ordering::Release);
            // A stop flagged just before the thread parks is not lost: the unpark token makes
            // that park return at once.
            handle.thread().unpark();
            handle.join().map_err(|_| {
                CoreError::Thread(
                    "the sampler thread panicked; the energy up to its last reading is kept".into(),
                )
            })?;
        }
        Ok(())
    }

    /// Why the sampler thread died, if it panicked.
    pub fn died(&self) -> Option<String> {
        self.shared
            .died
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    #[inline]
    fn push_boundary(&self, kind: BoundaryKind, name_id: u32) -> bool {
        if !self.shared.running.load(Ordering::Relaxed) || !self.in_owner_process() {
            return false;
        }
        let live = &self.shared.live;
        let boundary = Boundary {
            t_ns: monotonic_ns(),
            kind,
            name_id,
            drops_before: live.boundaries_dropped.load(Ordering::Relaxed) as u32,
        };
        if self.shared.boundaries.push(boundary) {
            true
        } else {
            self.shared
                .live
                .boundaries_dropped
                .fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// The hot path: closes the open step. One clock read, one lock-free push.
    #[inline]
    pub fn mark(&self) -> bool {
        let pushed = self.push_boundary(BoundaryKind::Step, 0);
        if pushed {
            self.shared
                .live
                .steps_marked
                .fetch_add(1, Ordering::Relaxed);
        }
        pushed
    }

    pub fn open_window(&self, name_id: u32) -> bool {
        self.push_boundary(BoundaryKind::WindowOpen, name_id)
    }

    pub fn close_window(&self, name_id: u32) -> bool {
        self.push_boundary(BoundaryKind::WindowClose, name_id)
    }

    /// Takes `readings` back to back on the calling thread, with a fake clock advancing one
    /// sampler period each, resolving boundaries as the thread would. For benchmarks that need
    /// millions of readings without waiting for real time; the meter must be stopped.
    pub fn run_unpaced(&self, readings: u64) -> CoreResult<()> {
        if self
            .shared
            .thread
            .lock()
            .expect("thread slot lock")
            .is_some()
        {
            return Err(CoreError::Thread(
                "run_unpaced needs a stopped meter".into(),
            ));
        }
        if let Some(reason) = self.died() {
            return Err(CoreError::Thread(reason));
        }
        let mut engine = self.shared.engine.lock().expect("sampler engine lock");
        let live = &self.shared.live;
        let period = engine.period_ns;
        let mut t_ns = monotonic_ns();
        for _ in 0..readings {
            t_ns += period;
            engine.take_reading(live, t_ns, true);
            engine.resolve_ready(live, t_ns);
        }
        Ok(())
    }

    /// Hands up to `max_rows` resolved records to `each`, oldest first; returns how many. A
    /// bound, so that a caller can drain a full ring in pieces of a size it chooses. Lock-free
    /// against the sampler thread; concurrent drains of the same ring take turns.
    pub fn drain_records(&self, max_rows: usize, each: impl FnMut(Record)) -> usize {
        drain_ring(&self.shared.records_out, max_rows, each)
    }

    /// Hands up to `max_rows` power readings to `each`, oldest first; returns how many.
    pub fn drain_trace(&self, max_rows: usize, each: impl FnMut(TraceRow)) -> usize {
        drain_ring(&self.shared.trace_out, max_rows, each)
    }

    /// Hands up to `max_rows` completed counter stairs to `each`, oldest first, every counter
    /// channel interleaved; returns how many.
    pub fn drain_stairs(&self, max_rows: usize, each: impl FnMut(StairRow)) -> usize {
        drain_ring(&self.shared.stairs_out, max_rows, each)
    }
}

fn drain_ring<T>(
    ring: &Mutex<rtrb::Consumer<T>>,
    max_rows: usize,
    mut each: impl FnMut(T),
) -> usize {
    let mut consumer = ring.lock().expect("ring consumer lock");
    let mut moved = 0;
    while moved < max_rows {
        match consumer.pop() {
            Ok(row) => each(row),
            Err(_) => break,
        }
        moved += 1;
    }
    moved
}

impl Drop for Meter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::synthetic::{SyntheticSource, Trace};
    use crate::steps::{RecordKind, FLAG_TAIL};

    fn drain_all_records(meter: &Meter) -> Vec<Record> {
        let mut records = Vec::new();
        meter.drain_records(usize::MAX, |r| records.push(r));
        records
    }

    fn constant_meter(watts: f64, rate_hz: f64, ring_capacity: usize) -> Meter {
        let source = SyntheticSource::new(vec![Trace::Constant { watts }], None).unwrap();
        Meter::new(
            vec![Box::new(source)],
            MeterConfig {
                rate_hz,
                ring_capacity,
                boundary_capacity: 1024,
            },
        )
        .unwrap()
    }

    #[test]
    fn steps_resolve_and_add_up_to_the_live_total() {
        let meter = constant_meter(100.0, 1_000.0, 1024);
        meter.start().unwrap();
        for _ in 0..5 {
            thread::sleep(std::time::Duration::from_millis(4));
            assert!(meter.mark());
        }
        meter.stop().unwrap();
        let records = drain_all_records(&meter);
        assert_eq!(records.len(), 6);
        assert!(records.iter().all(|r| r.kind == RecordKind::Step));
        assert_eq!(records[5].flags & FLAG_TAIL, FLAG_TAIL);
        let sum: f64 = records.iter().map(|r| r.joules[0]).sum();
        let total = meter.live().joules(0);
        assert!((sum - total).abs() <= 1e-9 * total, "{sum} vs {total}");
        let span_s = (records[5].t1_ns - records[0].t0_ns) as f64 * 1e-9;
        assert!((total - 100.0 * span_s).abs() <= 1e-6 * total);
    }

    #[test]
    fn bounded_drains_hand_over_every_record_once_in_order() {
        let meter = constant_meter(100.0, 1_000.0, 4096);
        meter.start().unwrap();
        for _ in 0..1_000 {
            meter.mark();
        }
        meter.stop().unwrap();
        let mut indices = Vec::new();
        loop {
            let moved = meter.drain_records(64, |r| indices.push(r.index));
            assert!(moved <= 64);
            if moved == 0 {
                break;
            }
        }
        // 1,000 marks close steps 0..999; the tail is step 1,000.
        assert_eq!(indices, (0..=1_000).collect::<Vec<u64>>());
        assert_eq!(meter.drain_records(64, |_| panic!("drained twice")), 0);
    }

    #[test]
    fn marks_while_stopped_are_ignored() {
        let meter = constant_meter(1.0, 100.0, 16);
        assert!(!meter.mark());
        assert_eq!(meter.live().steps_marked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_record_ring_counts_drops_and_keeps_the_records_it_holds() {
        let meter = constant_meter(10.0, 2_000.0, 4);
        meter.start().unwrap();
        for _ in 0..50 {
            meter.mark();
            thread::sleep(std::time::Duration::from_micros(300));
        }
        meter.stop().unwrap();
        let records = drain_all_records(&meter);
        assert_eq!(records.len(), 4);
        assert!(meter.live().records_dropped.load(Ordering::Relaxed) > 0);
        for pair in records.windows(2) {
            assert_eq!(pair[0].t1_ns, pair[1].t0_ns);
            assert_eq!(pair[0].index + 1, pair[1].index);
        }
    }

    #[test]
    fn restart_after_stop_continues_the_energy() {
        let meter = constant_meter(50.0, 500.0, 64);
        meter.start().unwrap();
        thread::sleep(std::time::Duration::from_millis(10));
        meter.stop().unwrap();
        let first = meter.live().joules(0);
        meter.start().unwrap();
        thread::sleep(std::time::Duration::from_millis(10));
        meter.stop().unwrap();
        assert!(meter.live().joules(0) > first);
    }

    /// A source that panics on its `reads_before_panic`-th read, as a buggy driver binding might.
    struct PanickingSource {
        channels: Vec<crate::channel::ChannelSpec>,
        reads_before_panic: u32,
    }

    impl Source for PanickingSource {
        fn name(&self) -> &'static str {
            "synthetic"
        }
        fn channels(&self) -> &[crate::channel::ChannelSpec] {
            &self.channels
        }
        fn read(&mut self, _t_ns: u64, out: &mut [Sample]) {
            assert!(self.reads_before_panic > 0, "sensor binding bug");
            self.reads_before_panic -= 1;
            out[0] = Sample::power(10.0);
        }
        fn describe(&self) -> Vec<(String, String)> {
            Vec::new()
        }
    }

    fn panicking_meter(reads_before_panic: u32) -> Meter {
        let source = PanickingSource {
            channels: SyntheticSource::new(vec![Trace::Constant { watts: 1.0 }], None)
                .unwrap()
                .channels()
                .to_vec(),
            reads_before_panic,
        };
        Meter::new(
            vec![Box::new(source)],
            MeterConfig {
                rate_hz: 1_000.0,
                ring_capacity: 64,
                boundary_capacity: 64,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_panicking_sampler_stops_reporting_running_and_refuses_marks() {
        let meter = panicking_meter(5);
        meter.start().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while meter.is_running() && std::time::Instant::now() < deadline {
            thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!meter.is_running());
        assert!(!meter.mark());
        let err = meter.start().unwrap_err();
        assert!(
            matches!(err, CoreError::Thread(ref m) if m.contains("panicked")),
            "{err:?}"
        );
    }

    #[test]
    fn a_sampler_that_panics_before_its_first_reading_says_so() {
        let meter = panicking_meter(0);
        let err = meter.start().unwrap_err();
        assert!(
            matches!(err, CoreError::Thread(ref m) if m.contains("panicked")),
            "{err:?}"
        );
    }

    #[test]
    fn a_dead_sensor_shows_as_nan_in_the_trace_and_live_watts() {
        let source =
            SyntheticSource::new(vec![Trace::Constant { watts: 50.0 }], Some(0.02)).unwrap();
        let meter = Meter::new(
            vec![Box::new(source)],
            MeterConfig {
                rate_hz: 500.0,
                ring_capacity: 1024,
                boundary_capacity: 64,
            },
        )
        .unwrap();
        meter.start().unwrap();
        thread::sleep(std::time::Duration::from_millis(80));
        assert!(meter.live().watts(0).is_nan());
        meter.mark();
        meter.stop().unwrap();
        let mut trace = Vec::new();
        meter.drain_trace(usize::MAX, |row| trace.push(row));
        assert_eq!(trace[0].watts[0], 50.0);
        assert!(trace.last().unwrap().watts[0].is_nan());
        let records = drain_all_records(&meter);
        assert_ne!(records[0].flags & crate::steps::FLAG_SENSOR_ERROR, 0);
    }

    #[test]
    fn only_the_record_that_absorbed_dropped_marks_carries_the_drop_flag() {
        let source = SyntheticSource::new(vec![Trace::Constant { watts: 1.0 }], None).unwrap();
        let meter = Meter::new(
            vec![Box::new(source)],
            MeterConfig {
                rate_hz: 5.0,
                ring_capacity: 64,
                boundary_capacity: 4,
            },
        )
        .unwrap();
        meter.start().unwrap();
        // Six marks long before the next tick: the queue holds four.
        let accepted: Vec<bool> = (0..6).map(|_| meter.mark()).collect();
        assert_eq!(accepted, vec![true, true, true, true, false, false]);
        meter.stop().unwrap();
        let dropped: Vec<bool> = drain_all_records(&meter)
            .iter()
            .map(|r| r.flags & crate::steps::FLAG_BOUNDARIES_DROPPED != 0)
            .collect();
        assert_eq!(dropped, vec![false, false, false, false, true]);
    }

    #[test]
    fn a_mark_racing_stop_never_becomes_a_phantom_step_of_the_next_run() {
        let meter = Arc::new(constant_meter(1.0, 2_000.0, 1 << 16));
        let marking = Arc::new(AtomicBool::new(true));
        let marker = {
            let (meter, marking) = (Arc::clone(&meter), Arc::clone(&marking));
            thread::spawn(move || {
                while marking.load(Ordering::Relaxed) {
                    meter.mark();
                }
            })
        };
        let mut phantoms = 0;
        for _ in 0..200 {
            meter.start().unwrap();
            meter.stop().unwrap();
            let records = drain_all_records(&meter);
            let begin = records.first().map_or(0, |r| r.t0_ns);
            phantoms += records
                .iter()
                .filter(|r| r.flags & FLAG_TAIL == 0 && r.t1_ns == begin)
                .count();
        }
        marking.store(false, Ordering::Relaxed);
        marker.join().unwrap();
        assert_eq!(phantoms, 0);
    }

    /// Constant power, read only every `interval_ns`; counts its reads.
    struct SlowSource {
        channels: Vec<crate::channel::ChannelSpec>,
        interval_ns: u64,
        reads: Arc<AtomicU64>,
    }

    impl Source for SlowSource {
        fn name(&self) -> &'static str {
            "cpu-estimate"
        }
        fn channels(&self) -> &[crate::channel::ChannelSpec] {
            &self.channels
        }
        fn read(&mut self, _t_ns: u64, out: &mut [Sample]) {
            self.reads.fetch_add(1, Ordering::Relaxed);
            out[0] = Sample::power(20.0);
        }
        fn describe(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn read_interval_ns(&self, sampler_period_ns: u64, _observed: Option<f64>) -> u64 {
            sampler_period_ns.max(self.interval_ns)
        }
    }

    #[test]
    fn each_source_is_read_at_its_own_rate_and_steps_still_add_up() {
        let fast = SyntheticSource::new(vec![Trace::Constant { watts: 100.0 }], None).unwrap();
        let reads = Arc::new(AtomicU64::new(0));
        let mut channels = fast.channels().to_vec();
        channels[0].name = "slow:0".into();
        let slow = SlowSource {
            channels,
            interval_ns: 50_000_000,
            reads: Arc::clone(&reads),
        };
        let meter = Meter::new(
            vec![Box::new(fast), Box::new(slow)],
            MeterConfig {
                rate_hz: 1_000.0,
                ring_capacity: 4096,
                boundary_capacity: 1024,
            },
        )
        .unwrap();
        meter.start().unwrap();
        for _ in 0..30 {
            thread::sleep(std::time::Duration::from_millis(10));
            meter.mark();
        }
        meter.stop().unwrap();
        let slow_reads = reads.load(Ordering::Relaxed);
        let all_readings = meter.live().readings.load(Ordering::Relaxed);
        assert!(slow_reads <= 12, "{slow_reads} reads in ~0.3 s at 20 Hz");
        assert!(
            all_readings > 5 * slow_reads,
            "{all_readings} vs {slow_reads}"
        );
        let records = drain_all_records(&meter);
        assert_eq!(records.len(), 31);
        for channel in 0..2 {
            let sum: f64 = records.iter().map(|r| r.joules[channel]).sum();
            let total = meter.live().joules(channel);
            assert!((sum - total).abs() <= 1e-9 * total, "{sum} vs {total}");
        }
        assert!(records
            .iter()
            .all(|r| r.flags & crate::steps::FLAG_APPROXIMATE == 0));
    }

    #[test]
    fn rate_out_of_range_is_a_config_error() {
        let source = SyntheticSource::new(vec![Trace::Constant { watts: 1.0 }], None).unwrap();
        let err = Meter::new(
            vec![Box::new(source)],
            MeterConfig {
                rate_hz: 0.0,
                ring_capacity: 8,
                boundary_capacity: 8,
            },
        )
        .err()
        .unwrap();
        assert!(matches!(err, CoreError::Config(ref m) if m.contains("rate_hz=0")));
    }
}
