//! Process-tree helpers from /proc: which pids descend from a pid, and whether a pid is still alive.

use std::collections::BTreeSet;

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields after the last ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Every live descendant of `root` (children, grandchildren, …).
pub fn descendants(root: u32) -> BTreeSet<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                .filter_map(|pid| parent_of(pid).map(|ppid| (pid, ppid)))
                .collect()
        })
        .unwrap_or_default();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid) in &all {
            if *ppid == parent && found.insert(*pid) {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Alive means it exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(state_of(pid), Some(s) if s != 'Z' && s != 'X')
}

pub fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}
