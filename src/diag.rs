//! Error reports with a source position, rendered like rustc: every problem
//! in a `.ct` file (malformed text, bad shape, a static check) becomes one
//! `Diagnostic` that says where it is and how to fix it.

use std::fmt;

/// One error at `file:line:col` (1-based; `line == 0` means "no position").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    /// What is wrong and how to fix it, in one sentence or two.
    pub message: String,
    /// Extra advice shown after the snippet, e.g. the form's usage.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &str, line: u32, col: u32, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line,
            col,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// The rustc-style report: message, location, the source line with a
    /// caret under the column, then the help line if any.
    ///
    /// ```text
    /// error: `a` is not bound ...
    ///  --> prog.ct:3:10
    ///   |
    /// 3 |   (await a))
    ///   |          ^
    ///   = help: ...
    /// ```
    pub fn render(&self, source: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        let line_text = if self.line == 0 {
            None
        } else {
            source.split('\n').nth(self.line as usize - 1)
        };
        let width = self.line.to_string().len();
        let pad = " ".repeat(width);
        out.push_str(&format!(
            "{pad}--> {}:{}:{}\n",
            self.file, self.line, self.col
        ));
        if let Some(text) = line_text {
            let text = text.strip_suffix('\r').unwrap_or(text);
            // Show control characters visibly so the terminal is not affected.
            let shown: String = text
                .chars()
                .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
                .collect();
            // The caret keeps the tabs of the text before it so it lines up.
            let caret_pad: String = text
                .chars()
                .take(self.col.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("{pad} |\n"));
            out.push_str(&format!("{} | {}\n", self.line, shown));
            out.push_str(&format!("{pad} | {caret_pad}^\n"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    /// One line: `file:line:col: error: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_puts_the_caret_under_the_column() {
        let d = Diagnostic::new("p.ct", 2, 5, "bad").with_help("fix it");
        let r = d.render("(a)\n  (sleep x)\n");
        assert_eq!(
            r,
            "error: bad\n --> p.ct:2:5\n  |\n2 |   (sleep x)\n  |     ^\n  = help: fix it\n"
        );
    }

    #[test]
    fn display_is_one_line_with_the_position() {
        let d = Diagnostic::new("p.ct", 12, 3, "bad");
        assert_eq!(d.to_string(), "p.ct:12:3: error: bad");
    }

    #[test]
    fn render_without_a_source_line_still_gives_the_location() {
        let d = Diagnostic::new("p.ct", 9, 1, "bad");
        assert_eq!(d.render("x"), "error: bad\n --> p.ct:9:1\n");
    }
}
