//! A process's share of a node-wide CPU source (RAPL or the CPU estimate).
//!
//! Each read takes the wrapped source's reading and the CPU time, in clock ticks, that a process
//! tree used since the previous read, divided by the machine's CPU time over the same interval
//! (the aggregate line of /proc/stat, idle included): the share of the machine's CPU capacity the
//! tree used. Energy and power of every wrapped channel are multiplied by that share, so the
//! channel reports the tree's share of the measured (RAPL) or estimated power, as Scaphandre
//! attributes host power to processes. The idle part of the machine's power is attributed to no
//! process.
//!
//! The tree is a root pid plus its live descendants, found through
//! `/proc/<pid>/task/<tid>/children`. Each member counts `utime + stime` and the cumulative time
//! of the children it has reaped (`cutime + cstime`), so a child that exits and is reaped keeps
//! its time in the total. With `children_only` the root's own `utime + stime` is left out (the
//! `profile` command charges the command it runs, not itself). A descendant reparented away from
//! the tree takes its time with it: such a drop counts as no time rather than negative time.
//!
//! The sampler reads this source at most every READ_INTERVAL_NS: /proc moves in clock ticks
//! (usually 10 ms), so shares over shorter intervals would be mostly rounding.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::channel::{ChannelKind, ChannelSpec, Sample, MAX_CHANNELS};
use crate::error::{CoreError, CoreResult};
use crate::sources::cpu_estimate::parse_proc_stat;
use crate::sources::Source;

const READ_INTERVAL_NS: u64 = 100_000_000;
/// Reads between two walks of the process tree (1 s at the read interval): listing children
/// costs one file per thread, reading the members' times one file per process.
const WALK_EVERY_READS: u32 = 10;
const MAX_TREE_MEMBERS: usize = 100_000;

/// CPU time in clock ticks, from the fields after the command name in `/proc/<pid>/stat`:
/// `(utime + stime, cutime + cstime)`. The command name may hold spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_pid_stat(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file; utime..cstime are fields 14..17.
    let number = |i: usize| {
        fields
            .get(i - 3)?
            .parse::<i64>()
            .ok()
            .map(|v| v.max(0) as u64)
    };
    Some((number(14)? + number(15)?, number(16)? + number(17)?))
}

/// The share of the machine's CPU time a tree used between two snapshots, in [0, 1]; None when
/// no machine time passed (two reads within one clock tick).
pub fn cpu_time_share(tree_ticks: (u64, u64), machine_ticks: (u64, u64)) -> Option<f64> {
    let machine = machine_ticks.1.checked_sub(machine_ticks.0)?;
    let tree = tree_ticks.1.saturating_sub(tree_ticks.0);
    (machine > 0).then(|| (tree as f64 / machine as f64).clamp(0.0, 1.0))
}

pub struct ProcessShareSource {
    inner: Box<dyn Source>,
    proc_root: PathBuf,
    root_pid: u32,
    children_only: bool,
    channels: Vec<ChannelSpec>,
    /// The wrapped counter channels' wrap range, to difference their raw readings.
    wrap_units: Vec<Option<u64>>,
    previous_units: Vec<Option<u64>>,
    /// The tree's share of each counter channel, in the channel's units.
    share_units: Vec<f64>,
    inner_samples: [Sample; MAX_CHANNELS],
    previous_ticks: Option<(u64, u64)>,
    share: f64,
    text: String,
    members: Vec<u32>,
    pending: Vec<u32>,
    reads_until_walk: u32,
}

impl ProcessShareSource {
    pub fn new(
        inner: Box<dyn Source>,
        proc_root: &Path,
        root_pid: u32,
        children_only: bool,
    ) -> CoreResult<Self> {
        let mut channels = inner.channels().to_vec();
        let mut wrap_units = Vec::with_capacity(channels.len());
        for channel in &mut channels {
            if let ChannelKind::Counter {
                joules_per_unit,
                wrap_units: wrap,
            } = channel.kind
            {
                wrap_units.push(wrap);
                // The attributed energy is accumulated here and never wraps.
                channel.kind = ChannelKind::Counter {
                    joules_per_unit,
                    wrap_units: None,
                };
            } else {
                wrap_units.push(None);
            }
        }
        let n = channels.len();
        let mut source = ProcessShareSource {
            inner,
            proc_root: proc_root.to_path_buf(),
            root_pid,
            children_only,
            channels,
            wrap_units,
            previous_units: vec![None; n],
            share_units: vec![0.0; n],
            inner_samples: [Sample::FAILED; MAX_CHANNELS],
            previous_ticks: None,
            share: 0.0,
            text: String::with_capacity(4096),
            members: Vec::with_capacity(64),
            pending: Vec::with_capacity(64),
            reads_until_walk: 0,
        };
        source.previous_ticks = source.read_ticks();
        if source.previous_ticks.is_none() {
            return Err(CoreError::Unavailable(format!(
                "cpu_scope='process': cannot read the CPU time of pid {root_pid} and the machine under {}",
                proc_root.display()
            )));
        }
        Ok(source)
    }

    fn read_text(&mut self, path: &Path) -> bool {
        self.text.clear();
        File::open(path)
            .and_then(|mut file| file.read_to_string(&mut self.text))
            .is_ok()
    }

