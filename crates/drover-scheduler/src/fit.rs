//! Does it fit? Resource arithmetic, host ports, devices and reserved cores for one node — the
//! single fit check shared by the scheduler's bin-packing and the leader's plan applier
//! (`reference/server-and-scheduler.md` §8.5, §11).
//!
//! ```text
//!   Node ──node_capacity()──▶ capacity = node resources − operator-reserved
//!                                   │
//!   allocs on node ─(skip client-terminal)─┬─ alloc_usage() ──Σ──▶ used ──┐
//!                                          ├─ reserved core ids ─▶ no id twice, ids reservable
//!                                          ├─ host ports ─────────▶ no collision (node reserved ports too)
//!                                          └─ device instances ───▶ no instance twice (check_devices)
//!                                                                  capacity ⊇ used ?
//!                                                   allocs_fit() ──▶ Ok(used) | Err(Misfit)
//!
//!   placing a group on a candidate node (the binpack iterator):
//!     NetworkIndex::new(node) + add_allocs(existing) ─▶ assign_group_network(ask, rng) ─▶ ports
//!     DeviceAllocator::new(node, existing)             ─▶ assign(requested device)   ─▶ instance ids
//!     group_ask(tg) ─▶ build the allocation ─▶ allocs_fit(node, existing + new)
//! ```
//!
//! # Vocabulary
//!
//! * **Comparable** — the scalar dimensions that are summed and compared: CPU shares (MHz),
//!   reserved cores (a count), memory, memory max (carried, never compared) and disk.
//! * **Capacity** — what the node offers minus what the operator reserved for non-Nomad use.
//! * **Usage** — what an allocation holds, read from its `AllocatedResources` (the ask of its
//!   job's group when that is missing).
//! * **Strict / loose port holder** — a port held normally is *strict*; one held with
//!   `ignore_collision` is *loose*. The node's reserved host ports are strict holders.
//! * **Misfit** — the first reason something does not fit; its [`Misfit::dimension`] is the key
//!   counted in `AllocMetric.DimensionExhausted`.
//!
//! # Guarantees
//!
//! * **One rule for ports, order independent.** A port collides iff it has two or more strict
//!   holders. Loose holders never collide (and never make others collide), but dynamic port
//!   selection avoids every held port. [`NetworkIndex`] and [`allocs_fit`] apply exactly this rule,
//!   so a port the index hands out is never rejected by `allocs_fit`.
//! * **Lifecycle-aware usage, same formula both ways.** [`group_ask`] and [`alloc_usage`] use the
//!   same per-phase formula (below), so a placement whose ask fits also fits when the applier
//!   re-reads it from the allocation.
//! * Client-terminal allocations (complete, failed, lost) are ignored everywhere.
//! * Deterministic: port picks draw only from the caller's [`Rng`]; devices are handed out in
//!   node order.
//! * No panics on any input; all sums saturate.
//!
//! # Usage formula (Nomad's task lifecycle rule)
//!
//! Prestart sidecars run for the whole allocation; ephemeral prestart tasks finish before the
//! main tasks start; poststop tasks run after they stop. So CPU and memory are
//! `sidecars + max(prestart ephemeral, main + poststart, poststop)`, component-wise. Reserved
//! cores are summed over every task (each task gets its own cores), disk is the group's.
//!
//! # Limitations
//!
//! * One port space per node: ports are not separated per host-network address (a port used on
//!   one address is considered used on all). Conservative: never double-books, may refuse a
//!   placement Nomad would accept on multi-homed nodes. Reserved ports of host-network
//!   addresses are likewise treated as reserved node-wide.
//! * No bandwidth (MBits) accounting; no NUMA-aware core or device selection.
//! * Device health/existence is enforced only for allocations not yet committed
//!   (`create_index == 0`, i.e. the plan's new placements): an already-running allocation whose
//!   GPU later turned unhealthy must not make every future plan on that node fail.

use std::sync::Arc;

use drover_types::alloc::{AllocatedDeviceResource, AllocatedPortMapping};
use drover_types::job::{NetworkResource, Port, RequestedDevice, TaskLifecycle, UNSET};
use drover_types::node::NodeDeviceResource;
use drover_types::{Allocation, Node, TaskGroup};

use crate::rng::Rng;

/// Default lower bound of the dynamic port range.
pub const DEFAULT_MIN_DYNAMIC_PORT: u16 = 20000;
/// Default upper bound of the dynamic port range.
pub const DEFAULT_MAX_DYNAMIC_PORT: u16 = 32000;
/// Random picks per dynamic port before the exhaustive scan.
pub const DYNAMIC_PORT_RANDOM_TRIES: usize = 20;

// ---------------------------------------------------------------------------------------------
// Comparable resources
// ---------------------------------------------------------------------------------------------

/// CPU (MHz shares), reserved cores (count), memory, memory max, disk, in one comparable bundle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Comparable {
    /// CPU shares in MHz.
    pub cpu: i64,
    /// Number of reserved (exclusive) cores.
    pub cores: i64,
    /// Memory in MB.
    pub memory_mb: i64,
    /// Memory limit with oversubscription (carried, never compared).
    pub memory_max_mb: i64,
    /// Ephemeral disk in MB.
    pub disk_mb: i64,
}

impl Comparable {
    /// Adds `o` (saturating).
    pub fn add(&mut self, o: &Comparable) {
        self.cpu = self.cpu.saturating_add(o.cpu);
        self.cores = self.cores.saturating_add(o.cores);
        self.memory_mb = self.memory_mb.saturating_add(o.memory_mb);
        self.memory_max_mb = self.memory_max_mb.saturating_add(o.memory_max_mb);
        self.disk_mb = self.disk_mb.saturating_add(o.disk_mb);
    }

    /// Subtracts `o` (saturating; results may be negative).
    pub fn sub(&mut self, o: &Comparable) {
        self.cpu = self.cpu.saturating_sub(o.cpu);
        self.cores = self.cores.saturating_sub(o.cores);
        self.memory_mb = self.memory_mb.saturating_sub(o.memory_mb);
        self.memory_max_mb = self.memory_max_mb.saturating_sub(o.memory_max_mb);
        self.disk_mb = self.disk_mb.saturating_sub(o.disk_mb);
    }

    /// None if self ⊇ other in every dimension, else the first exhausted dimension name: "cpu",
    /// "cores", "memory", "disk". Memory max is not compared (it is an oversubscription limit).
    pub fn superset(&self, other: &Comparable) -> Option<&'static str> {
        if self.cpu < other.cpu {
            Some("cpu")
        } else if self.cores < other.cores {
            Some("cores")
        } else if self.memory_mb < other.memory_mb {
            Some("memory")
        } else if self.disk_mb < other.disk_mb {
            Some("disk")
        } else {
            None
        }
    }

    /// Component-wise maximum of CPU and memory (cores and disk are left alone).
    fn max_cpu_mem(&mut self, o: &Comparable) {
        self.cpu = self.cpu.max(o.cpu);
        self.memory_mb = self.memory_mb.max(o.memory_mb);
        self.memory_max_mb = self.memory_max_mb.max(o.memory_max_mb);
    }
}

/// Per-lifecycle-phase sums of task resources (see the module docs for the formula).
#[derive(Default)]
struct PhaseSums {
    sidecar: Comparable,
    ephemeral: Comparable,
    main: Comparable,
    poststop: Comparable,
    cores: i64,
}

impl PhaseSums {
    fn add(&mut self, lifecycle: Option<&TaskLifecycle>, c: &Comparable) {
        self.cores = self.cores.saturating_add(c.cores);
        let bucket = match lifecycle {
            Some(lc) if lc.hook == "prestart" && lc.sidecar => &mut self.sidecar,
            Some(lc) if lc.hook == "prestart" => &mut self.ephemeral,
            Some(lc) if lc.hook == "poststop" => &mut self.poststop,
            // poststart tasks run alongside the main tasks; unknown hooks count as main.
            _ => &mut self.main,
        };
        bucket.add(c);
    }

    fn total(&self) -> Comparable {
        let mut peak = self.ephemeral;
        peak.max_cpu_mem(&self.main);
        peak.max_cpu_mem(&self.poststop);
        peak.add(&self.sidecar);
        peak.cores = self.cores;
        peak.disk_mb = 0;
        peak
    }
}

