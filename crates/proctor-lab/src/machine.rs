//! A description of the machine a result was measured on (LAB-METHODS rule 15).
//!
//! Everything is read without privileges from /proc, /sys and `uname`; what cannot be read
//! stays `None` or empty rather than failing the run.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::topology::Topology;

/// The machine, as far as it can be read without privileges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Machine {
    /// e.g. "AMD EPYC 7B13".
    pub cpu_model: String,
    /// CPUs the scheduler can use (logical).
    pub logical_cpus: usize,
    /// Physical cores, where the topology is readable.
    pub physical_cores: Option<usize>,
    /// `uname -r`.
    pub kernel: String,
    /// cpufreq governor of cpu0, if readable.
    pub governor: Option<String>,
    /// Current frequency of cpu0 in MHz, if readable.
    pub frequency_mhz: Option<f64>,
    /// Hypervisor or container, if detected ("kvm", "none").
    pub virtualization: Option<String>,
    /// Active CPU vulnerability mitigations (name: state).
    pub mitigations: Vec<String>,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Warnings about the environment (virtualized, governor not `performance`).
    pub warnings: Vec<String>,
    /// The allowed CPUs' cores, caches and nodes, from which placements are chosen.
    #[serde(default)]
    pub topology: Topology,
}

/// Reads the machine: CPU model and counts, kernel, governor and frequency, virtualization,
/// mitigations and memory, with warnings when figures will be less trustworthy.
pub fn detect() -> Machine {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo_field(&cpuinfo, "model name")
        .or_else(|| cpuinfo_field(&cpuinfo, "Processor"))
        .or_else(|| cpuinfo_field(&cpuinfo, "cpu model"))
        .unwrap_or_else(|| "unknown".to_string());
    let logical_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let governor = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
    let frequency_mhz = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
        .and_then(|khz| khz.parse::<f64>().ok())
        .map(|khz| khz / 1000.0)
        .or_else(|| cpuinfo_field(&cpuinfo, "cpu MHz").and_then(|m| m.parse().ok()));
    let virtualization = detect_virtualization(&cpuinfo);
    let mut m = Machine {
        cpu_model,
        logical_cpus,
        physical_cores: physical_cores(),
        kernel: kernel(),
        governor,
        frequency_mhz,
        virtualization,
        mitigations: mitigations(),
        memory_bytes: total_memory_bytes().unwrap_or(0),
        warnings: Vec::new(),
        topology: Topology::detect(),
    };
    m.warnings = warnings(&m);
    m
}

/// The warnings rule 15 asks for: a virtualized machine, a governor other than
/// `performance`, and fewer than two CPUs (no cross-CPU figures).
pub fn warnings(m: &Machine) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(v) = m.virtualization.as_deref().filter(|v| *v != "none") {
        w.push(format!(
            "virtualized ({v}): a hypervisor adds noise and changes wake-up and page-table costs"
        ));
    }
    match m.governor.as_deref() {
        Some("performance") => {}
        Some(g) => w.push(format!(
            "cpufreq governor is `{g}`, not `performance`: frequency changes add noise"
        )),
        None => w.push("cpufreq governor unreadable: frequency scaling is unknown".to_string()),
    }
    if m.logical_cpus < 2 {
        w.push("only one CPU: no cross-CPU figures".to_string());
    }
    w
}

/// Cache sizes of cpu0 as `(level, type, bytes)`, e.g. `(2, "Unified", 2097152)`.
pub fn cache_sizes() -> Vec<(u32, String, u64)> {
    let mut caches = Vec::new();
    let Ok(dir) = fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else {
        return caches;
    };
    for entry in dir.flatten() {
        let p = entry.path();
        if !p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("index"))
        {
            continue;
        }
        let level = read(p.join("level")).and_then(|l| l.parse().ok());
        let kind = read(p.join("type")).unwrap_or_default();
        let size = read(p.join("size")).and_then(|s| parse_cache_size(&s));
        if let (Some(level), Some(size)) = (level, size) {
            caches.push((level, kind, size));
        }
    }
    caches.sort();
    caches
}

/// The largest cache of `level` that holds data, in bytes.
pub fn cache_size(level: u32) -> Option<u64> {
    cache_sizes()
        .into_iter()
        .filter(|(l, kind, _)| *l == level && kind != "Instruction")
        .map(|(_, _, size)| size)
        .max()
}

