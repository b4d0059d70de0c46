//! Test fixtures: `mock::node()`, `mock::job()` and friends, like Nomad's `nomad/mock` package.
//!
//! Every fixture is canonical (Nomad's defaults filled in) and valid, so tests change only what
//! they are about. IDs are deterministic (`mock::id(n)`) so recorded plans are stable.

pub mod mock {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use drover_types::alloc::{
        AllocatedResources, AllocatedSharedResources, AllocatedTaskResources, client_status, desired_status,
    };
    use drover_types::canonicalize::canonicalize_job;
    use drover_types::job::{NetworkResource, Port, Resources, Task, TaskGroup};
    use drover_types::node::{
        DriverInfo, NodeCpuResources, NodeDiskResources, NodeMemoryResources, NodeReservedCpu,
        NodeReservedResources, NodeResources, node_status,
    };
    use drover_types::{Allocation, Job, Node};

    /// A deterministic, random-looking version-4 UUID for `n` (distinct for distinct `n`):
    /// IDs in a real cluster are random, and tests and benchmarks should not get an unrealistic
    /// shared prefix.
    pub fn id(n: u64) -> String {
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let a = mix(n.wrapping_add(0x9E37_79B9_7F4A_7C15));
        // `{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}`, written without the formatting machinery
        // (benchmarks generate an ID per placement; the server's UUID encoder is as cheap).
        let mut out = [0u8; 36];
        let fields = [
            (0, 8, a >> 32),
            (9, 4, (a >> 16) & 0xffff),
            (15, 3, a & 0xfff),
            (20, 3, (n >> 48) & 0xfff),
            (24, 12, n & 0xffff_ffff_ffff),
        ];
        for (start, len, v) in fields {
            for i in 0..len {
                let digit = (v >> (4 * (len - 1 - i))) & 0xf;
                out[start + i] = b"0123456789abcdef"[digit as usize];
            }
        }
        for (at, c) in [
            (8, b'-'),
            (13, b'-'),
            (14, b'4'),
            (18, b'-'),
            (19, b'8'),
            (23, b'-'),
        ] {
            out[at] = c;
        }
        String::from_utf8(out.to_vec()).expect("hex digits and dashes are ASCII")
    }

    /// A ready linux node in dc1 with 4000 MHz, 8192 MB, 100 GB disk, raw_exec/exec/docker drivers.
    pub fn node(n: u64) -> Node {
        let mut attributes = BTreeMap::new();
        for (k, v) in [
            ("kernel.name", "linux"),
            ("os.name", "debian"),
            ("cpu.arch", "amd64"),
            ("nomad.version", "0.1.0"),
            ("driver.exec", "1"),
            ("driver.raw_exec", "1"),
            ("driver.docker", "1"),
            ("cpu.numcores", "4"),
        ] {
            attributes.insert(k.to_string(), v.to_string());
        }
        attributes.insert("unique.hostname".into(), format!("host-{n}"));
        attributes.insert(
            "unique.network.ip-address".into(),
            format!("10.0.{}.{}", n / 250, n % 250 + 1),
        );
        let mut drivers = BTreeMap::new();
        for d in ["exec", "raw_exec", "docker"] {
            drivers.insert(
                d.to_string(),
                DriverInfo {
                    detected: true,
                    healthy: true,
                    health_description: "Healthy".into(),
                    ..Default::default()
                },
            );
        }
        Node {
            id: id(n),
            secret_id: id(1_000_000 + n),
            datacenter: "dc1".into(),
            name: format!("node-{n}"),
            http_addr: format!("10.0.{}.{}:4646", n / 250, n % 250 + 1),
            attributes,
            node_resources: Some(NodeResources {
                cpu: NodeCpuResources {
                    cpu_shares: 4000,
                    total_cpu_cores: 4,
                    reservable_cpu_cores: vec![0, 1, 2, 3],
                },
                memory: NodeMemoryResources { memory_mb: 8192 },
                disk: NodeDiskResources { disk_mb: 100 * 1024 },
                networks: vec![NetworkResource {
                    mode: "host".into(),
                    device: "eth0".into(),
                    cidr: format!("10.0.{}.{}/32", n / 250, n % 250 + 1),
                    ip: format!("10.0.{}.{}", n / 250, n % 250 + 1),
                    mbits: 1000,
                    ..Default::default()
                }],
                min_dynamic_port: 20000,
                max_dynamic_port: 32000,
                ..Default::default()
            }),
            reserved_resources: Some(NodeReservedResources {
                cpu: NodeReservedCpu {
                    cpu_shares: 100,
                    ..Default::default()
                },
                memory: NodeMemoryResources { memory_mb: 256 },
                disk: NodeDiskResources { disk_mb: 4 * 1024 },
                ..Default::default()
            }),
            node_pool: "default".into(),
            computed_class: String::new(),
            scheduling_eligibility: "eligible".into(),
            status: node_status::READY.into(),
            drivers,
            create_index: 1,
            modify_index: 1,
            ..Default::default()
        }
    }