/// The node's capacity minus what the operator reserved.
///
/// Cores: the reservable cores (or `0..total_cpu_cores` when the list is empty) minus the
/// operator-reserved ones, as a count.
pub fn node_capacity(node: &Node) -> Comparable {
    let mut c = Comparable::default();
    if let Some(r) = &node.node_resources {
        c.cpu = r.cpu.cpu_shares;
        c.memory_mb = r.memory.memory_mb;
        c.disk_mb = r.disk.disk_mb;
        c.cores = if r.cpu.reservable_cpu_cores.is_empty() {
            r.cpu.total_cpu_cores.max(0)
        } else {
            i64::try_from(r.cpu.reservable_cpu_cores.len()).unwrap_or(i64::MAX)
        };
    }
    if let Some(rr) = &node.reserved_resources {
        c.cpu = c.cpu.saturating_sub(rr.cpu.cpu_shares);
        c.memory_mb = c.memory_mb.saturating_sub(rr.memory.memory_mb);
        c.disk_mb = c.disk_mb.saturating_sub(rr.disk.disk_mb);
        let mut withheld: Vec<i64> = rr
            .cpu
            .reserved_cpu_cores
            .iter()
            .copied()
            .filter(|&core| core_in_node_set(node, core))
            .collect();
        withheld.sort_unstable();
        withheld.dedup();
        c.cores = c
            .cores
            .saturating_sub(i64::try_from(withheld.len()).unwrap_or(i64::MAX))
            .max(0);
    }
    c
}

/// Is `core` one of the node's reservable cores (ignoring operator reservations)?
fn core_in_node_set(node: &Node, core: i64) -> bool {
    match &node.node_resources {
        Some(r) if !r.cpu.reservable_cpu_cores.is_empty() => r.cpu.reservable_cpu_cores.contains(&core),
        Some(r) => core >= 0 && core < r.cpu.total_cpu_cores,
        None => false,
    }
}

/// May an allocation hold `core` on this node: reservable and not withheld by the operator?
fn core_allowed(node: &Node, core: i64) -> bool {
    core_in_node_set(node, core)
        && !node
            .reserved_resources
            .as_ref()
            .is_some_and(|rr| rr.cpu.reserved_cpu_cores.contains(&core))
}

fn non_negative(v: i64) -> i64 {
    v.max(0)
}

/// What one allocation of this group asks for: per task CPU, cores, memory + secrets_mb and
/// memory max (only with oversubscription), combined by the lifecycle rule of the module docs,
/// plus the group's ephemeral disk.
///
/// An un-canonicalised CPU ([`UNSET`]) counts as Nomad's default: 100 MHz, or 0 when the task
/// reserves cores. Negative values count as 0.
pub fn group_ask(tg: &TaskGroup, oversubscription: bool) -> Comparable {
    let mut phases = PhaseSums::default();
    for task in &tg.tasks {
        let Some(r) = &task.resources else { continue };
        let cpu = if r.cpu == UNSET {
            if r.cores > 0 { 0 } else { 100 }
        } else {
            non_negative(r.cpu)
        };
        let memory = non_negative(r.memory_mb).saturating_add(non_negative(r.secrets_mb.unwrap_or(0)));
        let c = Comparable {
            cpu,
            cores: non_negative(r.cores),
            memory_mb: memory,
            memory_max_mb: if oversubscription {
                non_negative(r.memory_max_mb)
            } else {
                0
            },
            disk_mb: 0,
        };
        phases.add(task.lifecycle.as_ref(), &c);
    }
    let mut total = phases.total();
    total.disk_mb = tg
        .ephemeral_disk
        .as_ref()
        .map(|d| non_negative(d.size_mb))
        .unwrap_or(0);
    total
}

/// What an allocation uses (from AllocatedResources; falls back to its job's task group ask
/// when absent). Cores are the number of reserved core ids.
pub fn alloc_usage(alloc: &Allocation) -> Comparable {
    let Some(ar) = &alloc.allocated_resources else {
        return alloc
            .job
            .as_ref()
            .and_then(|j| j.group(&alloc.task_group))
            .map(|tg| group_ask(tg, false))
            .unwrap_or_default();
    };
    let mut phases = PhaseSums::default();
    for (name, t) in &ar.tasks {
        let c = Comparable {
            cpu: non_negative(t.cpu.cpu_shares),
            cores: i64::try_from(t.cpu.reserved_cores.len()).unwrap_or(i64::MAX),
            memory_mb: non_negative(t.memory.memory_mb),
            memory_max_mb: non_negative(t.memory.memory_max_mb),
            disk_mb: 0,
        };
        let lifecycle = match ar.task_lifecycles.get(name) {
            Some(lc) => lc.as_ref(),
            // Not recorded on the allocation: read it from the job's task definition.
            None => alloc
                .job
                .as_ref()
                .and_then(|j| j.group(&alloc.task_group))
                .and_then(|g| g.task(name))
                .and_then(|t| t.lifecycle.as_ref()),
        };
        phases.add(lifecycle, &c);
    }
    let mut total = phases.total();
    total.disk_mb = non_negative(ar.shared.disk_mb);
    total
}

// ---------------------------------------------------------------------------------------------
// Misfit
// ---------------------------------------------------------------------------------------------

/// Why something does not fit (the `DimensionExhausted` key in placement metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// A scalar dimension is exhausted: "cpu", "cores", "memory" or "disk".
    Resource(&'static str),
    /// The node already runs `node_max_allocs` allocations.
    MaxAllocs,
    /// Reserved core ids overlap between allocations or are not reservable on the node.
    Cores,
    /// A host port collision or invalid port (the message names the port).
    Ports(String),
    /// A device instance is used twice, or missing/unhealthy (names the device group).
    Devices(String),
    /// A host volume requested `single-node-single-writer` is mounted read-write by two
    /// allocations (names the volume).
    Volume(String),
}

impl Misfit {
    /// The metric key: "cpu", "memory", "disk", "cores", "max allocs",
    /// "network: reserved port collision 8080", "devices: nvidia/gpu".
    pub fn dimension(&self) -> String {
        match self {
            Misfit::Resource(d) => (*d).to_string(),
            Misfit::MaxAllocs => "max allocs".to_string(),
            Misfit::Cores => "cores".to_string(),
            Misfit::Ports(m) => format!("network: {m}"),
            Misfit::Devices(m) => format!("devices: {m}"),
            Misfit::Volume(v) => format!("host volume: {v} has a single writer"),
        }
    }
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dimension())
    }
}

// ---------------------------------------------------------------------------------------------
// The fit check
// ---------------------------------------------------------------------------------------------

/// THE fit check (also used by the plan applier): do these allocations (non-client-terminal
/// ones are counted; client-terminal skipped) fit on the node? Checks, in order:
/// node_max_allocs, overlapping or non-reservable reserved cores, capacity ⊇ Σ usage, port
/// collisions among the allocs and with the node's reserved host ports, and (when
/// check_devices) no device instance used twice and — for not-yet-committed allocations
/// (`create_index == 0`) — every instance exists and is healthy. Returns the used total.
pub fn allocs_fit(node: &Node, allocs: &[&Allocation], check_devices: bool) -> Result<Comparable, Misfit> {
    let live = || allocs.iter().copied().filter(|a| !a.client_terminal());

    if node.node_max_allocs > 0 {
        let n = i64::try_from(live().count()).unwrap_or(i64::MAX);
        if n > node.node_max_allocs {
            return Err(Misfit::MaxAllocs);
        }
    }

    let mut used = Comparable::default();
    let mut cores: Vec<i64> = Vec::new();
    let mut ports: Vec<(i64, bool)> = Vec::new();
    for a in live() {
        used.add(&alloc_usage(a));
        if let Some(ar) = &a.allocated_resources {
            for t in ar.tasks.values() {
                cores.extend_from_slice(&t.cpu.reserved_cores);
            }
        }
        for_each_alloc_port(a, |v, ignore| ports.push((v, ignore)));
    }

    if !cores.is_empty() {
        cores.sort_unstable();
        if cores.windows(2).any(|w| w[0] == w[1]) || cores.iter().any(|&c| !core_allowed(node, c)) {
            return Err(Misfit::Cores);
        }
    }

    if let Some(dim) = node_capacity(node).superset(&used) {
        return Err(Misfit::Resource(dim));
    }

    if !ports.is_empty() {
        let reserved = node_reserved_ranges(node);
        check_port_set(&mut ports, &reserved).map_err(Misfit::Ports)?;
    }

    if check_devices {
        check_device_use(node, live())?;
    }
    check_volume_claims(live())?;
    Ok(used)
}

