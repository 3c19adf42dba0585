//! Intel and AMD RAPL energy counters through the Linux powercap tree.
//!
//! Zones are `intel-rapl:N` (package N) with sub-zones `intel-rapl:N:M` named `core`, `uncore`
//! or `dram`. Each `energy_uj` counts µJ and wraps at `max_energy_range_uj`. The files stay open
//! and are re-read with `pread` at offset 0: no open/close per reading.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::channel::{ChannelKind, ChannelSpec, Provenance, Sample};
use crate::error::{CoreError, CoreResult};
use crate::sources::{Source, SOURCE_RAPL};

struct Zone {
    energy_file: File,
    path: PathBuf,
}

pub struct RaplSource {
    root: PathBuf,
    zones: Vec<Zone>,
    channels: Vec<ChannelSpec>,
}

/// Parses the ASCII decimal a sysfs counter holds (surrounding whitespace allowed).
pub fn parse_counter(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    text.parse().ok()
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// `intel-rapl:1` -> (1, None); `intel-rapl:1:0` -> (1, Some(0)).
fn parse_zone_dir(name: &str) -> Option<(u32, Option<u32>)> {
    let rest = name.strip_prefix("intel-rapl:")?;
    let mut parts = rest.split(':');
    let package = parts.next()?.parse().ok()?;
    let sub = match parts.next() {
        None => None,
        Some(p) => Some(p.parse().ok()?),
    };
    parts.next().is_none().then_some((package, sub))
}

/// Channel name and parent for a zone, from its directory's package number and `name` file.
/// Returns None for zones we do not measure (`psys` covers the whole platform and would count
/// the package twice).
fn channel_for(
    package: u32,
    sub: Option<u32>,
    zone_name: &str,
) -> Option<(String, Option<String>)> {
    let package_channel = format!("cpu:package-{package}");
    match (sub, zone_name) {
        (_, "psys") => None,
        (None, n) if n.starts_with("package") => Some((package_channel, None)),
        (_, "dram") => Some((format!("dram:{package}"), None)),
        (Some(_), "core") => Some((format!("cpu:core-{package}"), Some(package_channel))),
        (Some(_), "uncore") => Some((format!("cpu:uncore-{package}"), Some(package_channel))),
        _ => None,
    }
}

fn permission_message(path: &Path) -> String {
    format!(
        "RAPL energy counter {} is not readable by this user: since Linux 5.10 (CVE-2020-8694) \
         energy_uj is readable by root only. Fix: grant read access at boot, e.g. a udev rule \
         `SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod 0444 /sys%p/energy_uj\"`, or \
         `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj` (or chgrp to a group you are \
         in), or run with the needed permission; or use sources=\"cpu-estimate\"",
        path.display()
    )
}

impl RaplSource {
    pub fn open(root: &Path) -> CoreResult<Self> {
        let entries = fs::read_dir(root).map_err(|e| {
            CoreError::Unavailable(format!(
                "RAPL: cannot list powercap root {}: {e}; this machine exposes no RAPL \
                 (VMs usually do not), use sources=\"cpu-estimate\"",
                root.display()
            ))
        })?;
        let mut found: Vec<(u32, Option<u32>, String, PathBuf)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let dir_name = entry.file_name().into_string().ok()?;
                let (package, sub) = parse_zone_dir(&dir_name)?;
                let zone_name = read_trimmed(&entry.path().join("name"))?;
                Some((package, sub, zone_name, entry.path()))
            })
            .collect();
        found.sort_by_key(|zone| (zone.0, zone.1));

        let mut zones = Vec::new();
        let mut channels = Vec::new();
        for (package, sub, zone_name, path) in found {
            let Some((channel, parent)) = channel_for(package, sub, &zone_name) else {
                continue;
            };
            let energy_path = path.join("energy_uj");
            let energy_file = File::open(&energy_path).map_err(|e| match e.kind() {
                ErrorKind::PermissionDenied => {
                    CoreError::Unavailable(permission_message(&energy_path))
                }
                _ => CoreError::Unavailable(format!(
                    "RAPL: cannot open {}: {e}",
                    energy_path.display()
                )),
            })?;
            let mut probe = [0u8; 32];
            match energy_file.read_at(&mut probe, 0) {
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    return Err(CoreError::Unavailable(permission_message(&energy_path)))
                }
                Err(e) => {
                    return Err(CoreError::Unavailable(format!(
                        "RAPL: cannot read {}: {e}",
                        energy_path.display()
                    )))
                }
                Ok(_) => {}
            }
            let wrap_units = read_trimmed(&path.join("max_energy_range_uj"))
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|&range| range > 0);
            channels.push(ChannelSpec {
                name: channel,
                kind: ChannelKind::Counter {
                    joules_per_unit: 1e-6,
                    wrap_units,
                },
                provenance: Provenance::Measured,
                source: SOURCE_RAPL,
                parent,
            });
            zones.push(Zone {
                energy_file,
                path: energy_path,
            });
        }
        if zones.is_empty() {
            return Err(CoreError::Unavailable(format!(
                "RAPL: no intel-rapl zones under {}; this machine exposes no RAPL (VMs usually \
                 do not), use sources=\"cpu-estimate\"",
                root.display()
            )));
        }
        Ok(RaplSource {
            root: root.to_path_buf(),
            zones,
            channels,
        })
    }
}

