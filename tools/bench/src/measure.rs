//! What a run costs, read from `/proc`: a process's CPU time and peak
//! memory, the whole machine's busy time and load.
//!
//! Everything here reads files the kernel keeps up to date, so measuring a
//! process costs it nothing and works for any process we can see, including
//! the JVMs of Kafka and OpenSearch that we did not start.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A `/proc` file could not be read or did not have the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The file is missing (the process has exited) or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file did not contain the field.
    #[error("{path}: no {field} field")]
    Field { path: String, field: &'static str },
}

fn read(path: &str) -> Result<String, MeasureError> {
    std::fs::read_to_string(path).map_err(|source| MeasureError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Clock ticks per second, the unit of `/proc` CPU times. `getconf CLK_TCK`
/// asks the C library (no `unsafe` here); 100 is the value on every Linux
/// architecture we know of, used if `getconf` is missing.
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|ticks| *ticks > 0)
            .unwrap_or(100)
    })
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = clock_ticks_per_second();
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

/// User plus system CPU time of process `pid` so far, all threads included
/// (fields 14 and 15 of `/proc/<pid>/stat`).
pub fn process_cpu(pid: u32) -> Result<Duration, MeasureError> {
    let path = format!("/proc/{pid}/stat");
    stat_cpu(&path, &read(&path)?)
}

/// Field `number` (as `proc(5)` numbers them, from 3) of a `stat` file's
/// text. The command name (field 2) is in parentheses and may hold spaces;
/// the numbered fields start after the last `)`, with the state (field 3).
fn stat_field(text: &str, number: usize) -> Option<&str> {
    text.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(number.checked_sub(3)?)
}

/// User plus system time from the text of a `stat` file.
fn stat_cpu(path: &str, text: &str) -> Result<Duration, MeasureError> {
    let field = |number: usize, name: &'static str| {
        stat_field(text, number)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| MeasureError::Field {
                path: path.to_owned(),
                field: name,
            })
    };
    let utime = field(14, "utime")?;
    let stime = field(15, "stime")?;
    Ok(ticks_to_duration(utime + stime))
}

/// The parent's pid from the text of a `stat` file (field 4).
fn stat_parent(text: &str) -> Option<u32> {
    stat_field(text, 4)?.parse().ok()
}

/// Whether `pid` is a process that has not exited: zombies, which a
/// container's init may never reap, count as exited.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| stat_field(&text, 3).map(|state| state != "Z" && state != "X"))
        .unwrap_or(false)
}

/// Every live process descended from `pid`, children before their own
/// children. Read before signalling `pid`: once it exits, its children are
/// handed to init and can no longer be told from anyone else's.
pub fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| {
            let text = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            Some((child, stat_parent(&text)?))
        })
        .collect();
    let mut found = Vec::new();
    let mut next = 0;
    let mut parent = pid;
    loop {
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(child, _)| *child),
        );
        let Some(&following) = found.get(next) else {
            return found;
        };
        parent = following;
        next += 1;
    }
}

/// One thread's name and CPU time so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCpu {
    /// The thread's name (`comm`), as the process set it.
    pub name: String,
    /// User plus system time.
    pub cpu: Duration,
}

/// CPU time of each live thread of `pid`, from `/proc/<pid>/task/*/stat`.
///
/// A process's total hides which of its threads did the work; the split
/// tells a library's threads (librdkafka's are named `rdk:…`) from the
/// program's own. A thread that exits while the directory is read is left
/// out.
pub fn thread_cpu(pid: u32) -> Result<Vec<ThreadCpu>, MeasureError> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|source| MeasureError::Read {
        path: dir.clone(),
        source,
    })?;
    let mut threads = Vec::new();
    for entry in entries.flatten() {
        let path = format!("{dir}/{}/stat", entry.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let name = text
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map(|(name, _)| name.to_owned())
            .unwrap_or_default();
        threads.push(ThreadCpu {
            name,
            cpu: stat_cpu(&path, &text)?,
        });
    }
    Ok(threads)
}

/// CPU time so far of the threads of `pid` whose names start with `prefix`.
pub fn threads_cpu_named(pid: u32, prefix: &str) -> Result<Duration, MeasureError> {
    Ok(thread_cpu(pid)?
        .iter()
        .filter(|t| t.name.starts_with(prefix))
        .map(|t| t.cpu)
        .sum())
}

