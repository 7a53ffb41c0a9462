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

/// `[12s] 2345 cases 190/s | divergences 45 (3 distinct) | violations 0 (0 distinct) | backend failures 0 (0 distinct crashes) | known: model gaps 12 (4 distinct), CPython bugs 2 (1 distinct)`;
/// `distinct` counts divergences, violations, crashes, known model gaps
/// and known CPython bugs.
pub fn status_line(c: &Counts, distinct: [usize; 5], secs: f64) -> String {
    let [div, viol, crash, gap, bug] = distinct;
    format!(
        "[{secs:.0}s] {} cases {:.0}/s | divergences {} ({div} distinct) | violations {} ({viol} distinct) | backend failures {} ({crash} distinct crashes) | known: model gaps {} ({gap} distinct), CPython bugs {} ({bug} distinct)",
        c.cases,
        c.cases as f64 / secs.max(1e-9),
        c.divergent,
        c.violations,
        c.backend_failures,
        c.known_gap,
        c.known_bug
    )
}