impl Source for RaplSource {
    fn name(&self) -> &'static str {
        SOURCE_RAPL
    }

    fn channels(&self) -> &[ChannelSpec] {
        &self.channels
    }

    fn read(&mut self, _t_ns: u64, out: &mut [Sample]) {
        let mut buffer = [0u8; 32];
        for (slot, zone) in out.iter_mut().zip(&self.zones) {
            *slot = match zone.energy_file.read_at(&mut buffer, 0) {
                Ok(n) => match parse_counter(&buffer[..n]) {
                    Some(units) => Sample::counter(units, f64::NAN),
                    None => Sample::FAILED,
                },
                Err(_) => Sample::FAILED,
            };
        }
    }

    fn describe(&self) -> Vec<(String, String)> {
        let mut facts = vec![("root".to_string(), self.root.display().to_string())];
        for (zone, channel) in self.zones.iter().zip(&self.channels) {
            facts.push((channel.name.clone(), zone.path.display().to_string()));
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_zone(root: &Path, dir: &str, name: &str, energy_uj: u64, range: u64) {
        let zone = root.join(dir);
        fs::create_dir_all(&zone).unwrap();
        fs::write(zone.join("name"), format!("{name}\n")).unwrap();
        fs::write(zone.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
        fs::write(zone.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }

    #[test]
    fn fake_powercap_tree_yields_named_channels_with_parents() {
        let root = tempfile::tempdir().unwrap();
        make_zone(
            root.path(),
            "intel-rapl:0",
            "package-0",
            1_000,
            262_143_328_850,
        );
        make_zone(root.path(), "intel-rapl:0:0", "core", 500, 262_143_328_850);
        make_zone(root.path(), "intel-rapl:0:1", "dram", 200, 65_712_999_613);
        make_zone(root.path(), "intel-rapl:1", "psys", 9, 1);
        make_zone(root.path(), "intel-rapl-mmio:0", "package-0", 9, 1);
        let mut source = RaplSource::open(root.path()).unwrap();
        let names: Vec<_> = source.channels().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["cpu:package-0", "cpu:core-0", "dram:0"]);
        assert_eq!(
            source.channels()[1].parent.as_deref(),
            Some("cpu:package-0")
        );
        assert_eq!(source.channels()[2].parent, None);
        assert_eq!(
            source.channels()[2].kind,
            ChannelKind::Counter {
                joules_per_unit: 1e-6,
                wrap_units: Some(65_712_999_613)
            }
        );
        let mut out = [Sample::FAILED; 3];
        source.read(0, &mut out);
        assert_eq!(out.map(|s| s.counter_units), [1_000, 500, 200]);
    }

    #[test]
    fn rereading_sees_the_file_change() {
        let root = tempfile::tempdir().unwrap();
        make_zone(root.path(), "intel-rapl:0", "package-0", 1_000, 10_000);
        let mut source = RaplSource::open(root.path()).unwrap();
        fs::write(root.path().join("intel-rapl:0/energy_uj"), "4242\n").unwrap();
        let mut out = [Sample::FAILED];
        source.read(0, &mut out);
        assert_eq!(out[0].counter_units, 4242);
    }

    #[test]
    fn garbage_in_the_counter_file_is_a_failed_sample() {
        assert_eq!(parse_counter(b"  123\n"), Some(123));
        assert_eq!(parse_counter(b""), None);
        assert_eq!(parse_counter(b"12a"), None);
    }

    #[test]
    fn an_empty_root_is_unavailable_with_a_hint() {
        let root = tempfile::tempdir().unwrap();
        let err = RaplSource::open(root.path()).err().unwrap();
        assert!(matches!(err, CoreError::Unavailable(ref m) if m.contains("cpu-estimate")));
    }
}
