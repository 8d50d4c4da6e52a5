//! The CSV trace of `--trace`: every POST's timings, written after the run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::check::Kind;

/// The columns of `--trace`, one row per POST in the order they went out. Times in µs are from
/// the run's start (the generator's clock); `created_ms`/`completed_ms` are the job's
/// `createdAt`/`completedAt` and `sent_unix_ms` the generator's wall clock at the POST, so that
/// the two clocks (the same one on a single machine) can be lined up. A field that does not
/// apply is empty.
pub const TRACE_HEADER: &str =
    "sent_us,kind,event,seat,post_status,answered_us,result,result_us,created_ms,completed_ms,sent_unix_ms";

/// One row of `--trace`.
pub(super) struct TraceRow {
    pub(super) sent_us: u64,
    pub(super) kind: Kind,
    pub(super) event: String,
    pub(super) seat: u32,
    /// 0 when no HTTP answer came.
    pub(super) post_status: u16,
    pub(super) answered_us: u64,
    /// The job's result code, or how it ended otherwise ("failed", "unfinished", "lost").
    pub(super) result: Option<String>,
    pub(super) result_us: Option<u64>,
    pub(super) times: Option<(i64, i64)>,
    pub(super) sent_unix_ms: i64,
}

impl TraceRow {
    fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            self.sent_us,
            self.kind.name(),
            self.event,
            self.seat,
            self.post_status,
            self.answered_us,
            self.result.as_deref().unwrap_or(""),
            opt(self.result_us.and_then(|v| i64::try_from(v).ok())),
            opt(self.times.map(|t| t.0)),
            opt(self.times.map(|t| t.1)),
            self.sent_unix_ms,
        )
    }
}

pub(super) fn write_trace(path: &Path, mut rows: Vec<TraceRow>) -> Result<()> {
    rows.sort_by_key(|r| r.sent_us);
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    writeln!(out, "{TRACE_HEADER}")?;
    for row in &rows {
        row.write(&mut out)?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}