fn parse_cache_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok().map(|n| n * mult)
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn cpuinfo_field(cpuinfo: &str, name: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// Distinct (package, core) pairs in the sysfs topology.
fn physical_cores() -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    for entry in fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let topo = entry.path().join("topology");
        let core = read(topo.join("core_id"))?;
        let package = read(topo.join("physical_package_id")).unwrap_or_default();
        cores.insert((package, core));
    }
    (!cores.is_empty()).then_some(cores.len())
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// `systemd-detect-virt` for the hypervisor and the container, else DMI strings, else the
/// `hypervisor` CPU flag.
fn detect_virtualization(cpuinfo: &str) -> Option<String> {
    let detect = |flag: &str| {
        Command::new("systemd-detect-virt")
            .arg(flag)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let vm = detect("--vm");
    let container = detect("--container");
    if vm.is_some() || container.is_some() {
        let parts: Vec<String> = [vm, container.map(|c| format!("container {c}"))]
            .into_iter()
            .flatten()
            .filter(|s| s != "none" && s != "container none")
            .collect();
        return Some(if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        });
    }
    let product = read("/sys/class/dmi/id/product_name").unwrap_or_default();
    let vendor = read("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    const KNOWN: &[(&str, &str)] = &[
        ("KVM", "kvm"),
        ("QEMU", "qemu"),
        ("VMware", "vmware"),
        ("VirtualBox", "oracle"),
        ("Microsoft Corporation", "microsoft"),
        ("Xen", "xen"),
        ("Amazon EC2", "amazon"),
        ("Google Compute Engine", "google"),
    ];
    if let Some((_, name)) = KNOWN
        .iter()
        .find(|(k, _)| product.contains(k) || vendor.contains(k))
    {
        return Some((*name).to_string());
    }
    let flags = cpuinfo_field(cpuinfo, "flags").unwrap_or_default();
    if flags.split_whitespace().any(|f| f == "hypervisor") {
        return Some("hypervisor (cpuinfo flag)".to_string());
    }
    if flags.is_empty() {
        None
    } else {
        Some("none".to_string())
    }
}

/// Each file in /sys/devices/system/cpu/vulnerabilities as `name: state`.
fn mitigations() -> Vec<String> {
    let Ok(dir) = fs::read_dir("/sys/devices/system/cpu/vulnerabilities") else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .flatten()
        .filter_map(|e| {
            let state = read(e.path())?;
            Some(format!("{}: {state}", e.file_name().to_string_lossy()))
        })
        .collect();
    v.sort();
    v
}

/// Total memory in bytes (`MemTotal` in /proc/meminfo), without the rest of [`detect`].
pub fn total_memory_bytes() -> Option<u64> {
    crate::procfs::read_kib_field("/proc/meminfo", "MemTotal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_reads_this_machine() {
        let m = detect();
        assert!(m.logical_cpus >= 1);
        assert!(!m.kernel.is_empty());
        assert!(!m.cpu_model.is_empty());
        if cfg!(target_os = "linux") {
            assert!(m.memory_bytes > 0);
        }
    }

    #[test]
    fn warnings_name_virtualization_and_governor() {
        let m = Machine {
            virtualization: Some("kvm".into()),
            governor: Some("powersave".into()),
            logical_cpus: 2,
            ..Machine::default()
        };
        let w = warnings(&m);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("kvm") && w[1].contains("powersave"));
        let calm = Machine {
            virtualization: Some("none".into()),
            governor: Some("performance".into()),
            logical_cpus: 8,
            ..Machine::default()
        };
        assert!(warnings(&calm).is_empty());
    }

    #[test]
    fn cache_sizes_parse_sysfs_units() {
        assert_eq!(parse_cache_size("48K"), Some(48 * 1024));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("x"), None);
    }

    #[test]
    fn cpuinfo_fields_are_found_by_exact_name() {
        let info = "processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2600.0\n";
        assert_eq!(
            cpuinfo_field(info, "model name").as_deref(),
            Some("Test CPU")
        );
        assert_eq!(cpuinfo_field(info, "cpu MHz").as_deref(), Some("2600.0"));
        assert_eq!(cpuinfo_field(info, "model"), None);
    }
}