    /// The root and its live descendants, through every thread's `children` list.
    fn walk_tree(&mut self) {
        self.members.clear();
        self.pending.clear();
        self.pending.push(self.root_pid);
        while let Some(pid) = self.pending.pop() {
            self.members.push(pid);
            // A guard against a pid cycle in a corrupt tree: no real tree is this large.
            if self.members.len() > MAX_TREE_MEMBERS {
                break;
            }
            let tasks = self.proc_root.join(pid.to_string()).join("task");
            if let Ok(tasks) = std::fs::read_dir(tasks) {
                for task in tasks.flatten() {
                    if self.read_text(&task.path().join("children")) {
                        self.pending.extend(
                            self.text
                                .split_whitespace()
                                .filter_map(|p| p.parse::<u32>().ok()),
                        );
                    }
                }
            }
        }
    }

    /// (tree ticks, machine ticks) now; None when the machine's or the root's stat is unreadable.
    /// The tree is walked again every WALK_EVERY_READS reads: a child started in between counts
    /// from the next walk with all its time so far, and one reaped in between is in its parent's
    /// cumulative children time, so no CPU time is lost, only shifted by at most one walk.
    fn read_ticks(&mut self) -> Option<(u64, u64)> {
        let stat = self.proc_root.join("stat");
        if !self.read_text(&stat) {
            return None;
        }
        let machine = parse_proc_stat(&self.text)?.total;
        if self.reads_until_walk == 0 {
            self.walk_tree();
            self.reads_until_walk = WALK_EVERY_READS;
        }
        self.reads_until_walk -= 1;
        let mut tree = 0u64;
        for i in 0..self.members.len() {
            let pid = self.members[i];
            let path = self.proc_root.join(pid.to_string()).join("stat");
            let times = if self.read_text(&path) {
                parse_pid_stat(&self.text)
            } else {
                None
            };
            match times {
                Some((own, reaped)) => {
                    tree += reaped;
                    if !(self.children_only && pid == self.root_pid) {
                        tree += own;
                    }
                }
                None if pid == self.root_pid => return None,
                // Exited since the walk: its time is in its parent's once reaped.
                None => {}
            }
        }
        Some((tree, machine))
    }
}

impl Source for ProcessShareSource {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self, t_ns: u64, out: &mut [Sample]) {
        let n = self.channels.len();
        let mut inner_samples = self.inner_samples;
        self.inner.read(t_ns, &mut inner_samples[..n]);
        match self.read_ticks() {
            Some(now) => match self.previous_ticks {
                Some(before) => {
                    // Within one clock tick no machine time passes: keep the baseline, so the
                    // tree's ticks of this read count in the next share rather than in none.
                    if let Some(share) = cpu_time_share((before.0, now.0), (before.1, now.1)) {
                        self.share = share;
                        self.previous_ticks = Some(now);
                    }
                }
                None => self.previous_ticks = Some(now),
            },
            None => {
                for slot in out.iter_mut().take(n) {
                    *slot = Sample::FAILED;
                }
                return;
            }
        }
        for i in 0..n {
            let sample = inner_samples[i];
            if !sample.ok {
                out[i] = Sample::FAILED;
                continue;
            }
            out[i] = match self.channels[i].kind {
                ChannelKind::Power => Sample::power(sample.power_watts * self.share),
                ChannelKind::Counter { .. } => {
                    if let Some(previous) = self.previous_units[i] {
                        let delta = match self.wrap_units[i] {
                            Some(range) if sample.counter_units < previous => {
                                range - previous + sample.counter_units
                            }
                            _ => sample.counter_units.saturating_sub(previous),
                        };
                        self.share_units[i] += delta as f64 * self.share;
                    }
                    self.previous_units[i] = Some(sample.counter_units);
                    Sample::counter(self.share_units[i] as u64, sample.power_watts * self.share)
                }
            };
        }
        self.inner_samples = inner_samples;
    }

    fn read_interval_ns(&self, sampler_period_ns: u64, observed: Option<f64>) -> u64 {
        self.inner
            .read_interval_ns(sampler_period_ns, observed)
            .max(READ_INTERVAL_NS)
    }

    fn describe(&self) -> Vec<(String, String)> {
        let mut facts = self.inner.describe();
        facts.push(("scope".into(), "process".into()));
        let whose = if self.children_only {
            format!("the children of pid {}", self.root_pid)
        } else {
            format!("pid {} and its children", self.root_pid)
        };
        facts.push((
            "process_share".into(),
            format!(
                "CPU time of {whose} ({root}/<pid>/stat utime+stime+cutime+cstime) / machine CPU time ({root}/stat)",
                root = self.proc_root.display()
            ),
        ));
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 1 0 100 0 0";
        assert_eq!(parse_pid_stat(line), Some((300, 10)));
    }

    #[test]
    fn share_is_tree_ticks_over_machine_ticks_and_clamped() {
        assert_eq!(cpu_time_share((100, 150), (1000, 1200)), Some(0.25));
        assert_eq!(cpu_time_share((100, 90), (1000, 1200)), Some(0.0));
        assert_eq!(cpu_time_share((0, 500), (0, 100)), Some(1.0));
        assert_eq!(cpu_time_share((0, 5), (100, 100)), None);
    }
}