/// Single-writer host volume claims: at most one live allocation on a node mounts read-write a
/// host volume its group requests with access mode `single-node-single-writer` (a `per_alloc`
/// request names `source[<index>]`). Allocations without their job are not checked.
fn check_volume_claims<'a>(allocs: impl Iterator<Item = &'a Allocation>) -> Result<(), Misfit> {
    let mut writers: Vec<String> = Vec::new();
    for a in allocs {
        let Some(tg) = a.job.as_ref().and_then(|j| j.group(&a.task_group)) else {
            continue;
        };
        for req in tg.volumes.values() {
            if !matches!(req.volume_type.as_str(), "host" | "")
                || req.read_only
                || req.access_mode != "single-node-single-writer"
            {
                continue;
            }
            let volume = match (req.per_alloc, crate::feasible::alloc_suffix(&a.name)) {
                (true, Some(suffix)) => format!("{}{suffix}", req.source),
                _ => req.source.clone(),
            };
            if writers.contains(&volume) {
                return Err(Misfit::Volume(volume));
            }
            writers.push(volume);
        }
    }
    Ok(())
}

/// No instance used twice; new allocations only use existing, healthy instances.
fn check_device_use<'a>(node: &Node, allocs: impl Iterator<Item = &'a Allocation>) -> Result<(), Misfit> {
    let groups: &[NodeDeviceResource] = node
        .node_resources
        .as_ref()
        .map(|r| r.devices.as_slice())
        .unwrap_or(&[]);
    let mut seen: Vec<(&str, &str, &str, &str)> = Vec::new();
    for a in allocs {
        let Some(ar) = &a.allocated_resources else {
            continue;
        };
        let fresh = a.create_index == 0;
        for t in ar.tasks.values() {
            for d in &t.devices {
                let group = groups
                    .iter()
                    .find(|g| g.vendor == d.vendor && g.device_type == d.device_type && g.name == d.name);
                for id in &d.device_ids {
                    if fresh {
                        let ok = group.is_some_and(|g| g.instances.iter().any(|i| i.id == *id && i.healthy));
                        if !ok {
                            return Err(Misfit::Devices(device_label(d)));
                        }
                    }
                    seen.push((&d.vendor, &d.device_type, &d.name, id));
                }
            }
        }
    }
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        let (v, t, n, _) = w[0];
        return Err(Misfit::Devices(format!("{v}/{t}/{n}")));
    }
    Ok(())
}

fn device_label(d: &AllocatedDeviceResource) -> String {
    format!("{}/{}/{}", d.vendor, d.device_type, d.name)
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// Parses "22,80,8500-8600" (bad pieces ignored: non-numbers, 0, > 65535, reversed ranges).
pub fn parse_port_list(s: &str) -> Vec<u16> {
    let mut ranges = Vec::new();
    parse_port_ranges(s, &mut ranges);
    normalize_ranges(&mut ranges);
    ranges.iter().flat_map(|&(lo, hi)| lo..=hi).collect()
}

/// Appends the inclusive ranges of a port list string to `out` (unsorted).
fn parse_port_ranges(s: &str, out: &mut Vec<(u16, u16)>) {
    for piece in s.split(',') {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let range = match piece.split_once('-') {
            Some((lo, hi)) => lo.trim().parse::<u16>().ok().zip(hi.trim().parse::<u16>().ok()),
            None => piece.parse::<u16>().ok().map(|p| (p, p)),
        };
        if let Some((lo, hi)) = range
            && lo >= 1
            && lo <= hi
        {
            out.push((lo, hi));
        }
    }
}

/// Sorts and merges overlapping or adjacent inclusive ranges.
fn normalize_ranges(ranges: &mut Vec<(u16, u16)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    *ranges = merged;
}

/// Is `p` inside one of the sorted, merged ranges?
fn in_ranges(ranges: &[(u16, u16)], p: u16) -> bool {
    let idx = ranges.partition_point(|&(lo, _)| lo <= p);
    idx > 0 && ranges[idx - 1].1 >= p
}

/// The node's reserved host ports as sorted, merged ranges: `reserved.networks.reserved_host_ports`
/// plus the `ReservedPorts` of every host-network address (applied node-wide).
pub(crate) fn node_reserved_ranges(node: &Node) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    if let Some(rr) = &node.reserved_resources {
        parse_port_ranges(&rr.networks.reserved_host_ports, &mut out);
    }
    if let Some(r) = &node.node_resources {
        for net in &r.node_networks {
            let Some(addrs) = net.get("Addresses").and_then(|a| a.as_array()) else {
                continue;
            };
            for addr in addrs {
                if let Some(s) = addr.get("ReservedPorts").and_then(|v| v.as_str()) {
                    parse_port_ranges(s, &mut out);
                }
            }
        }
    }
    normalize_ranges(&mut out);
    out
}

/// The node's dynamic port range (defaults when 0), clamped to 1..=65535. Empty when min > max.
pub(crate) fn dynamic_range(node: &Node) -> (u16, u16) {
    let (min, max) = node
        .node_resources
        .as_ref()
        .map(|r| (r.min_dynamic_port, r.max_dynamic_port))
        .unwrap_or((0, 0));
    let clamp = |v: i64, default: u16| -> u16 {
        if v == 0 {
            default
        } else {
            u16::try_from(v.clamp(1, 65535)).unwrap_or(default)
        }
    };
    (
        clamp(min, DEFAULT_MIN_DYNAMIC_PORT),
        clamp(max, DEFAULT_MAX_DYNAMIC_PORT),
    )
}

/// Calls `f(value, ignore_collision)` for every host port an allocation holds: its group port
/// mappings (or, when there are none, the ports of its group networks) and the ports of its
/// legacy task networks. Port value 0 (never assigned) is skipped. Stops at the first error.
pub(crate) fn try_for_each_alloc_port<E>(
    alloc: &Allocation,
    mut f: impl FnMut(i64, bool) -> Result<(), E>,
) -> Result<(), E> {
    let Some(ar) = &alloc.allocated_resources else {
        return Ok(());
    };
    let mut visit = |value: i64, ignore: bool| if value != 0 { f(value, ignore) } else { Ok(()) };
    if !ar.shared.ports.is_empty() {
        for p in &ar.shared.ports {
            visit(p.value, p.ignore_collision)?;
        }
    } else {
        for p in ar.shared.networks.iter().flat_map(|n| n.ports()) {
            visit(p.value, p.ignore_collision)?;
        }
    }
    for p in ar
        .tasks
        .values()
        .flat_map(|t| t.networks.iter())
        .flat_map(|n| n.ports())
    {
        visit(p.value, p.ignore_collision)?;
    }
    Ok(())
}

/// Infallible form of [`try_for_each_alloc_port`].
pub(crate) fn for_each_alloc_port(alloc: &Allocation, mut f: impl FnMut(i64, bool)) {
    let _ = try_for_each_alloc_port::<()>(alloc, |v, i| {
        f(v, i);
        Ok(())
    });
}

fn valid_port(v: i64) -> Result<u16, String> {
    u16::try_from(v)
        .ok()
        .filter(|&p| p >= 1)
        .ok_or_else(|| format!("invalid port {v}"))
}

fn collision(p: u16) -> String {
    format!("reserved port collision {p}")
}

/// The port rule over a whole set: two strict holders of one port, a strict holder of a
/// node-reserved port, or an invalid port value are errors. Sorts `ports`.
pub(crate) fn check_port_set(ports: &mut [(i64, bool)], reserved: &[(u16, u16)]) -> Result<(), String> {
    ports.sort_unstable();
    let mut last_strict: Option<u16> = None;
    for &(v, ignore) in ports.iter() {
        let p = valid_port(v)?;
        if ignore {
            continue;
        }
        if last_strict == Some(p) || in_ranges(reserved, p) {
            return Err(collision(p));
        }
        last_strict = Some(p);
    }
    Ok(())
}

