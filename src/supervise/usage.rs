//! Memory and CPU of the processes `status` lists (sysinfo, from /proc): resident set size and CPU time used since
//! the process started — cumulative, so one snapshot is meaningful without sampling twice.

use std::collections::BTreeMap;

use serde::Serialize;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub rss_bytes: u64,
    pub cpu_ms: u64,
}

/// The usage of each of `pids` that still exists (none when /proc cannot be read).
pub fn measure(pids: &[u32]) -> BTreeMap<u32, Usage> {
    let wanted: Vec<Pid> = pids.iter().map(|p| Pid::from_u32(*p)).collect();
    let Ok(mut system) = System::new() else { return BTreeMap::new() };
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&wanted), true, ProcessRefreshKind::nothing().with_memory().with_cpu());
    pids.iter()
        .filter_map(|pid| system.process(Pid::from_u32(*pid)).map(|p| (*pid, Usage { rss_bytes: p.memory(), cpu_ms: p.accumulated_cpu_time() })))
        .collect()
}

/// The children of `parent` (nginx's workers under its master).
pub fn children(parent: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_a_gone_one_is_absent() {
        let me = std::process::id();
        let found = measure(&[me, u32::MAX - 1]);
        assert!(found.get(&me).is_some_and(|u| u.rss_bytes > 1024 * 1024), "{found:?}");
        assert!(!found.contains_key(&(u32::MAX - 1)));
    }
}
