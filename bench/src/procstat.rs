//! CPU time of processes on this machine, from Linux's `/proc/<pid>/stat`: the generator's own,
//! and that of services it is told to watch (PostgreSQL, Redis), which share the machine with
//! the server under test and whose CPU per flow the report then shows. Elsewhere nothing is
//! read and the figures are absent.

use std::{collections::BTreeMap, time::Duration};

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`: 100 on every Linux this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// The command name and CPU time (user + system) a `/proc/<pid>/stat` line gives. The name is
/// in parentheses and may itself hold spaces or parentheses, so the fields are counted from the
/// last `)`.
fn parse(stat: &str) -> Option<(&str, Duration)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)))
}

/// CPU time this process has used.
pub fn own() -> Option<Duration> {
    parse(&std::fs::read_to_string("/proc/self/stat").ok()?).map(|(_, cpu)| cpu)
}

/// CPU time used so far by the processes of each watched name, all of them together (a
/// PostgreSQL server is many processes). Names with no process are left out.
pub fn by_name(names: &[String]) -> BTreeMap<String, Duration> {
    let mut totals = BTreeMap::new();
    if names.is_empty() {
        return totals;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return totals };
    for entry in entries.flatten() {
        // Processes that exit meanwhile are skipped; their CPU is lost to the count.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some((name, cpu)) = parse(&stat)
            && names.iter().any(|watched| watched == name)
        {
            *totals.entry(name.to_owned()).or_default() += cpu;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_name_and_cpu_time_even_with_parentheses_in_the_name() {
        let stat = "4242 (post (gres)) S 1 4242 4242 0 -1 4194560 310 0 0 0 150 27 0 0 20 0 1 0 99 1 2";
        assert_eq!(parse(stat), Some(("post (gres)", Duration::from_millis(1770))));
        assert_eq!(parse("4242 (truncated) S 1"), None);
    }

    #[test]
    fn finds_this_process_by_its_name() {
        let name = std::fs::read_to_string("/proc/self/comm").expect("Linux").trim_end().to_owned();
        let found = by_name(std::slice::from_ref(&name));
        assert!(found.contains_key(&name), "{name} not found");
        assert!(by_name(&["no such process name".into()]).is_empty());
    }
}