/// Inserts into a sorted vec; false when already present.
fn insert_sorted(v: &mut Vec<u16>, p: u16) -> bool {
    match v.binary_search(&p) {
        Ok(_) => false,
        Err(i) => {
            v.insert(i, p);
            true
        }
    }
}

/// What a node offers for ports, read from the node alone: its reserved ranges, dynamic range,
/// address and host networks. Computed once per node and version (the scheduler's candidate
/// index keeps one per ready node) and shared by every [`NetworkIndex`] built on that node, so
/// ranking does not re-read the node's network description for each placement.
#[derive(Debug)]
pub struct NodePorts {
    reserved: Vec<(u16, u16)>,
    dyn_min: u16,
    dyn_max: u16,
    ip: String,
    device: String,
    cidr: String,
    /// Host-network aliases other than "default" → address.
    aliases: Vec<(String, String)>,
}

impl NodePorts {
    /// Reads `node`'s network description.
    pub fn new(node: &Node) -> NodePorts {
        let (dyn_min, dyn_max) = dynamic_range(node);
        let mut ip = String::new();
        let mut device = String::new();
        let mut cidr = String::new();
        let mut aliases = Vec::new();
        if let Some(r) = &node.node_resources {
            if let Some(n) = r.networks.first() {
                ip.clone_from(&n.ip);
                device.clone_from(&n.device);
                cidr.clone_from(&n.cidr);
            }
            for net in &r.node_networks {
                let Some(addrs) = net.get("Addresses").and_then(|a| a.as_array()) else {
                    continue;
                };
                for addr in addrs {
                    let alias = addr.get("Alias").and_then(|v| v.as_str()).unwrap_or("");
                    let address = addr.get("Address").and_then(|v| v.as_str()).unwrap_or("");
                    if alias == "default" || alias.is_empty() {
                        if ip.is_empty() {
                            ip = address.to_string();
                        }
                    } else if !aliases.iter().any(|(a, _): &(String, String)| a == alias) {
                        aliases.push((alias.to_string(), address.to_string()));
                    }
                }
            }
        }
        NodePorts {
            reserved: node_reserved_ranges(node),
            dyn_min,
            dyn_max,
            ip,
            device,
            cidr,
            aliases,
        }
    }
}

/// Host ports in use on a node, built from its reserved ports and existing allocations.
///
/// Kept as sorted vectors (strict ports, loose ports) next to the node's shared [`NodePorts`]:
/// building one costs a few inserts, membership is a binary search.
#[derive(Debug, Clone)]
pub struct NetworkIndex {
    node: Arc<NodePorts>,
    strict: Vec<u16>,
    loose: Vec<u16>,
}

/// One port as assigned by the index, before it is shaped into an offer.
struct Assigned {
    dynamic: bool,
    index: usize,
    value: u16,
    host_ip: String,
}

impl NetworkIndex {
    /// An index holding the node's reserved host ports.
    pub fn new(node: &Node) -> NetworkIndex {
        NetworkIndex::on(Arc::new(NodePorts::new(node)))
    }

    /// An index over a node's precomputed [`NodePorts`].
    pub fn on(node: Arc<NodePorts>) -> NetworkIndex {
        NetworkIndex {
            node,
            strict: Vec::new(),
            loose: Vec::new(),
        }
    }

    /// Is the port held by anyone (node reservation, strict or loose holder)?
    pub fn is_used(&self, port: u16) -> bool {
        in_ranges(&self.node.reserved, port)
            || self.strict.binary_search(&port).is_ok()
            || self.loose.binary_search(&port).is_ok()
    }

    /// Would a strict (non-`ignore_collision`) claim of `port` collide?
    fn strictly_held(&self, port: u16) -> bool {
        in_ranges(&self.node.reserved, port) || self.strict.binary_search(&port).is_ok()
    }