/// CPU each thread name took between two readings of [`thread_cpu`],
/// threads of one name (a pool's workers) together, most first. A thread
/// that started after `before` counts from zero; one that ended before
/// `after` is missing from it and left out.
pub fn thread_cpu_between(before: &[ThreadCpu], after: &[ThreadCpu]) -> Vec<(String, Duration)> {
    let mut by_name: std::collections::BTreeMap<&str, (Duration, Duration)> =
        std::collections::BTreeMap::new();
    for t in before {
        by_name.entry(&t.name).or_default().0 += t.cpu;
    }
    for t in after {
        by_name.entry(&t.name).or_default().1 += t.cpu;
    }
    let mut spent: Vec<(String, Duration)> = by_name
        .into_iter()
        .map(|(name, (b, a))| (name.to_owned(), a.saturating_sub(b)))
        .filter(|(_, cpu)| !cpu.is_zero())
        .collect();
    spent.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    spent
}

/// This process's own CPU time so far.
pub fn own_cpu() -> Result<Duration, MeasureError> {
    process_cpu(std::process::id())
}

/// Peak resident set size of `pid` in KiB (`VmHWM`), the most memory the
/// process has held at once since it started.
pub fn peak_rss_kib(pid: u32) -> Result<u64, MeasureError> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size of `pid` now, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Result<u64, MeasureError> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, key: &'static str) -> Result<u64, MeasureError> {
    let path = format!("/proc/{pid}/status");
    let text = read(&path)?;
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or(MeasureError::Field { path, field: key })
}

/// CPU time the whole machine has spent busy (all CPUs, everything but idle
/// and I/O wait), from the first line of `/proc/stat`. The difference over a
/// run minus what the measured processes used is what everybody else used:
/// the interference on a shared machine.
pub fn machine_busy() -> Result<Duration, MeasureError> {
    let path = "/proc/stat";
    let text = read(path)?;
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or(MeasureError::Field {
            path: path.into(),
            field: "cpu",
        })?;
    // user nice system idle iowait irq softirq steal (guest time is already
    // counted in user and nice).
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if values.len() < 8 {
        return Err(MeasureError::Field {
            path: path.into(),
            field: "cpu",
        });
    }
    let busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7];
    Ok(ticks_to_duration(busy))
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> Result<[f64; 3], MeasureError> {
    let path = "/proc/loadavg";
    let text = read(path)?;
    let mut values = text.split_whitespace().filter_map(|v| v.parse().ok());
    match (values.next(), values.next(), values.next()) {
        (Some(a), Some(b), Some(c)) => Ok([a, b, c]),
        _ => Err(MeasureError::Field {
            path: path.into(),
            field: "load averages",
        }),
    }
}

