//! The disk's fsync rate, measured in the same run as the durable figures.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Appends 4 KiB and `fdatasync`s, `count` times, in a temporary file in `dir`; fsyncs/s.
pub fn probe(dir: &Path, count: usize) -> std::io::Result<f64> {
    let mut file = tempfile::tempfile_in(dir)?;
    let block = [0xA5u8; 4096];
    let started = Instant::now();
    for _ in 0..count {
        file.write_all(&block)?;
        file.sync_data()?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_a_positive_rate() {
        let dir = tempfile::tempdir().unwrap();
        let rate = probe(dir.path(), 3).unwrap();
        assert!(rate > 0.0 && rate.is_finite());
    }
}
