//! Measurements, the median of repetitions, the table and the JSON line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether a bigger value is better (a rate) or a smaller one (a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Rates: commands/s, events/s, requests/s.
    Higher,
    /// Times: ms.
    Lower,
}

/// One side's result for one figure (after [`median`]: the median repetition).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// The figure's value.
    pub value: f64,
    /// Its unit (`commands/s`, `events/s`, `ms`, `requests/s`).
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// Median latency of one command, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of one command, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Whether the state checked after the run was right.
    pub correct: bool,
    /// What was checked, and what was found.
    pub check: String,
    /// Every repetition's value.
    pub reps: Vec<f64>,
    /// Figure-specific numbers (contention counts, group-commit batch sizes, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Measurement {
    /// A rate with no latency.
    pub fn rate(value: f64, unit: &str, correct: bool, check: String) -> Self {
        Self {
            value,
            unit: unit.to_owned(),
            better: Better::Higher,
            p50_ms: None,
            p99_ms: None,
            correct,
            check,
            reps: vec![value],
            extra: BTreeMap::new(),
        }
    }

    /// A duration in ms.
    pub fn millis(elapsed: Duration, correct: bool, check: String) -> Self {
        let value = elapsed.as_secs_f64() * 1e3;
        Self {
            better: Better::Lower,
            ..Self::rate(value, "ms", correct, check)
        }
    }

    /// Adds latency percentiles from per-command latencies in microseconds.
    pub fn with_latencies(mut self, latencies_us: &mut [u32]) -> Self {
        self.p50_ms = percentile_ms(latencies_us, 50.0);
        self.p99_ms = percentile_ms(latencies_us, 99.0);
        self
    }

    /// Adds a figure-specific number.
    pub fn with_extra(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }
}

/// The `p`-th percentile (nearest rank) of latencies in µs, in ms. Sorts the slice.
pub fn percentile_ms(latencies_us: &mut [u32], p: f64) -> Option<f64> {
    if latencies_us.is_empty() {
        return None;
    }
    latencies_us.sort_unstable();
    let rank = ((p / 100.0) * latencies_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, latencies_us.len()) - 1;
    Some(f64::from(latencies_us[index]) / 1e3)
}

/// The median repetition (by value), carrying every repetition's value; correct only if
/// every repetition was.
pub fn median(mut reps: Vec<Measurement>) -> Option<Measurement> {
    if reps.is_empty() {
        return None;
    }
    let values: Vec<f64> = reps.iter().map(|m| m.value).collect();
    let all_correct = reps.iter().all(|m| m.correct);
    let failures: Vec<String> = reps
        .iter()
        .filter(|m| !m.correct)
        .map(|m| m.check.clone())
        .collect();
    reps.sort_by(|a, b| a.value.total_cmp(&b.value));
    let mid = reps.len() / 2;
    let mut chosen = reps.swap_remove(mid);
    chosen.reps = values;
    chosen.correct = all_correct;
    if !all_correct && chosen.check != failures.join("; ") {
        chosen.check = failures.join("; ");
    }
    Some(chosen)
}

/// One line of the table: a figure for Factum and (where it exists) the peer.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The figure's name (`mem_seq`, `sqlite_par16`, ...).
    pub figure: String,
    /// Factum's result.
    pub factum: Option<Measurement>,
    /// The peer's result.
    pub peer: Option<Measurement>,
    /// Why the peer has no figure, or what to know about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// A row with both sides.
    pub fn new(figure: &str, factum: Option<Measurement>, peer: Option<Measurement>) -> Self {
        Self {
            figure: figure.to_owned(),
            factum,
            peer,
            note: None,
        }
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// How many times Factum is better: Factum/peer for rates, peer/Factum for times.
    pub fn speedup(&self) -> Option<f64> {
        let (f, p) = (self.factum.as_ref()?, self.peer.as_ref()?);
        if f.unit != p.unit || f.value <= 0.0 || p.value <= 0.0 {
            return None;
        }
        Some(match f.better {
            Better::Higher => f.value / p.value,
            Better::Lower => p.value / f.value,
        })
    }
}

fn value_text(m: Option<&Measurement>) -> String {
    match m {
        None => "-".to_owned(),
        Some(m) if m.unit == "ms" => format!("{:.2} ms", m.value),
        Some(m) => format!("{} {}", thousands(m.value), m.unit),
    }
}

fn latency_text(m: Option<&Measurement>) -> String {
    match m.and_then(|m| Some((m.p50_ms?, m.p99_ms?))) {
        Some((p50, p99)) => format!("{p50:.2} / {p99:.2}"),
        None => "-".to_owned(),
    }
}

fn check_text(m: Option<&Measurement>) -> &'static str {
    match m {
        None => "-",
        Some(m) if m.correct => "ok",
        Some(_) => "WRONG",
    }
}

/// A number with thousands separators, no decimals.
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{}", rounded.abs() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// The table as Markdown (readable in a terminal and pasteable into the docs).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| figure | Factum | peer (cqrs-es 0.5 unless noted) | Factum/peer | Factum p50 / p99 ms | peer p50 / p99 ms | state F / peer |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let speedup = row
            .speedup()
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}x"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} / {} |",
            row.figure,
            value_text(row.factum.as_ref()),
            value_text(row.peer.as_ref()),
            speedup,
            latency_text(row.factum.as_ref()),
            latency_text(row.peer.as_ref()),
            check_text(row.factum.as_ref()),
            check_text(row.peer.as_ref()),
        );
    }
    out
}

/// The checks and notes behind the table, one line each.
pub fn details(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut last_note = None;
    for row in rows {
        for (side, m) in [("Factum", &row.factum), ("peer", &row.peer)] {
            if let Some(m) = m {
                let extra = if m.extra.is_empty() {
                    String::new()
                } else {
                    format!(
                        " {}",
                        serde_json::to_string(&m.extra).unwrap_or_else(|_| "{}".to_owned())
                    )
                };
                let reps: Vec<String> = m
                    .reps
                    .iter()
                    .map(|v| {
                        if m.unit == "ms" {
                            format!("{v:.3}")
                        } else {
                            format!("{v:.1}")
                        }
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "- {} / {side}: {} (reps: {}){extra}",
                    row.figure,
                    m.check,
                    reps.join(", ")
                );
            }
        }
        // A note shared by consecutive rows (e.g. every SQLite row) is printed once.
        if let Some(note) = row.note.as_ref().filter(|n| last_note != Some(*n)) {
            let _ = writeln!(out, "- {} / note: {note}", row.figure);
        }
        last_note = row.note.as_ref();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut lat: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        lat.reverse();
        assert_eq!(percentile_ms(&mut lat, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&mut lat, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&mut [], 50.0), None);
    }

    #[test]
    fn median_picks_the_middle_repetition_and_keeps_failures() {
        let reps = vec![
            Measurement::rate(3.0, "x/s", true, "a".into()),
            Measurement::rate(1.0, "x/s", false, "bad".into()),
            Measurement::rate(2.0, "x/s", true, "b".into()),
        ];
        let m = median(reps).unwrap();
        assert_eq!(m.value, 2.0);
        assert_eq!(m.reps, vec![3.0, 1.0, 2.0]);
        assert!(!m.correct);
        assert_eq!(m.check, "bad");
    }

    #[test]
    fn speedup_reads_times_the_other_way_round() {
        let f = Measurement::millis(Duration::from_millis(10), true, String::new());
        let p = Measurement::millis(Duration::from_millis(30), true, String::new());
        let row = Row::new("x", Some(f), Some(p));
        assert!((row.speedup().unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(thousands(1234567.4), "1,234,567");
    }
}