/// Reads a pid file such as `.services/opensearch/opensearch.pid`; `None`
/// when it is missing or the process is gone.
pub fn pid_from_file(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// The machine, for the report header.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// `model name` of the first CPU.
    pub cpu_model: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads what `/proc` says; unknown parts are `?`.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "?".into());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map(|kib| kib / 1024)
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
        Machine {
            cpus: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(0),
            cpu_model,
            memory_mib,
            kernel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disturbed_only_past_a_second_and_a_share_of_the_machine() {
        let secs = Duration::from_secs_f64;
        assert!(disturbed(Some(secs(2.0)), secs(1.0)));
        // Over a second, but a sliver of a long run.
        assert!(!disturbed(Some(secs(1.5)), secs(1000.0)));
        // A large share of a short run, but under a second.
        assert!(!disturbed(Some(secs(0.9)), secs(0.1)));
        assert!(!disturbed(None, secs(1.0)));
    }

    #[test]
    fn terminating_a_wrapper_stops_what_it_started() {
        let dir = std::env::temp_dir().join(format!("bench-terminate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // `; true` keeps the shell from exec-ing `sleep`: it forks it and
        // waits, as a wrapper script around the measured binary does.
        let mut wrapper = MeasuredChild::spawn(
            Command::new("sh").args(["-c", "sleep 60; true"]),
            &dir.join("wrapper.log"),
        )
        .expect("spawn sh");
        let deadline = Instant::now() + Duration::from_secs(5);
        let started = loop {
            let found = descendants(wrapper.child.id());
            if !found.is_empty() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(started.len(), 1, "the shell's sleep: {started:?}");
        assert!(running(started[0]));
        wrapper.terminate(Duration::from_secs(5));
        assert!(
            !running(started[0]),
            "sleep {} outlived its wrapper",
            started[0]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_own_process() {
        // Burn a little CPU so the figure cannot be zero ticks.
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(own_cpu().unwrap() > Duration::ZERO);
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
        assert!(machine_busy().unwrap() > Duration::ZERO);
        assert!(load_average().unwrap()[0] >= 0.0);
    }

    #[test]
    fn thread_cpu_between_groups_names_and_orders_by_cpu() {
        let t = |name: &str, ms: u64| ThreadCpu {
            name: name.into(),
            cpu: Duration::from_millis(ms),
        };
        let before = [
            t("worker", 100),
            t("worker", 50),
            t("acks", 10),
            t("idle", 5),
        ];
        let after = [
            t("worker", 400),
            t("worker", 300),
            t("acks", 40),
            t("idle", 5),
            t("late", 70),
        ];
        assert_eq!(
            thread_cpu_between(&before, &after),
            vec![
                ("worker".to_owned(), Duration::from_millis(550)),
                ("late".to_owned(), Duration::from_millis(70)),
                ("acks".to_owned(), Duration::from_millis(30)),
            ]
        );
    }

    #[test]
    fn a_named_thread_is_charged_its_own_cpu() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
        let burner = std::thread::Builder::new()
            .name("bench:burner".into())
            .spawn(move || {
                // Until the thread itself has been charged 200 ms (not for
                // 200 ms of wall time, which a loaded machine may give it
                // little CPU of), or 30 s have passed.
                let pid = std::process::id();
                let mut x = 0u64;
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_secs(30)
                    && threads_cpu_named(pid, "bench:burner").unwrap() < Duration::from_millis(200)
                {
                    for _ in 0..1_000_000 {
                        x = x.wrapping_mul(31).wrapping_add(7);
                    }
                    std::hint::black_box(x);
                }
                done_tx.send(()).unwrap();
                // Still alive while the reading is taken.
                let _ = read_rx.recv();
            })
            .unwrap();
        done_rx.recv().unwrap();
        let pid = std::process::id();
        let threads = thread_cpu(pid).unwrap();
        let burned = threads_cpu_named(pid, "bench:burn").unwrap();
        read_tx.send(()).unwrap();
        burner.join().unwrap();
        assert!(
            burned >= Duration::from_millis(100),
            "{burned:?} {threads:?}"
        );
        assert_eq!(
            threads_cpu_named(pid, "no such thread").unwrap(),
            Duration::ZERO
        );
        let total: Duration = threads.iter().map(|t| t.cpu).sum();
        assert!(total >= burned && total <= own_cpu().unwrap() + Duration::from_millis(50));
    }

    #[test]
    fn ticks_convert() {
        let per_second = clock_ticks_per_second();
        assert_eq!(ticks_to_duration(per_second * 3), Duration::from_secs(3));
    }
}

// What a whole run costs: the measured child, this process, the engine,
// Kafka and the rest of the machine, from the readings above.

/// Whether other processes, using `others` of CPU over a run of `wall`,
/// took a noticeable share of the machine (over a second, and over 5 % of
/// all CPUs' time): the run's throughput is then not to be trusted.
pub fn disturbed(others: Option<Duration>, wall: Duration) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    others.is_some_and(|others| {
        let others = others.as_secs_f64();
        others > 1.0 && others > 0.05 * cpus * wall.as_secs_f64()
    })
}

/// Machine-wide CPU readings at the start of a run.
#[derive(Debug)]
pub(crate) struct Meter {
    machine: Duration,
    own: Duration,
    engine: Option<(u32, Duration)>,
    kafka: Option<(u32, Duration)>,
    pub(crate) load: [f64; 3],
}

/// What a run cost besides the measured process.
#[derive(Debug)]
pub(crate) struct Costs {
    pub(crate) own: Duration,
    pub(crate) engine: Option<Duration>,
    pub(crate) kafka: Option<Duration>,
    pub(crate) others: Option<Duration>,
    pub(crate) load: [f64; 3],
}

impl Meter {
    pub(crate) fn start(services_dir: &Path) -> anyhow::Result<Meter> {
        let service = |name: &str| {
            let pid = service_pid(services_dir, name)?;
            Some((pid, process_cpu(pid).ok()?))
        };
        Ok(Meter {
            machine: machine_busy()?,
            own: own_cpu()?,
            engine: service("opensearch"),
            kafka: service("kafka"),
            load: load_average()?,
        })
    }

    /// Readings at the end. `measured` is the measured child's CPU, if any
    /// (it started with the run); this process's own CPU is reported apart,
    /// never as "others".
    pub(crate) fn finish(&self, measured: Option<Duration>) -> Costs {
        let delta = |start: Option<(u32, Duration)>| {
            let (pid, before) = start?;
            Some(process_cpu(pid).ok()?.saturating_sub(before))
        };
        let own = own_cpu()
            .map(|now| now.saturating_sub(self.own))
            .unwrap_or_default();
        let engine = delta(self.engine);
        let kafka = delta(self.kafka);
        let others = machine_busy().ok().map(|now| {
            now.saturating_sub(self.machine)
                .saturating_sub(own)
                .saturating_sub(measured.unwrap_or_default())
                .saturating_sub(engine.unwrap_or_default())
                .saturating_sub(kafka.unwrap_or_default())
        });
        Costs {
            own,
            engine,
            kafka,
            others,
            load: load_average().unwrap_or([0.0; 3]),
        }
    }
}

impl Meter {
    /// The engine's CPU since the start, read once it has gone quiet (under
    /// 5 % of a core for a second, or after a minute): the refreshes and
    /// merges a run leaves behind are work its documents cost, done after
    /// the last one is searchable.
    pub(crate) async fn engine_settled(&self) -> Option<Duration> {
        let (pid, before) = self.engine?;
        let now = quiet_cpu(pid, Instant::now() + Duration::from_secs(60)).await?;
        Some(now.saturating_sub(before))
    }
}

/// Waits until OpenSearch (found by its pid file under `services_dir`) has
/// gone quiet as [`Meter::engine_settled`] means it, or `limit` passed, and
/// returns how long that took; `None` when its pid is not known. A run that
/// starts while the engine still merges what the run before it wrote
/// measures both.
pub(crate) async fn engine_quiet(services_dir: &Path, limit: Duration) -> Option<Duration> {
    let pid = service_pid(services_dir, "opensearch")?;
    let started = Instant::now();
    quiet_cpu(pid, started + limit).await?;
    Some(started.elapsed())
}

/// The pid of `dev/services`' service `name`, from its pid file.
fn service_pid(services_dir: &Path, name: &str) -> Option<u32> {
    pid_from_file(&services_dir.join(name).join(format!("{name}.pid")))
}

/// Reads `pid`'s CPU every second until a second in which it used under
/// 5 % of a core, or `deadline`; the last reading.
async fn quiet_cpu(pid: u32, deadline: Instant) -> Option<Duration> {
    let mut last = process_cpu(pid).ok()?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = process_cpu(pid).ok()?;
        let quiet = now.saturating_sub(last) < Duration::from_millis(50);
        last = now;
        if quiet || Instant::now() >= deadline {
            return Some(now);
        }
    }
}

/// A child process whose CPU and memory are the measurement.
#[derive(Debug)]
pub(crate) struct MeasuredChild {
    pub(crate) child: Child,
    pub(crate) started: Instant,
    log: PathBuf,
}

impl MeasuredChild {
    pub(crate) fn spawn(command: &mut Command, log: &Path) -> anyhow::Result<MeasuredChild> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let started = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        Ok(MeasuredChild {
            child,
            started,
            log: log.to_owned(),
        })
    }

    /// `Err`, with the end of its log, if the process has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "the process exited early ({status}); end of {}:\n{}",
                self.log.display(),
                tail.join("\n")
            );
        }
        Ok(())
    }

    /// CPU so far and peak RSS (KiB).
    pub(crate) fn sample(&self) -> Result<(Duration, u64), MeasureError> {
        let pid = self.child.id();
        Ok((process_cpu(pid)?, peak_rss_kib(pid)?))
    }

    /// SIGTERM (via `kill`, as this crate forbids `unsafe`), then SIGKILL
    /// after `grace`; to the process and everything it started, so that a
    /// wrapper given as the binary (`--ingester-bin` and the like) does not
    /// leave the real process running after the benchmark.
    pub(crate) fn terminate(&mut self, grace: Duration) {
        let pid = self.child.id();
        let started = descendants(pid);
        let mut pids: Vec<String> = vec![pid.to_string()];
        pids.extend(started.iter().map(u32::to_string));
        let _ = Command::new("kill").arg("-TERM").args(&pids).status();
        let deadline = Instant::now() + grace;
        let mut stopped = false;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) && !started.iter().any(|p| running(*p))
            {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if stopped {
            return;
        }
        eprintln!(
            "  {pid} or a process it started did not stop within {} s; killing them",
            grace.as_secs()
        );
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids[1..])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
