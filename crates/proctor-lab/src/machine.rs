//! A description of the machine a result was measured on.

use serde::{Deserialize, Serialize};

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
}