    /// Adds allocations' ports (client-terminal allocations are skipped); Err on a collision
    /// (message names the port). On Err the index is partially filled and should be discarded.
    pub fn add_allocs(&mut self, allocs: &[&Allocation]) -> Result<(), String> {
        for a in allocs.iter().filter(|a| !a.client_terminal()) {
            try_for_each_alloc_port(a, |v, ignore| {
                let p = valid_port(v)?;
                if ignore {
                    insert_sorted(&mut self.loose, p);
                } else if in_ranges(&self.node.reserved, p) || !insert_sorted(&mut self.strict, p) {
                    return Err(collision(p));
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn host_ip(&self, host_network: &str) -> Result<String, String> {
        if host_network.is_empty() || host_network == "default" {
            return Ok(self.node.ip.clone());
        }
        self.node
            .aliases
            .iter()
            .find(|(a, _)| a == host_network)
            .map(|(_, ip)| ip.clone())
            .ok_or_else(|| format!("no addresses available for {host_network} network"))
    }

    fn free_for_dynamic(&self, p: u16, pending: &[Assigned]) -> bool {
        !self.is_used(p) && !pending.iter().any(|a| a.value == p)
    }

    /// A free dynamic port: 20 random picks, then a scan from a random start. `pending`: the
    /// ports of this ask assigned so far.
    fn pick_dynamic(&self, pending: &[Assigned], rng: &mut Rng) -> Option<u16> {
        if self.node.dyn_min > self.node.dyn_max {
            return None;
        }
        let span = u64::from(self.node.dyn_max - self.node.dyn_min) + 1;
        let at = |off: u64| -> u16 {
            // off < span ≤ 65535, so the sum stays within dyn_max.
            self.node.dyn_min.saturating_add(u16::try_from(off).unwrap_or(0))
        };
        for _ in 0..DYNAMIC_PORT_RANDOM_TRIES {
            let p = at(rng.below(span));
            if self.free_for_dynamic(p, pending) {
                return Some(p);
            }
        }
        let start = rng.below(span);
        (0..span)
            .map(|i| at((start + i) % span))
            .find(|&p| self.free_for_dynamic(p, pending))
    }

    /// Assigns every port of `ask` and records them; nothing is recorded on error.
    fn assign_ports(&mut self, ask: &NetworkResource, rng: &mut Rng) -> Result<Vec<Assigned>, String> {
        let mut out: Vec<Assigned> = Vec::with_capacity(ask.reserved_ports.len() + ask.dynamic_ports.len());
        for (index, port) in ask.reserved_ports.iter().enumerate() {
            let p = valid_port(port.value)?;
            if !port.ignore_collision {
                // Held by the node or an allocation, or asked twice strictly by this network.
                let asked_before = out.iter().any(|a| {
                    a.value == p
                        && !ask
                            .reserved_ports
                            .get(a.index)
                            .is_some_and(|q| q.ignore_collision)
                });
                if self.strictly_held(p) || asked_before {
                    return Err(collision(p));
                }
            }
            out.push(Assigned {
                dynamic: false,
                index,
                value: p,
                host_ip: self.host_ip(&port.host_network)?,
            });
        }
        for (index, port) in ask.dynamic_ports.iter().enumerate() {
            let host_ip = self.host_ip(&port.host_network)?;
            let p = self
                .pick_dynamic(&out, rng)
                .ok_or_else(|| "dynamic port selection failed".to_string())?;
            out.push(Assigned {
                dynamic: true,
                index,
                value: p,
                host_ip,
            });
        }
        for a in &out {
            let ignore = !a.dynamic
                && ask
                    .reserved_ports
                    .get(a.index)
                    .is_some_and(|p| p.ignore_collision);
            if ignore {
                insert_sorted(&mut self.loose, a.value);
            } else {
                insert_sorted(&mut self.strict, a.value);
            }
        }
        Ok(out)
    }

    /// The offered network: the ask with the node's address and the ports' values filled in.
    fn offer(&self, ask: &NetworkResource, assigned: &[Assigned]) -> NetworkResource {
        let mut offer = ask.clone();
        offer.ip.clone_from(&self.node.ip);
        if offer.device.is_empty() {
            offer.device.clone_from(&self.node.device);
        }
        if offer.cidr.is_empty() {
            offer.cidr.clone_from(&self.node.cidr);
        }
        for a in assigned {
            let list = if a.dynamic {
                &mut offer.dynamic_ports
            } else {
                &mut offer.reserved_ports
            };
            if let Some(p) = list.get_mut(a.index) {
                p.value = i64::from(a.value);
            }
        }
        offer
    }

    /// Assigns the group network's ports: static ports must be free (unless ignore_collision);
    /// dynamic ports picked from [min_dynamic_port, max_dynamic_port] (defaults 20000–32000 when
    /// 0), 20 random tries each, then an exhaustive scan of free ports (random start); never a
    /// port used by the node, another alloc, or another port of this same ask. Returns the
    /// allocated network (ports filled, IP = the node's first network address or ""), and the
    /// AllocatedPortMapping list (label, value, to (to = -1 → value; 0 stays 0), host_ip), static
    /// ports first. The assigned ports are recorded in the index; nothing is recorded on Err.
    pub fn assign_group_network(
        &mut self,
        ask: &NetworkResource,
        rng: &mut Rng,
    ) -> Result<(NetworkResource, Vec<AllocatedPortMapping>), String> {
        let assigned = self.assign_ports(ask, rng)?;
        let offer = self.offer(ask, &assigned);
        let mappings = assigned
            .into_iter()
            .filter_map(|a| {
                let list: &[Port] = if a.dynamic {
                    &ask.dynamic_ports
                } else {
                    &ask.reserved_ports
                };
                let port = list.get(a.index)?;
                let value = i64::from(a.value);
                Some(AllocatedPortMapping {
                    label: port.label.clone(),
                    value,
                    to: if port.to == -1 { value } else { port.to },
                    host_ip: a.host_ip,
                    ignore_collision: port.ignore_collision,
                })
            })
            .collect();
        Ok((offer, mappings))
    }

    /// Same for a legacy task-level network; returns the offered NetworkResource.
    pub fn assign_task_network(
        &mut self,
        ask: &NetworkResource,
        rng: &mut Rng,
    ) -> Result<NetworkResource, String> {
        let assigned = self.assign_ports(ask, rng)?;
        Ok(self.offer(ask, &assigned))
    }
}

// ---------------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------------

/// Does a requested device name match a device group? Forms: "type", "vendor/type",
/// "vendor/type/name" (the name part may itself contain '/').
pub fn device_name_matches(request: &str, vendor: &str, device_type: &str, name: &str) -> bool {
    let mut parts = request.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), None, None) => t == device_type,
        (Some(v), Some(t), None) => v == vendor && t == device_type,
        (Some(v), Some(t), Some(n)) => v == vendor && t == device_type && n == name,
        _ => false,
    }
}

/// Hands out device instances on one node.
#[derive(Debug, Clone)]
pub struct DeviceAllocator {
    groups: Vec<(NodeDeviceResource, Vec<bool>)>,
}

impl DeviceAllocator {
    /// Instances used by non-client-terminal allocations are taken (the same allocations
    /// [`allocs_fit`] counts); unhealthy instances are never handed out.
    pub fn new(node: &Node, allocs: &[&Allocation]) -> DeviceAllocator {
        let mut groups: Vec<(NodeDeviceResource, Vec<bool>)> = node
            .node_resources
            .as_ref()
            .map(|r| {
                r.devices
                    .iter()
                    .map(|g| (g.clone(), g.instances.iter().map(|i| i.healthy).collect()))
                    .collect()
            })
            .unwrap_or_default();
        for a in allocs.iter().filter(|a| !a.client_terminal()) {
            let Some(ar) = &a.allocated_resources else {
                continue;
            };
            for d in ar.tasks.values().flat_map(|t| t.devices.iter()) {
                let Some((g, free)) = groups.iter_mut().find(|(g, _)| {
                    g.vendor == d.vendor && g.device_type == d.device_type && g.name == d.name
                }) else {
                    continue;
                };
                for id in &d.device_ids {
                    if let Some(i) = g.instances.iter().position(|inst| inst.id == *id)
                        && let Some(slot) = free.get_mut(i)
                    {
                        *slot = false;
                    }
                }
            }
        }
        DeviceAllocator { groups }
    }

    /// Picks `count` (at least 1) healthy free instances of the first matching device group
    /// (match rule: request name is "type", "vendor/type" or "vendor/type/name"); constraints on
    /// devices are checked by the caller beforehand. None if not enough.
    pub fn assign(&mut self, req: &RequestedDevice) -> Option<AllocatedDeviceResource> {
        self.assign_where(req, |_| true)
    }

    /// Like [`DeviceAllocator::assign`], but only groups `accept` approves are considered (for
    /// callers that evaluate device constraints per group).
    pub fn assign_where(
        &mut self,
        req: &RequestedDevice,
        accept: impl Fn(&NodeDeviceResource) -> bool,
    ) -> Option<AllocatedDeviceResource> {
        let count = usize::try_from(req.count.max(1)).unwrap_or(1);
        for (g, free) in &mut self.groups {
            if !device_name_matches(&req.name, &g.vendor, &g.device_type, &g.name) || !accept(g) {
                continue;
            }
            let available = free.iter().filter(|f| **f).count();
            if available < count {
                continue;
            }
            let mut ids = Vec::with_capacity(count);
            for (i, slot) in free.iter_mut().enumerate() {
                if ids.len() == count {
                    break;
                }
                if *slot && let Some(inst) = g.instances.get(i) {
                    *slot = false;
                    ids.push(inst.id.clone());
                }
            }
            return Some(AllocatedDeviceResource {
                vendor: g.vendor.clone(),
                device_type: g.device_type.clone(),
                name: g.name.clone(),
                device_ids: ids,
            });
        }
        None
    }

    /// Free healthy instances of groups matching `request`.
    pub fn available(&self, request: &str) -> usize {
        self.groups
            .iter()
            .filter(|(g, _)| device_name_matches(request, &g.vendor, &g.device_type, &g.name))
            .map(|(_, free)| free.iter().filter(|f| **f).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use drover_types::Job;
    use drover_types::alloc::{
        AllocatedCpuResources, AllocatedMemoryResources, AllocatedResources, AllocatedSharedResources,
        AllocatedTaskResources, client_status,
    };
    use drover_types::job::{EphemeralDisk, Resources, Task};
    use drover_types::node::{
        NodeCpuResources, NodeDevice, NodeDiskResources, NodeMemoryResources, NodeReservedCpu,
        NodeReservedNetwork, NodeReservedResources, NodeResources,
    };

    use super::*;

    fn node(cpu: i64, mem: i64, disk: i64) -> Node {
        Node {
            id: "n1".into(),
            node_resources: Some(NodeResources {
                cpu: NodeCpuResources {
                    cpu_shares: cpu,
                    total_cpu_cores: 4,
                    reservable_cpu_cores: vec![0, 1, 2, 3],
                },
                memory: NodeMemoryResources { memory_mb: mem },
                disk: NodeDiskResources { disk_mb: disk },
                networks: vec![NetworkResource {
                    ip: "10.0.0.5".into(),
                    device: "eth0".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn alloc(id: &str, cpu: i64, mem: i64, disk: i64) -> Allocation {
        let mut tasks = BTreeMap::new();
        tasks.insert(
            "web".to_string(),
            AllocatedTaskResources {
                cpu: AllocatedCpuResources {
                    cpu_shares: cpu,
                    reserved_cores: vec![],
                },
                memory: AllocatedMemoryResources {
                    memory_mb: mem,
                    memory_max_mb: 0,
                },
                ..Default::default()
            },
        );
        Allocation {
            id: id.into(),
            job_id: format!("job-{id}"),
            namespace: "default".into(),
            task_group: "g".into(),
            client_status: client_status::RUNNING.into(),
            desired_status: "run".into(),
            allocated_resources: Some(AllocatedResources {
                tasks,
                shared: AllocatedSharedResources {
                    disk_mb: disk,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with_ports(mut a: Allocation, ports: &[(i64, bool)]) -> Allocation {
        if let Some(ar) = a.allocated_resources.as_mut() {
            ar.shared.ports = ports
                .iter()
                .map(|&(value, ignore_collision)| AllocatedPortMapping {
                    label: format!("p{value}"),
                    value,
                    ignore_collision,
                    ..Default::default()
                })
                .collect();
        }
        a
    }

    fn with_cores(mut a: Allocation, cores: &[i64]) -> Allocation {
        if let Some(t) = a
            .allocated_resources
            .as_mut()
            .and_then(|ar| ar.tasks.get_mut("web"))
        {
            t.cpu.reserved_cores = cores.to_vec();
        }
        a
    }

    fn reserve(n: &mut Node, cpu: i64, mem: i64, disk: i64, cores: &[i64], ports: &str) {
        n.reserved_resources = Some(NodeReservedResources {
            cpu: NodeReservedCpu {
                cpu_shares: cpu,
                reserved_cpu_cores: cores.to_vec(),
            },
            memory: NodeMemoryResources { memory_mb: mem },
            disk: NodeDiskResources { disk_mb: disk },
            networks: NodeReservedNetwork {
                reserved_host_ports: ports.into(),
            },
        });
    }

    fn dyn_ask(n: usize) -> NetworkResource {
        NetworkResource {
            mode: "host".into(),
            dynamic_ports: (0..n)
                .map(|i| Port {
                    label: format!("d{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn static_ask(value: i64, ignore: bool) -> NetworkResource {
        NetworkResource {
            reserved_ports: vec![Port {
                label: "http".into(),
                value,
                ignore_collision: ignore,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn capacity_minus_reserved() {
        let mut n = node(4000, 8192, 10_000);
        reserve(&mut n, 500, 1024, 2000, &[3], "22");
        assert_eq!(
            node_capacity(&n),
            Comparable {
                cpu: 3500,
                cores: 3,
                memory_mb: 7168,
                memory_max_mb: 0,
                disk_mb: 8000
            }
        );
        // Reserved cores outside the reservable set do not reduce the count.
        reserve(&mut n, 0, 0, 0, &[9], "");
        assert_eq!(node_capacity(&n).cores, 4);
        // No node resources at all: nothing fits.
        assert_eq!(node_capacity(&Node::default()), Comparable::default());
    }

    #[test]
    fn comparable_arith_saturates_and_superset_names_dimension() {
        let mut a = Comparable {
            cpu: i64::MAX,
            ..Default::default()
        };
        a.add(&Comparable {
            cpu: 5,
            ..Default::default()
        });
        assert_eq!(a.cpu, i64::MAX);
        let big = Comparable {
            cpu: 10,
            cores: 2,
            memory_mb: 10,
            memory_max_mb: 0,
            disk_mb: 10,
        };
        assert_eq!(big.superset(&big), None);
        assert_eq!(big.superset(&Comparable { cpu: 11, ..big }), Some("cpu"));
        assert_eq!(big.superset(&Comparable { cores: 3, ..big }), Some("cores"));
        assert_eq!(big.superset(&Comparable { memory_mb: 11, ..big }), Some("memory"));
        assert_eq!(big.superset(&Comparable { disk_mb: 11, ..big }), Some("disk"));
        assert_eq!(
            big.superset(&Comparable {
                memory_max_mb: 99,
                ..big
            }),
            None
        );
    }

    #[test]
    fn exhaustion_names_the_dimension() {
        let n = node(1000, 1000, 1000);
        let ok = alloc("a", 500, 500, 500);
        assert_eq!(
            allocs_fit(&n, &[&ok], false),
            Ok(Comparable {
                cpu: 500,
                cores: 0,
                memory_mb: 500,
                memory_max_mb: 0,
                disk_mb: 500
            })
        );
        let cpu = alloc("b", 600, 100, 100);
        assert_eq!(allocs_fit(&n, &[&ok, &cpu], false), Err(Misfit::Resource("cpu")));
        let mem = alloc("c", 100, 600, 100);
        assert_eq!(
            allocs_fit(&n, &[&ok, &mem], false),
            Err(Misfit::Resource("memory"))
        );
        let disk = alloc("d", 100, 100, 600);
        assert_eq!(
            allocs_fit(&n, &[&ok, &disk], false),
            Err(Misfit::Resource("disk"))
        );
        assert_eq!(Misfit::Resource("disk").dimension(), "disk");
    }

    #[test]
    fn cores_overlap_and_count() {
        let mut n = node(4000, 4000, 4000);
        let a = with_cores(alloc("a", 100, 100, 0), &[0, 1]);
        let b = with_cores(alloc("b", 100, 100, 0), &[1]);
        assert_eq!(allocs_fit(&n, &[&a, &b], false), Err(Misfit::Cores));
        assert_eq!(Misfit::Cores.dimension(), "cores");
        let c = with_cores(alloc("c", 100, 100, 0), &[2, 3]);
        assert_eq!(allocs_fit(&n, &[&a, &c], false).map(|u| u.cores), Ok(4));
        // Core 3 withheld by the operator: holding it is a misfit.
        reserve(&mut n, 0, 0, 0, &[3], "");
        assert_eq!(allocs_fit(&n, &[&a, &c], false), Err(Misfit::Cores));
        // Count exhaustion without ids (fallback usage from a job's ask).
        let mut job = Job::default();
        job.task_groups.push(TaskGroup {
            name: "g".into(),
            tasks: vec![Task {
                name: "t".into(),
                resources: Some(Resources {
                    cpu: 0,
                    cores: 4,
                    memory_mb: 10,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut d = alloc("d", 0, 0, 0);
        d.allocated_resources = None;
        d.job = Some(Arc::new(job));
        assert_eq!(allocs_fit(&n, &[&d], false), Err(Misfit::Resource("cores")));
    }

    #[test]
    fn max_allocs() {
        let mut n = node(1000, 1000, 1000);
        n.node_max_allocs = 2;
        let (a, b, c) = (alloc("a", 1, 1, 1), alloc("b", 1, 1, 1), alloc("c", 1, 1, 1));
        assert!(allocs_fit(&n, &[&a, &b], false).is_ok());
        assert_eq!(allocs_fit(&n, &[&a, &b, &c], false), Err(Misfit::MaxAllocs));
        assert_eq!(Misfit::MaxAllocs.dimension(), "max allocs");
        let mut done = c.clone();
        done.client_status = client_status::COMPLETE.into();
        assert!(allocs_fit(&n, &[&a, &b, &done], false).is_ok());
    }

    #[test]
    fn client_terminal_allocs_are_ignored() {
        let n = node(1000, 1000, 1000);
        let a = alloc("a", 800, 800, 800);
        for status in [
            client_status::COMPLETE,
            client_status::FAILED,
            client_status::LOST,
        ] {
            let mut b = with_ports(alloc("b", 800, 800, 800), &[(8080, false)]);
            b.client_status = status.into();
            let a2 = with_ports(a.clone(), &[(8080, false)]);
            assert_eq!(allocs_fit(&n, &[&a2, &b], true).map(|u| u.cpu), Ok(800));
            let mut idx = NetworkIndex::new(&n);
            assert!(idx.add_allocs(&[&a2, &b]).is_ok());
        }
        // Desired-stop but still running on the client: still counted.
        let mut s = alloc("s", 800, 800, 800);
        s.desired_status = "stop".into();
        assert_eq!(allocs_fit(&n, &[&a, &s], false), Err(Misfit::Resource("cpu")));
    }

    #[test]
    fn port_collisions_between_allocs_and_with_node() {
        let mut n = node(4000, 4000, 4000);
        reserve(&mut n, 0, 0, 0, &[], "22,8500-8600");
        let a = with_ports(alloc("a", 1, 1, 0), &[(8080, false)]);
        let b = with_ports(alloc("b", 1, 1, 0), &[(8080, false)]);
        let err = allocs_fit(&n, &[&a, &b], false).unwrap_err();
        assert_eq!(err, Misfit::Ports("reserved port collision 8080".into()));
        assert_eq!(err.dimension(), "network: reserved port collision 8080");
        assert_eq!(
            NetworkIndex::new(&n).add_allocs(&[&a, &b]),
            Err("reserved port collision 8080".into())
        );
        // Against the node's reserved ports.
        let c = with_ports(alloc("c", 1, 1, 0), &[(8555, false)]);
        assert_eq!(
            allocs_fit(&n, &[&c], false),
            Err(Misfit::Ports("reserved port collision 8555".into()))
        );
        assert!(NetworkIndex::new(&n).add_allocs(&[&c]).is_err());
        // Invalid port values.
        let bad = with_ports(alloc("x", 1, 1, 0), &[(70000, false)]);
        assert_eq!(
            allocs_fit(&n, &[&bad], false),
            Err(Misfit::Ports("invalid port 70000".into()))
        );
        // Static ask against the node's reserved port and an alloc's port.
        let mut idx = NetworkIndex::new(&n);
        idx.add_allocs(&[&a]).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = Rng::new(1);
        assert_eq!(
            idx.assign_group_network(&static_ask(22, false), &mut rng)
                .unwrap_err(),
            "reserved port collision 22"
        );
        assert!(
            idx.assign_group_network(&static_ask(8080, false), &mut rng)
                .is_err()
        );
        assert!(
            idx.assign_group_network(&static_ask(9090, false), &mut rng)
                .is_ok()
        );
        // ...and now 9090 is taken in the index.
        assert!(
            idx.assign_group_network(&static_ask(9090, false), &mut rng)
                .is_err()
        );
    }

    #[test]
    fn ignore_collision_is_honoured_in_both_directions() {
        let mut n = node(4000, 4000, 4000);
        reserve(&mut n, 0, 0, 0, &[], "22");
        let strict = with_ports(alloc("a", 1, 1, 0), &[(8080, false)]);
        let loose = with_ports(alloc("b", 1, 1, 0), &[(8080, true)]);
        let loose2 = with_ports(alloc("c", 1, 1, 0), &[(8080, true), (22, true)]);
        // Order does not matter.
        assert!(allocs_fit(&n, &[&strict, &loose, &loose2], false).is_ok());
        assert!(allocs_fit(&n, &[&loose, &loose2, &strict], false).is_ok());
        let mut idx = NetworkIndex::new(&n);
        assert!(idx.add_allocs(&[&loose, &loose2, &strict]).is_ok());
        let mut rng = Rng::new(3);
        let (offer, maps) = idx
            .assign_group_network(&static_ask(8080, true), &mut rng)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(offer.reserved_ports[0].value, 8080);
        assert!(maps[0].ignore_collision);
        assert!(idx.assign_group_network(&static_ask(22, true), &mut rng).is_ok());
        // The placement built from that offer passes the shared check.
        let placed = with_ports(alloc("d", 1, 1, 0), &[(8080, true), (22, true)]);
        assert!(allocs_fit(&n, &[&strict, &loose, &placed], false).is_ok());
        // Dynamic picks avoid loosely held ports too.
        assert!(idx.is_used(8080));
    }

    #[test]
    fn dynamic_ports_unique_in_range_and_deterministic() {
        let mut n = node(4000, 4000, 4000);
        if let Some(r) = n.node_resources.as_mut() {
            r.min_dynamic_port = 25000;
            r.max_dynamic_port = 27000;
        }
        reserve(&mut n, 0, 0, 0, &[], "25000-25100");
        let run = |seed: u64| -> Vec<i64> {
            let mut idx = NetworkIndex::new(&n);
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            for _ in 0..1000 {
                let (offer, maps) = idx
                    .assign_group_network(&dyn_ask(1), &mut rng)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(offer.dynamic_ports[0].value, maps[0].value);
                out.push(maps[0].value);
            }
            out
        };
        let ports = run(42);
        assert!(
            ports.iter().all(|&p| (25101..=27000).contains(&p)),
            "out of range"
        );
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000, "duplicates");
        assert_eq!(run(42), ports);
        assert_ne!(run(43), ports);
    }

    #[test]
    fn dynamic_default_range_and_unique_within_one_ask() {
        let n = node(4000, 4000, 4000);
        let mut idx = NetworkIndex::new(&n);
        let mut rng = Rng::new(9);
        let (offer, maps) = idx
            .assign_group_network(&dyn_ask(50), &mut rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut v: Vec<i64> = maps.iter().map(|m| m.value).collect();
        assert!(v.iter().all(|p| (20000..=32000).contains(p)));
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 50);
        assert_eq!(offer.ip, "10.0.0.5");
        assert_eq!(offer.device, "eth0");
        assert!(maps.iter().all(|m| m.host_ip == "10.0.0.5"));
    }

    #[test]
    fn exhaustive_fallback_with_few_free_ports() {
        let mut n = node(4000, 4000, 4000);
        if let Some(r) = n.node_resources.as_mut() {
            r.min_dynamic_port = 30000;
            r.max_dynamic_port = 30004;
        }
        let used = with_ports(
            alloc("a", 1, 1, 0),
            &[(30000, false), (30001, false), (30003, false)],
        );
        let loose = with_ports(alloc("b", 1, 1, 0), &[(30004, true)]);
        for seed in 0..50 {
            let mut idx = NetworkIndex::new(&n);
            idx.add_allocs(&[&used, &loose]).unwrap_or_else(|e| panic!("{e}"));
            let mut rng = Rng::new(seed);
            let (_, maps) = idx
                .assign_group_network(&dyn_ask(1), &mut rng)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(maps[0].value, 30002);
            assert_eq!(
                idx.assign_group_network(&dyn_ask(1), &mut rng).unwrap_err(),
                "dynamic port selection failed"
            );
        }
        // Two ports asked, one free: fails and records nothing.
        let mut idx = NetworkIndex::new(&n);
        idx.add_allocs(&[&used, &loose]).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = Rng::new(1);
        assert!(idx.assign_group_network(&dyn_ask(2), &mut rng).is_err());
        assert!(!idx.is_used(30002));
    }

    #[test]
    fn to_mapping_and_host_networks() {
        let mut n = node(4000, 4000, 4000);
        if let Some(r) = n.node_resources.as_mut() {
            r.node_networks = vec![serde_json::json!({
                "Mode": "host",
                "Addresses": [
                    {"Alias": "default", "Address": "10.0.0.5", "ReservedPorts": ""},
                    {"Alias": "public", "Address": "203.0.113.7", "ReservedPorts": "443"}
                ]
            })];
        }
        let ask = NetworkResource {
            mode: "bridge".into(),
            reserved_ports: vec![Port {
                label: "a".into(),
                value: 8080,
                to: -1,
                ..Default::default()
            }],
            dynamic_ports: vec![
                Port {
                    label: "b".into(),
                    to: 0,
                    ..Default::default()
                },
                Port {
                    label: "c".into(),
                    to: 9000,
                    host_network: "public".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut idx = NetworkIndex::new(&n);
        let mut rng = Rng::new(5);
        let (offer, maps) = idx
            .assign_group_network(&ask, &mut rng)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(offer.mode, "bridge");
        assert_eq!(maps.len(), 3);
        assert_eq!(
            (maps[0].label.as_str(), maps[0].value, maps[0].to),
            ("a", 8080, 8080)
        );
        assert_eq!(maps[1].to, 0);
        assert_eq!(maps[2].to, 9000);
        assert_eq!(maps[2].host_ip, "203.0.113.7");
        assert_eq!(maps[0].host_ip, "10.0.0.5");
        // Host-network reserved ports are reserved node-wide.
        assert!(
            idx.assign_group_network(&static_ask(443, false), &mut rng)
                .is_err()
        );
        let unknown = NetworkResource {
            dynamic_ports: vec![Port {
                label: "x".into(),
                host_network: "nope".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(idx.assign_group_network(&unknown, &mut rng).is_err());
        // Legacy task network.
        let t = idx
            .assign_task_network(&dyn_ask(2), &mut rng)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(t.dynamic_ports.iter().all(|p| p.value >= 20000));
        assert_eq!(t.ip, "10.0.0.5");
    }

    #[test]
    fn parse_port_list_ignores_bad_pieces() {
        assert_eq!(
            parse_port_list("22, 80,8500-8502"),
            vec![22, 80, 8500, 8501, 8502]
        );
        assert_eq!(parse_port_list("x,0,70000,10-5,5-6,6,,  "), vec![5, 6]);
        assert!(parse_port_list("").is_empty());
    }

    fn gpu_node() -> Node {
        let mut n = node(4000, 4000, 4000);
        let inst = |id: &str, healthy: bool| NodeDevice {
            id: id.into(),
            healthy,
            ..Default::default()
        };
        if let Some(r) = n.node_resources.as_mut() {
            r.devices = vec![
                NodeDeviceResource {
                    vendor: "nvidia".into(),
                    device_type: "gpu".into(),
                    name: "1080ti".into(),
                    instances: vec![inst("g0", true), inst("g1", false), inst("g2", true)],
                    ..Default::default()
                },
                NodeDeviceResource {
                    vendor: "intel".into(),
                    device_type: "fpga".into(),
                    name: "arria".into(),
                    instances: vec![inst("f0", true)],
                    ..Default::default()
                },
            ];
        }
        n
    }

    fn req(name: &str, count: i64) -> RequestedDevice {
        RequestedDevice {
            name: name.into(),
            count,
            ..Default::default()
        }
    }

    fn with_device(mut a: Allocation, d: AllocatedDeviceResource) -> Allocation {
        if let Some(t) = a
            .allocated_resources
            .as_mut()
            .and_then(|ar| ar.tasks.get_mut("web"))
        {
            t.devices.push(d);
        }
        a
    }

    #[test]
    fn devices_handed_out_once_unhealthy_skipped() {
        let n = gpu_node();
        let mut da = DeviceAllocator::new(&n, &[]);
        assert_eq!(da.available("gpu"), 2);
        let d = da.assign(&req("gpu", 1)).unwrap_or_else(|| panic!("no gpu"));
        assert_eq!(d.device_ids, vec!["g0"]);
        let d2 = da
            .assign(&req("nvidia/gpu", 1))
            .unwrap_or_else(|| panic!("no gpu"));
        assert_eq!(d2.device_ids, vec!["g2"]);
        // g1 is unhealthy: nothing left.
        assert!(da.assign(&req("nvidia/gpu/1080ti", 1)).is_none());
        // An existing allocation holds g0.
        let holder = with_device(alloc("a", 1, 1, 0), d.clone());
        let mut da = DeviceAllocator::new(&n, &[&holder]);
        assert!(da.assign(&req("gpu", 2)).is_none());
        assert_eq!(
            da.assign(&req("gpu", 1)).map(|d| d.device_ids),
            Some(vec!["g2".to_string()])
        );
        // A terminal holder frees it.
        let mut gone = holder.clone();
        gone.client_status = client_status::FAILED.into();
        let mut da = DeviceAllocator::new(&n, &[&gone]);
        assert_eq!(da.assign(&req("gpu", 2)).map(|d| d.device_ids.len()), Some(2));
    }

    #[test]
    fn device_name_forms() {
        let n = gpu_node();
        let mut da = DeviceAllocator::new(&n, &[]);
        assert!(da.assign(&req("amd/gpu", 1)).is_none());
        assert!(da.assign(&req("nvidia/gpu/titan", 1)).is_none());
        assert!(
            da.assign(&req("fpga", 1))
                .is_some_and(|d| d.vendor == "intel" && d.name == "arria")
        );
        assert!(device_name_matches("gpu", "nvidia", "gpu", "1080ti"));
        assert!(device_name_matches("nvidia/gpu", "nvidia", "gpu", "1080ti"));
        assert!(device_name_matches(
            "nvidia/gpu/1080ti",
            "nvidia",
            "gpu",
            "1080ti"
        ));
        assert!(!device_name_matches(
            "nvidia/gpu/1080ti/x",
            "nvidia",
            "gpu",
            "1080ti"
        ));
        assert!(!device_name_matches("", "nvidia", "gpu", "1080ti"));
        let mut da = DeviceAllocator::new(&n, &[]);
        assert!(da.assign_where(&req("gpu", 1), |g| g.name == "other").is_none());
    }

    #[test]
    fn allocs_fit_checks_devices() {
        let n = gpu_node();
        let dev = |ids: &[&str]| AllocatedDeviceResource {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "1080ti".into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
        };
        let a = with_device(alloc("a", 1, 1, 0), dev(&["g0"]));
        let b = with_device(alloc("b", 1, 1, 0), dev(&["g0"]));
        assert_eq!(
            allocs_fit(&n, &[&a, &b], true),
            Err(Misfit::Devices("nvidia/gpu/1080ti".into()))
        );
        assert!(allocs_fit(&n, &[&a, &b], false).is_ok());
        // A new placement on an unhealthy or unknown instance is rejected...
        let sick = with_device(alloc("c", 1, 1, 0), dev(&["g1"]));
        assert!(allocs_fit(&n, &[&sick], true).is_err());
        let ghost = with_device(alloc("c", 1, 1, 0), dev(&["zz"]));
        assert!(allocs_fit(&n, &[&ghost], true).is_err());
        // ...but a committed one whose device went bad does not poison the node.
        let mut old = sick.clone();
        old.create_index = 7;
        assert!(allocs_fit(&n, &[&old, &a], true).is_ok());
        assert_eq!(
            Misfit::Devices("nvidia/gpu".into()).dimension(),
            "devices: nvidia/gpu"
        );
    }

    #[test]
    fn group_ask_sums_tasks_and_lifecycles() {
        let task = |name: &str, cpu: i64, mem: i64, hook: Option<(&str, bool)>| Task {
            name: name.into(),
            lifecycle: hook.map(|(h, s)| TaskLifecycle {
                hook: h.into(),
                sidecar: s,
            }),
            resources: Some(Resources {
                cpu,
                memory_mb: mem,
                memory_max_mb: mem * 2,
                secrets_mb: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tg = TaskGroup {
            name: "g".into(),
            tasks: vec![task("a", 100, 100, None), task("b", 200, 50, None)],
            ephemeral_disk: Some(EphemeralDisk {
                size_mb: 300,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            group_ask(&tg, false),
            Comparable {
                cpu: 300,
                cores: 0,
                memory_mb: 170,
                memory_max_mb: 0,
                disk_mb: 300
            }
        );
        assert_eq!(group_ask(&tg, true).memory_max_mb, 300);
        // An init task bigger than the mains counts once, as the max; a sidecar adds up.
        let mut tg2 = tg.clone();
        tg2.tasks.push(task("init", 1000, 20, Some(("prestart", false))));
        tg2.tasks.push(task("side", 10, 10, Some(("prestart", true))));
        assert_eq!(group_ask(&tg2, false).cpu, 1010);
        assert_eq!(group_ask(&tg2, false).memory_mb, 170 + 20);
        // UNSET cpu counts as Nomad's default 100.
        let mut tg3 = tg.clone();
        if let Some(r) = tg3.tasks[0].resources.as_mut() {
            r.cpu = UNSET;
        }
        assert_eq!(group_ask(&tg3, false).cpu, 300);
        // alloc_usage of a job-only alloc agrees with group_ask.
        let mut job = Job::default();
        job.task_groups.push(tg2.clone());
        let mut a = alloc("a", 0, 0, 0);
        a.allocated_resources = None;
        a.job = Some(Arc::new(job.clone()));
        assert_eq!(alloc_usage(&a), group_ask(&tg2, false));
        // With allocated resources but no recorded lifecycles, the job's lifecycles are used.
        let mut tasks = BTreeMap::new();
        for t in &tg2.tasks {
            let r = t.resources.clone().unwrap_or_default();
            tasks.insert(
                t.name.clone(),
                AllocatedTaskResources {
                    cpu: AllocatedCpuResources {
                        cpu_shares: r.cpu,
                        reserved_cores: vec![],
                    },
                    memory: AllocatedMemoryResources {
                        memory_mb: r.memory_mb + 10,
                        memory_max_mb: 0,
                    },
                    ..Default::default()
                },
            );
        }
        a.allocated_resources = Some(AllocatedResources {
            tasks,
            shared: AllocatedSharedResources {
                disk_mb: 300,
                ..Default::default()
            },
            ..Default::default()
        });
        assert_eq!(alloc_usage(&a), group_ask(&tg2, false));
    }

    #[test]
    fn no_panics_on_odd_input() {
        let mut n = node(-5, i64::MIN, i64::MAX);
        if let Some(r) = n.node_resources.as_mut() {
            r.min_dynamic_port = 70000;
            r.max_dynamic_port = -3;
        }
        reserve(&mut n, i64::MAX, i64::MAX, i64::MIN, &[-1, 99], "65535,1-65535");
        let a = with_ports(
            alloc("a", i64::MAX, i64::MAX, i64::MAX),
            &[(-1, false), (0, false)],
        );
        let _ = allocs_fit(&n, &[&a, &a], true);
        let mut idx = NetworkIndex::new(&n);
        let _ = idx.add_allocs(&[&a]);
        let mut rng = Rng::new(0);
        assert!(idx.assign_group_network(&dyn_ask(1), &mut rng).is_err());
        let mut da = DeviceAllocator::new(&n, &[&a]);
        assert!(da.assign(&req("gpu", i64::MAX)).is_none());
    }
}
