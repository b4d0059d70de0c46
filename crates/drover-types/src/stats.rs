//! Host resource usage as the client reports it (`GET /v1/client/stats`, Nomad's `HostStats`).
//! Shared by the client (which measures it) and the API client (which reads it).

use serde::{Deserialize, Serialize};

/// `HostStats`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostStats {
    /// Memory of the host.
    pub memory: HostMemoryStats,
    /// One entry per CPU.
    #[serde(rename = "CPU")]
    pub cpu: Vec<HostCpuStats>,
    /// Mounted disks.
    pub disk_stats: Vec<HostDiskStats>,
    /// The file system holding the allocation directories.
    pub alloc_dir_stats: Option<HostDiskStats>,
    /// Devices (none reported).
    pub device_stats: Vec<serde_json::Value>,
    /// Seconds since boot.
    pub uptime: u64,
    /// When measured (unix nanoseconds).
    pub timestamp: i64,
    /// MHz in use across all cores.
    #[serde(rename = "CPUTicksConsumed")]
    pub cpu_ticks_consumed: f64,
}

/// `HostMemoryStats` (bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostMemoryStats {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable`.
    pub available: u64,
    /// Total minus available.
    pub used: u64,
    /// `MemFree`.
    pub free: u64,
}

/// `HostCpuStats`: percentages of one CPU over the sampling interval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostCpuStats {
    /// `cpu0`, `cpu1`, …
    #[serde(rename = "CPU")]
    pub cpu: String,
    /// User mode (incl. nice).
    pub user: f64,
    /// Kernel mode (incl. interrupts).
    pub system: f64,
    /// Idle (incl. I/O wait).
    pub idle: f64,
    /// Everything but idle.
    pub total_percent: f64,
    /// MHz in use on this CPU.
    pub total_ticks: f64,
}

/// `HostDiskStats` (bytes; percentages 0–100).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostDiskStats {
    /// `/dev/sda1`.
    pub device: String,
    /// `/`.
    pub mountpoint: String,
    /// Size of the file system.
    pub size: u64,
    /// Used bytes.
    pub used: u64,
    /// Bytes available to unprivileged users.
    pub available: u64,
    /// Used / size.
    pub used_percent: f64,
    /// Used inodes / inodes.
    pub inodes_used_percent: f64,
}
