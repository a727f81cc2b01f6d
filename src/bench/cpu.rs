//! Where the benchmark's CPU time goes, from `/proc` (Linux): this process split into SyncDesk
//! and the load (the simulators and the load generator run on a runtime of their own, whose
//! threads carry [`LOAD_THREADS`] as their name), PostgreSQL's processes when the server runs on
//! this machine, and the machine as a whole. CPU time per order is steadier than orders/s on a
//! shared machine, and it says what the target needs: 2,000 orders/s on 2 cores is 1 ms of CPU
//! per order for everything that runs there.

use std::path::Path;
use std::time::Instant;

use crate::domain::shopify::parse_order;
use crate::simulate::shopify::OrderFactory;

/// How many orders [`yardstick`] reads and writes.
pub const YARDSTICK_ORDERS: usize = 5_000;

/// The machine's speed at SyncDesk's own kind of work, so that figures taken on different
/// machines can be compared (they differ by ~2.5× in speed, and the targets are per machine):
/// one core reads [`YARDSTICK_ORDERS`] store order webhooks into the canonical order and writes
/// each as JSON. Answers the milliseconds it took.
pub fn yardstick() -> anyhow::Result<f64> {
    let mut shop = OrderFactory::new(7);
    let bodies = (0..100)
        .map(|_| serde_json::to_vec(&shop.order()))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    for body in bodies.iter().cycle().take(YARDSTICK_ORDERS) {
        let order = parse_order(body)?;
        std::hint::black_box(serde_json::to_vec(&order)?);
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// The name of the load's threads.
pub const LOAD_THREADS: &str = "bench-load";

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on every Linux architecture in use.
const TICKS_PER_SECOND: f64 = 100.0;

/// Cumulative CPU ticks at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    process: u64,
    load: u64,
    postgres: Option<u64>,
    machine_busy: u64,
    machine_all: u64,
}

/// CPU time spent between two samples, in milliseconds per order.
#[derive(Clone, Copy, Debug)]
pub struct PerOrder {
    /// SyncDesk: web, ingest, workers, connectors, the SQLite writer.
    pub syncdesk: f64,
    /// PostgreSQL's processes, when the server runs on this machine.
    pub postgres: Option<f64>,
    /// The simulated CRM and ERP and the load generator.
    pub load: f64,
    /// Everything else the machine did (other processes; the kernel's work not charged to one).
    pub rest: f64,
    /// How busy the machine's CPUs were, 0–1.
    pub busy: f64,
    /// The machine's CPUs.
    pub cpus: usize,
}

/// Samples now; `None` where `/proc` is not there to read. `postgres_local` says whether the
/// database server is on this machine (its processes are counted only then).
pub fn sample(postgres_local: bool) -> Option<Sample> {
    let process = ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?.0;
    let mut load = 0;
    for thread in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Ok(stat) = std::fs::read_to_string(thread.path().join("stat"))
            && let Some((own, _, comm)) = ticks(&stat)
            && comm.starts_with(LOAD_THREADS)
        {
            load += own;
        }
    }
    let (machine_busy, machine_all) = machine()?;
    Some(Sample {
        process,
        load,
        postgres: postgres_local.then(postgres).flatten(),
        machine_busy,
        machine_all,
    })
}

impl Sample {
    /// The CPU spent from `self` to `later`, per order.
    pub fn per_order(&self, later: &Sample, orders: usize) -> PerOrder {
        let ms = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1000.0 / orders.max(1) as f64;
        let load = later.load.saturating_sub(self.load);
        let syncdesk = later
            .process
            .saturating_sub(self.process)
            .saturating_sub(load);
        let postgres = match (self.postgres, later.postgres) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let all = later.machine_all.saturating_sub(self.machine_all);
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        // /proc/stat counts each CPU's ticks: the machine's busy time is comparable with the
        // processes' own.
        let rest = busy.saturating_sub(syncdesk + load + postgres.unwrap_or(0));
        PerOrder {
            syncdesk: ms(syncdesk),
            postgres: postgres.map(ms),
            load: ms(load),
            rest: ms(rest),
            busy: if all == 0 {
                0.0
            } else {
                busy as f64 / all as f64
            },
            cpus,
        }
    }
}

/// A `stat` line's own CPU ticks (user + system), its reaped children's, and its name. The
/// name is in parentheses and may hold spaces, so fields are counted after the last `)`.
fn ticks(stat: &str) -> Option<(u64, u64, &str)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After the name: state (field 3) … utime (14), stime (15), cutime (16), cstime (17).
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(16)? + field(17)?, comm))
}

/// Every `postgres` process's CPU ticks, with its reaped children's: the postmaster's children
/// are the backends and workers that have exited.
fn postgres() -> Option<u64> {
    let mut total = 0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(&name).join("stat"))
            && let Some((own, children, comm)) = ticks(&stat)
            && comm == "postgres"
        {
            found = true;
            total += own + children;
        }
    }
    found.then_some(total)
}

/// The machine's busy and total CPU ticks, over all CPUs (`/proc/stat`'s `cpu` line).
fn machine() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let all: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((all - idle, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (worker) 1) S 1 4242 4242 0 -1 4194304 100 0 0 0 \
                    250 50 7 3 20 0 4 0 12345 0 0";
        assert_eq!(ticks(stat), Some((300, 10, "tokio (worker) 1")));
    }

    #[test]
    fn this_process_and_machine_are_read() {
        let before = sample(false).expect("/proc is readable on Linux");
        // Spin until the kernel has charged at least 100 ms to this process (however busy the
        // machine is), then check that it is reported as SyncDesk's, in milliseconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut x = 0u64;
        let after = loop {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let now = sample(false).expect("/proc is readable on Linux");
            if now.process >= before.process + 10 {
                break now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time was charged"
            );
        };
        let spent = before.per_order(&after, 1);
        assert!(spent.syncdesk >= 100.0, "spinning counted as {spent:?}");
        assert_eq!(spent.load, 0.0);
        assert_eq!(spent.postgres, None);
        assert!(spent.busy > 0.0 && spent.busy <= 1.0);
    }
}