    fn task(name: &str, cpu: i64, memory_mb: i64) -> Task {
        let mut config = BTreeMap::new();
        config.insert(
            "command".to_string(),
            serde_json::Value::String("/bin/date".into()),
        );
        Task {
            name: name.into(),
            driver: "exec".into(),
            config,
            resources: Some(Resources {
                cpu,
                memory_mb,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A canonical one-group job of `job_type` with indexes at 99 (the shape every mock job
    /// shares).
    fn one_group_job(id: &str, job_type: &str, group: TaskGroup) -> Job {
        let mut j = Job {
            id: id.into(),
            job_type: job_type.into(),
            priority: 50,
            datacenters: vec!["dc1".into()],
            task_groups: vec![group],
            job_modify_index: 99,
            create_index: 99,
            modify_index: 99,
            ..Default::default()
        };
        canonicalize_job(&mut j);
        j
    }

    /// A canonical service job `web` (count 10, one `web` group, task `web` 500 MHz / 256 MB,
    /// one dynamic port `http`).
    pub fn job() -> Job {
        one_group_job(
            "web",
            "service",
            TaskGroup {
                name: "web".into(),
                count: 10,
                networks: vec![NetworkResource {
                    dynamic_ports: vec![Port {
                        label: "http".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                tasks: vec![task("web", 500, 256)],
                ..Default::default()
            },
        )
    }

    /// A canonical batch job `batch` (count 10, group `worker`, 500 MHz / 256 MB, no ports).
    pub fn batch_job() -> Job {
        one_group_job(
            "batch",
            "batch",
            TaskGroup {
                name: "worker".into(),
                count: 10,
                tasks: vec![task("worker", 500, 256)],
                ..Default::default()
            },
        )
    }

    /// A canonical system job `agent` (group `agent`, 100 MHz / 128 MB).
    pub fn system_job() -> Job {
        one_group_job(
            "agent",
            "system",
            TaskGroup {
                name: "agent".into(),
                count: 1,
                tasks: vec![task("agent", 100, 128)],
                ..Default::default()
            },
        )
    }

    /// A canonical sysbatch job `sweep`.
    pub fn sysbatch_job() -> Job {
        let mut j = system_job();
        j.id = "sweep".into();
        j.name = "sweep".into();
        j.job_type = "sysbatch".into();
        j.update = None;
        j.task_groups[0].update = None;
        j.task_groups[0].name = "sweep".into();
        j.task_groups[0].restart_policy = None;
        canonicalize_job(&mut j);
        j
    }

    /// A running allocation of `job`'s first group with index `index` on `node_id`, resources
    /// copied from the group's asks.
    pub fn alloc_for(job: &Arc<Job>, index: u64, node_id: &str, alloc_id: String) -> Allocation {
        let tg = &job.task_groups[0];
        let mut tasks = BTreeMap::new();
        for t in &tg.tasks {
            let r = t.resources.clone().unwrap_or_default();
            tasks.insert(
                t.name.clone(),
                AllocatedTaskResources {
                    cpu: drover_types::alloc::AllocatedCpuResources {
                        cpu_shares: r.cpu,
                        reserved_cores: Vec::new(),
                    },
                    memory: drover_types::alloc::AllocatedMemoryResources {
                        memory_mb: r.memory_mb,
                        memory_max_mb: 0,
                    },
                    ..Default::default()
                },
            );
        }
        Allocation {
            id: alloc_id,
            namespace: job.namespace.clone(),
            eval_id: id(500_000),
            name: drover_types::alloc::alloc_name(&job.id, &tg.name, index),
            node_id: node_id.into(),
            job_id: job.id.clone(),
            job: Some(job.clone()),
            task_group: tg.name.clone(),
            allocated_resources: Some(AllocatedResources {
                tasks,
                shared: AllocatedSharedResources {
                    disk_mb: tg.ephemeral_disk.as_ref().map(|d| d.size_mb).unwrap_or(300),
                    ..Default::default()
                },
                ..Default::default()
            }),
            desired_status: desired_status::RUN.into(),
            client_status: client_status::RUNNING.into(),
            create_index: 100,
            modify_index: 100,
            alloc_modify_index: 100,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mock;

    #[test]
    fn fixtures_are_valid() {
        for j in [
            mock::job(),
            mock::batch_job(),
            mock::system_job(),
            mock::sysbatch_job(),
        ] {
            drover_types::validate::validate_job(&j).unwrap_or_else(|e| panic!("{}: {e}", j.id));
        }
        assert!(mock::node(3).ready());
        assert_ne!(mock::id(1), mock::id(2));
        assert!(mock::id(255).ends_with("-8000-0000000000ff"));
        assert_eq!(mock::id(255).len(), 36);
    }

    #[test]
    fn ids_match_the_documented_format() {
        for n in [0u64, 1, 255, 1 << 48, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mix = |mut z: u64| {
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            };
            let a = mix(n.wrapping_add(0x9E37_79B9_7F4A_7C15));
            let expected = format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                (n >> 48) & 0xfff,
                n & 0xffff_ffff_ffff
            );
            assert_eq!(mock::id(n), expected, "n = {n}");
        }
    }
}
