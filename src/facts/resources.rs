//! CPU, memory and disk, and whether they are enough for the role.
use crate::config::Role;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub cpus: usize,
    pub memory_mib: u64,
    /// Free space where container images and volumes live (/var/lib/containers, or the file system holding it).
    pub disk_free_gib: u64,
}

/// Minimums per role (cpus, memory MiB, free disk GiB). The app images alone take ~3 GiB; the data
/// host keeps PostgreSQL and recordings.
pub fn minimum(role: Role) -> (usize, u64, u64) {
    match role {
        Role::Aio => (2, 4096, 20),
        Role::Data => (2, 4096, 20),
        Role::Voice => (2, 2048, 10),
        Role::App => (2, 4096, 15),
    }
}

pub fn warnings(r: &Resources, role: Role) -> Vec<String> {
    let (cpus, mem, disk) = minimum(role);
    let mut w = Vec::new();
    if r.cpus < cpus {
        w.push(format!(
            "{} CPU(s) is below the {cpus} a {} host needs",
            r.cpus,
            role.as_str()
        ));
    }
    if r.memory_mib < mem {
        w.push(format!(
            "{} MiB of memory is below the {mem} MiB a {} host needs",
            r.memory_mib,
            role.as_str()
        ));
    }
    if r.disk_free_gib < disk {
        w.push(format!(
            "{} GiB free for containers is below the {disk} GiB a {} host needs",
            r.disk_free_gib,
            role.as_str()
        ));
    }
    w
}

/// Live resources. A fixture root reports its /proc/meminfo and /proc/cpuinfo instead, and no disk figure.
pub fn read(root: &Path) -> Resources {
    if !crate::target::Target::from_root(root).is_live() {
        let mem_kib = std::fs::read_to_string(root.join("proc/meminfo"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0);
        let cpus = std::fs::read_to_string(root.join("proc/cpuinfo"))
            .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
            .unwrap_or(0);
        return Resources {
            cpus,
            memory_mib: mem_kib / 1024,
            disk_free_gib: 0,
        };
    }
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let disks = sysinfo::Disks::new_with_refreshed_list();
    let target = Path::new("/var/lib/containers");
    let disk_free = disks
        .list()
        .iter()
        .filter(|d| target.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| d.available_space())
        .unwrap_or(0);
    Resources {
        cpus,
        memory_mib: sys.total_memory() / (1024 * 1024),
        disk_free_gib: disk_free / (1024 * 1024 * 1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_below_minimum_only() {
        let big = Resources {
            cpus: 8,
            memory_mib: 16384,
            disk_free_gib: 100,
        };
        assert!(warnings(&big, Role::Aio).is_empty());
        let small = Resources {
            cpus: 1,
            memory_mib: 1024,
            disk_free_gib: 5,
        };
        let w = warnings(&small, Role::Voice);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[1].contains("2048 MiB"));
    }
}
