//! What a campaign tells its user while it runs: a status line redrawn in
//! place on stderr when stderr is a terminal (a plain line every 10 s when
//! it is not), and messages about findings that do not get overwritten.

use super::state::Counts;
use std::io::Write;
use std::time::{Duration, Instant};

pub struct Ui {
    tty: bool,
    quiet: bool,
    drawn: bool,
    last_plain: Instant,
}

const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl Ui {
    /// `tty`: redraw the status line in place; `quiet`: say nothing at all.
    pub fn new(tty: bool, quiet: bool) -> Ui {
        Ui {
            tty,
            quiet,
            drawn: false,
            last_plain: Instant::now(),
        }
    }

    /// Shows the status line: redrawn on a terminal, else every 10 s.
    pub fn status(&mut self, line: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.drawn = true;
        } else if self.last_plain.elapsed() >= PLAIN_EVERY {
            let _ = writeln!(err, "{line}");
            self.last_plain = Instant::now();
        }
        let _ = err.flush();
    }

    /// A message on its own line, above the status line.
    pub fn say(&mut self, msg: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.drawn {
            let _ = write!(err, "\r\x1b[2K");
            self.drawn = false;
        }
        let _ = writeln!(err, "{msg}");
        let _ = err.flush();
    }

    /// Clears the status line before the summary.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// `[12s] 2345 cases 190/s | divergences 45 (3 distinct) | violations 0 (0 distinct) | backend failures 0 (0 distinct crashes)`
pub fn status_line(
    c: &Counts,
    distinct_div: usize,
    distinct_viol: usize,
    distinct_crash: usize,
    secs: f64,
) -> String {
    format!(
        "[{secs:.0}s] {} cases {:.0}/s | divergences {} ({distinct_div} distinct) | violations {} ({distinct_viol} distinct) | backend failures {} ({distinct_crash} distinct crashes)",
        c.cases,
        c.cases as f64 / secs.max(1e-9),
        c.divergent,
        c.violations,
        c.backend_failures
    )
}
