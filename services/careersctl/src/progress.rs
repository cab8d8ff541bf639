//! A push's progress on stderr, counted in rows: a bar on a terminal, and a plain line every
//! few seconds otherwise, which is how a scheduled job runs it. Both go on through the wait
//! for the server's answer, which for a large file is a good part of the whole.

use std::{
    io::IsTerminal,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

/// Counts CSV records as bytes pass, across chunk boundaries. A line break inside quotes is
/// part of a field, not the end of a record (RFC 4180); an escaped quote (`""`) toggles
/// twice and so changes nothing.
#[derive(Debug, Default)]
pub struct RecordCounter {
    in_quotes: bool,
    /// Record terminators seen, the header's included.
    terminators: u64,
    /// Whether anything followed the last terminator (a last record without a line break).
    open_record: bool,
}

impl RecordCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'"' => {
                    self.in_quotes = !self.in_quotes;
                    self.open_record = true;
                }
                b'\n' if !self.in_quotes => {
                    self.terminators += 1;
                    self.open_record = false;
                }
                b'\r' if !self.in_quotes => {}
                _ => self.open_record = true,
            }
        }
    }

    /// Data rows whose last byte has passed, the header not counted.
    pub fn rows_complete(&self) -> u64 {
        self.terminators.saturating_sub(1)
    }

    /// Data rows in everything fed so far, counting a last record without a line break.
    pub fn rows_total(&self) -> u64 {
        (self.terminators + u64::from(self.open_record)).saturating_sub(1)
    }
}

/// How the progress is shown.
#[derive(Debug, Clone, Copy)]
pub enum Display {
    /// An in-place bar; for a person at a terminal.
    Bar,
    /// A plain line every `every`; for logs.
    Lines { every: Duration },
}

impl Display {
    /// A bar when stderr is a terminal, lines otherwise.
    pub fn for_stderr(every: Duration) -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines { every }
        }
    }
}

#[derive(Debug)]
struct Shared {
    total: u64,
    sent: AtomicU64,
    started: Instant,
    all_sent: OnceLock<Instant>,
}

/// One attempt's progress. Dropping it, when the answer is in or the attempt failed,
/// clears the bar or stops the lines.
#[derive(Debug)]
pub struct Progress {
    shared: Arc<Shared>,
    bar: Option<ProgressBar>,
    printer: Option<tokio::task::AbortHandle>,
}

impl Progress {
    pub fn start(total_rows: u64, display: Display) -> Self {
        let shared = Arc::new(Shared {
            total: total_rows,
            sent: AtomicU64::new(0),
            started: Instant::now(),
            all_sent: OnceLock::new(),
        });
        let (bar, printer) = match display {
            Display::Bar => {
                let bar = ProgressBar::new(total_rows).with_style(sending_style());
                bar.enable_steady_tick(Duration::from_millis(200));
                (Some(bar), None)
            }
            Display::Lines { every } => {
                eprintln!("careersctl: sending {total_rows} rows");
                let shared = shared.clone();
                let printer = tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(every);
                    ticks.tick().await;
                    loop {
                        ticks.tick().await;
                        eprintln!("careersctl: {}", shared.line());
                    }
                });
                (None, Some(printer.abort_handle()))
            }
        };
        Self {
            shared,
            bar,
            printer,
        }
    }

    /// Rows sent so far in this attempt.
    pub fn sent(&self, rows: u64) {
        self.shared.sent.store(rows, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
        }
    }

    /// The last byte is out; what follows is the server finishing.
    pub fn all_sent(&self) {
        self.sent(self.shared.total);
        if self.shared.all_sent.set(Instant::now()).is_err() {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_style(waiting_style()),
            None => eprintln!("careersctl: {}", self.shared.line()),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(printer) = &self.printer {
            printer.abort();
        }
    }
}

impl Shared {
    /// One plain progress line.
    fn line(&self) -> String {
        let sent = self.sent.load(Ordering::Relaxed);
        if let Some(at) = self.all_sent.get() {
            let sending = at.duration_since(self.started).as_secs_f64();
            return format!(
                "sent all {} rows in {sending:.1} s; waiting for the server's answer ({:.0} s so far)",
                self.total,
                at.elapsed().as_secs_f64()
            );
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        };
        let percent = (sent * 100).checked_div(self.total).unwrap_or(100);
        let left = if rate > 0.0 {
            format!(
                ", about {:.0} s left to send",
                self.total.saturating_sub(sent) as f64 / rate
            )
        } else {
            String::new()
        };
        format!(
            "sent {sent} of {} rows ({percent}%), {rate:.0} rows/s{left}",
            self.total
        )
    }
}

fn sending_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{human_pos}/{human_len} rows {wide_bar} {per_sec:.dim} about {eta} left to send",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn waiting_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} sent all {human_len} rows; waiting for the server's answer ({elapsed})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_across_chunks_and_quoted_line_breaks() {
        let csv =
            b"soc_code,source\r\n2134,\"ASHE\nline two, \"\"quoted\"\"\"\r\n2135,x\n2136,last";
        let mut whole = RecordCounter::default();
        whole.feed(csv);
        assert_eq!((whole.rows_complete(), whole.rows_total()), (2, 3));
        for split in 0..csv.len() {
            let mut chunked = RecordCounter::default();
            chunked.feed(&csv[..split]);
            chunked.feed(&csv[split..]);
            assert_eq!(chunked.rows_total(), 3, "split at {split}");
        }
        let mut ended = RecordCounter::default();
        ended.feed(b"soc_code\n2134\n");
        assert_eq!((ended.rows_complete(), ended.rows_total()), (1, 1));
        let mut empty = RecordCounter::default();
        empty.feed(b"");
        assert_eq!(empty.rows_total(), 0);
    }

    #[test]
    fn a_line_names_rows_rate_and_what_is_left() {
        let shared = Shared {
            total: 50_000,
            sent: AtomicU64::new(10_000),
            started: Instant::now() - Duration::from_secs(2),
            all_sent: OnceLock::new(),
        };
        let line = shared.line();
        assert!(
            line.starts_with("sent 10000 of 50000 rows (20%), "),
            "{line}"
        );
        assert!(line.contains("rows/s, about "), "{line}");
        shared.all_sent.set(Instant::now()).ok();
        assert!(
            shared
                .line()
                .starts_with("sent all 50000 rows in 2.0 s; waiting for the server's answer"),
            "{}",
            shared.line()
        );
    }
}
