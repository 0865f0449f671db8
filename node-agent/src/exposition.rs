//! What the agent's and the maintenance workload's metrics share: a gauge that is absent until
//! first set ([`OptionalGauge`], so that "never happened" is no series rather than a 0 an
//! alert would read as 1970), the standard process metrics ([`ProcessCollector`]), and the
//! classic Prometheus text format ([`classic_text`]) for clients that do not ask for
//! OpenMetrics (`promtool check metrics`, curl).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A float gauge that is not exported until it is first set.
#[derive(Debug, Clone, Default)]
pub struct OptionalGauge {
    bits: Arc<AtomicU64>,
    set: Arc<AtomicBool>,
}

impl OptionalGauge {
    /// Sets the value; the gauge is exported from now on.
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
        self.set.store(true, Ordering::Relaxed);
    }

    /// The value, `None` while unset.
    pub fn get(&self) -> Option<f64> {
        self.set
            .load(Ordering::Relaxed)
            .then(|| f64::from_bits(self.bits.load(Ordering::Relaxed)))
    }

    /// Unsets it: no longer exported.
    pub fn clear(&self) {
        self.set.store(false, Ordering::Relaxed);
    }
}

impl TypedMetric for OptionalGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for OptionalGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self.get() {
            Some(v) => encoder.encode_gauge(&v),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }

    fn is_empty(&self) -> bool {
        self.get().is_none()
    }
}

/// The standard `process_*` metrics of this process, read from `/proc/self` at each scrape:
/// resident and virtual memory, CPU time, open file descriptors, and the start time.
#[derive(Debug)]
pub struct ProcessCollector {
    /// Unix time the metrics were set up, at the process's start.
    started: f64,
}

impl ProcessCollector {
    /// A collector for this process, started now.
    pub fn new() -> Self {
        Self {
            started: now_seconds(),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/proc/self/stat` says, in base units.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcStat {
    cpu_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
}

/// Parses `/proc/self/stat`: utime and stime (fields 14 and 15, in clock ticks), vsize (23,
/// bytes) and rss (24, pages). The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(text: &str, ticks_per_second: f64, page_size: f64) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (the state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    Some(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) / ticks_per_second,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
    })
}

fn proc_stat() -> Option<ProcStat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    parse_stat(&text, ticks as f64, page as f64)
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            self.started,
        )?;
        if let Some(st) = proc_stat() {
            let cpu = ConstCounter::new(st.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                st.resident_bytes,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                st.virtual_bytes,
            )?;
        }
        if let Some(n) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                n,
            )?;
        }
        Ok(())
    }
}

/// `openmetrics` (what `prometheus_client` encodes) in the classic Prometheus text format
/// (version 0.0.4): a counter's family is named with its `_total` suffix, as its samples are,
/// and the `# UNIT` and `# EOF` lines go. Everything else is the same in both formats.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match header {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let sep = if tail.is_empty() { "" } else { " " };
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total{sep}{tail}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::registry::Registry;

    #[test]
    fn an_optional_gauge_is_absent_until_set_and_after_clear() {
        let mut r = Registry::default();
        let g = OptionalGauge::default();
        r.register("kairn_test_timestamp_seconds", "A time", g.clone());
        let text = |r: &Registry| {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, r).unwrap();
            s
        };
        assert!(!text(&r).contains("kairn_test"), "{}", text(&r));
        g.set(1.5e9);
        assert!(
            text(&r).contains("kairn_test_timestamp_seconds 1500000000.0"),
            "{}",
            text(&r)
        );
        g.clear();
        assert!(!text(&r).contains("kairn_test"), "{}", text(&r));
    }

    #[test]
    fn the_classic_format_names_counter_families_with_total() {
        let mut r = Registry::default();
        let c: Counter = Counter::default();
        c.inc_by(3);
        r.register("kairn_test_things", "Things done", c);
        r.register_with_unit(
            "kairn_test_age",
            "An age",
            prometheus_client::registry::Unit::Seconds,
            ConstGauge::new(2.0f64),
        );
        let mut om = String::new();
        prometheus_client::encoding::text::encode(&mut om, &r).unwrap();
        let classic = classic_text(&om);
        assert_eq!(
            classic,
            "# HELP kairn_test_things_total Things done.\n\
             # TYPE kairn_test_things_total counter\n\
             kairn_test_things_total 3\n\
             # HELP kairn_test_age_seconds An age.\n\
             # TYPE kairn_test_age_seconds gauge\n\
             kairn_test_age_seconds 2.0\n",
            "from:\n{om}"
        );
    }

    #[test]
    fn proc_stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as the kernel writes it.
        let mut fields = vec!["S".to_string()];
        fields.extend((4..=30).map(|n| n.to_string()));
        let text = format!("42 (we ird) x) {}", fields.join(" "));
        let st = parse_stat(&text, 100.0, 4096.0).unwrap();
        assert_eq!(st.cpu_seconds, (14.0 + 15.0) / 100.0);
        assert_eq!(st.virtual_bytes, 23.0);
        assert_eq!(st.resident_bytes, 24.0 * 4096.0);
        assert!(parse_stat("garbage", 100.0, 4096.0).is_none());
        // This process's own.
        let me = proc_stat().unwrap();
        assert!(me.resident_bytes > 0.0 && me.virtual_bytes >= me.resident_bytes);
    }
}
