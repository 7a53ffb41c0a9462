//! The atoms inside a form: names, times, values, exception classes and
//! messages, read one at a time with errors that quote the form's usage.
//!
//! Also the table of form names and their usages, and the name rules, which
//! the lowering, the generator and the docs all share.

use super::reader::{Atom, SExprs};
use crate::ast::{Catch, CatchClass, ExcClass, Kind, Pos, Time, Value, WaitWhen};
use crate::diag::Diagnostic;

/// Every form name with its usage line, as documented in docs/FORMAT.md.
pub const FORMS: &[(&str, &str)] = &[
    ("sleep", "(sleep T)"),
    ("block", "(block T)"),
    ("return", "(return [V])"),
    ("raise", "(raise E [\"msg\"])"),
    ("spawn", "(spawn NAME [:weak | :keep | :in GROUP] BODY...)"),
    ("await", "(await NAME)"),
    ("cancel", "(cancel NAME [\"msg\"])"),
    ("cancel-self", "(cancel-self [\"msg\"])"),
    ("uncancel", "(uncancel [NAME])"),
    ("cancelling", "(cancelling [NAME])"),
    ("done", "(done NAME)"),
    ("cancelled", "(cancelled NAME)"),
    ("future", "(future NAME)"),
    ("resolve", "(resolve NAME V)"),
    ("fail", "(fail NAME E [\"msg\"])"),
    ("gather", "(gather [:return-exceptions] AW...)"),
    ("ref", "(ref NAME)"),
    ("do", "(do BODY...)"),
    ("shield", "(shield AW)"),
    ("wait-for", "(wait-for T AW), T may be none"),
    ("let", "(let NAME (gather ...)) or (let NAME (shield ...))"),
    ("timeout", "(timeout T BODY...), T may be none"),
    ("taskgroup", "(taskgroup NAME BODY...)"),
    (
        "wait",
        "(wait [:first-completed | :first-exception | :all-completed] [:timeout T] (ref NAME)...)",
    ),
    ("as-completed", "(as-completed [:timeout T] (ref NAME)...)"),
    (
        "try",
        "(try BODY... (except E BODY...)... [(finally BODY...)])",
    ),
    ("except", "(except E BODY...) or (except (group E) BODY...)"),
    ("finally", "(finally BODY...)"),
    ("reraise", "(reraise)"),
    ("call-soon", "(call-soon STMT)"),
    ("call-later", "(call-later T STMT)"),
    ("gc", "(gc)"),
    ("forget", "(forget NAME)"),
    ("main", "(main BODY...)"),
];

pub fn usage(form: &str) -> &'static str {
    FORMS
        .iter()
        .find(|(n, _)| *n == form)
        .map(|(_, u)| *u)
        .unwrap_or("")
}

const PY_KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

/// Names the generated Python needs for itself, or that are `.ct` values.
/// Values, and the module and helper names the generated Python refers to
/// from inside coroutines (src/pygen.rs), where a program's local would
/// shadow them.
pub const RESERVED: &[&str] = &[
    "asyncio", "gc", "time", "sys", "main", "none", "true", "false", "future", "named", "keep",
];

/// Whether `name` matches `[a-z][a-z0-9_]*`.
fn shaped(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why `name` cannot name a task, future or group, or `Ok` if it can.
pub fn name_error(name: &str) -> Result<(), String> {
    if !shaped(name) {
        let lower: String = name
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let usable =
            shaped(&lower) && !PY_KEYWORDS.contains(&&*lower) && !RESERVED.contains(&&*lower);
        let hint = if usable {
            format!(", e.g. `{lower}`")
        } else {
            String::new()
        };
        return Err(format!(
            "`{name}` is not a valid name: a name starts with a lowercase letter and has only \
             lowercase letters, digits and `_`; rename it{hint}"
        ));
    }
    if PY_KEYWORDS.contains(&name) {
        return Err(format!(
            "`{name}` is a Python keyword and cannot be a name; rename it, e.g. `{name}_`"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "`{name}` is reserved (it is a value or a name the generated Python uses); \
             rename it, e.g. `{name}_`"
        ));
    }
    Ok(())
}

pub fn is_valid_name(name: &str) -> bool {
    name_error(name).is_ok()
}

/// The form name closest to `word`, if it is a plausible typo.
pub fn suggest(word: &str) -> Option<&'static str> {
    let best = FORMS
        .iter()
        .map(|(n, _)| (edit_distance(word, n), *n))
        .min_by_key(|(d, _)| *d)?;
    (best.0 <= 2 && best.0 < word.len()).then_some(best.1)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            let sub = prev + usize::from(ca != b[j]);
            row[j + 1] = sub.min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

pub const EXC_LIST: &str = "ValueError, KeyError, RuntimeError, TypeError, TimeoutError, \
                            CancelledError, KeyboardInterrupt or E1..E9";

/// A cursor over the arguments of one form (the children after its head).
pub struct Args<'a> {
    pub s: &'a SExprs,
    pub file: &'a str,
    pub form: &'static str,
    pub next: u32,
    pub end: u32,
    /// The form's `)`, where missing arguments are reported.
    pub close: Pos,
}

impl<'a> Args<'a> {
    pub fn err_at(&self, p: Pos, msg: String) -> Diagnostic {
        Diagnostic::new(self.file, p.line, p.col, msg)
            .with_help(format!("usage: {}", usage(self.form)))
    }

    pub fn err(&self, i: u32, msg: String) -> Diagnostic {
        self.err_at(self.s.node(i).pos, msg)
    }

    fn missing(&self, what: &str) -> Diagnostic {
        self.err_at(
            self.close,
            format!("`{}` is missing {what} here", self.form),
        )
    }

    pub fn peek(&self) -> Option<u32> {
        (self.next < self.end).then_some(self.next)
    }

    pub fn take(&mut self) -> Option<u32> {
        let i = self.peek()?;
        self.next = self.s.end(i);
        Some(i)
    }

    /// The number of arguments not yet taken.
    pub fn remaining(&self) -> usize {
        let mut n = 0;
        let mut i = self.next;
        while i < self.end {
            n += 1;
            i = self.s.end(i);
        }
        n
    }

    /// Takes the keyword `kw` if it is next.
    pub fn flag(&mut self, kw: &str) -> bool {
        if self.peek().and_then(|i| self.s.sym(i)) == Some(kw) {
            self.take();
            true
        } else {
            false
        }
    }

    pub fn name(&mut self, what: &str) -> Result<(String, Pos), Diagnostic> {
        let Some(i) = self.take() else {
            return Err(self.missing(&format!("{what} name")));
        };
        let p = self.s.node(i).pos;
        match self.s.sym(i) {
            Some(n) if !n.starts_with(':') => match name_error(n) {
                Ok(()) => Ok((n.to_string(), p)),
                Err(m) => Err(self.err(i, m)),
            },
            _ => Err(self.err(
                i,
                format!(
                    "`{}` expects {what} name here, found {}",
                    self.form,
                    self.s.describe(i)
                ),
            )),
        }
    }

    /// An optional name: taken when the next argument is a plain symbol.
    pub fn opt_name(&mut self, what: &str) -> Result<Option<(String, Pos)>, Diagnostic> {
        match self.peek() {
            None => Ok(None),
            Some(_) => self.name(what).map(Some),
        }
    }

    pub fn time(&mut self) -> Result<Time, Diagnostic> {
        // `opt_time(false)` never yields `None`; stay panic-free regardless.
        self.opt_time(false)?
            .ok_or_else(|| self.missing("a time in seconds"))
    }

    /// A time; `none` is accepted (as `Ok(None)`) only when `allow_none`.
    pub fn opt_time(&mut self, allow_none: bool) -> Result<Option<Time>, Diagnostic> {
        let Some(i) = self.take() else {
            return Err(self.missing("a time in seconds"));
        };
        match &self.s.node(i).atom {
            Some(Atom::Int(n)) => Ok(Some(Time(*n as f64))),
            Some(Atom::Dec(d)) => Ok(Some(Time(*d))),
            Some(Atom::Sym(s)) if s == "none" && allow_none => Ok(None),
            _ => {
                let none = if allow_none { " or `none`" } else { "" };
                Err(self.err(
                    i,
                    format!(
                        "`{}` expects a time here (an integer or decimal number of seconds \
                         like `1` or `0.5`{none}), found {}",
                        self.form,
                        self.s.describe(i)
                    ),
                ))
            }
        }
    }

    pub fn value(&mut self) -> Result<Value, Diagnostic> {
        let Some(i) = self.take() else {
            return Err(self.missing("a value"));
        };
        match &self.s.node(i).atom {
            Some(Atom::Int(n)) => Ok(Value::Int(*n)),
            Some(Atom::Str(s)) => Ok(Value::Str(s.clone())),
            Some(Atom::Sym(s)) if s == "none" => Ok(Value::None),
            Some(Atom::Sym(s)) if s == "true" => Ok(Value::Bool(true)),
            Some(Atom::Sym(s)) if s == "false" => Ok(Value::Bool(false)),
            _ => Err(self.err(
                i,
                format!(
                    "`{}` expects a literal value here (an integer, a \"string\", none, true \
                     or false), found {}; to pass on a task's result, make the awaiting \
                     statement the last one instead",
                    self.form,
                    self.s.describe(i)
                ),
            )),
        }
    }

    pub fn exc(&mut self) -> Result<ExcClass, Diagnostic> {
        let Some(i) = self.take() else {
            return Err(self.missing("an exception class"));
        };
        match self.s.sym(i).and_then(ExcClass::from_name) {
            Some(e) => Ok(e),
            None => Err(self.err(
                i,
                format!(
                    "`{}` expects an exception class here, found {}; use one of {EXC_LIST}",
                    self.form,
                    self.s.describe(i)
                ),
            )),
        }
    }

    /// An optional message string.
    pub fn opt_msg(&mut self) -> Option<String> {
        if let Some(Some(Atom::Str(s))) = self.peek().map(|i| &self.s.node(i).atom) {
            let s = s.clone();
            self.take();
            Some(s)
        } else {
            None
        }
    }

    /// Fails if any argument is left.
    pub fn finish(&self) -> Result<(), Diagnostic> {
        match self.peek() {
            None => Ok(()),
            Some(i) => {
                let what = if self.s.is_list(i) {
                    "this form".to_string()
                } else {
                    self.s.describe(i)
                };
                Err(self.err(
                    i,
                    format!("`{}` takes no further arguments; remove {what}", self.form),
                ))
            }
        }
    }

    /// Fails if the next argument is a keyword (an unknown or misplaced option).
    pub fn no_more_options(&self, allowed: &str) -> Result<(), Diagnostic> {
        match self.peek().and_then(|i| self.s.sym(i).map(|k| (i, k))) {
            Some((i, k)) if k.starts_with(':') => Err(self.err(
                i,
                format!(
                    "unknown or misplaced option `{k}` for `{}`; it takes {allowed}",
                    self.form
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn wait_options(&mut self) -> Result<Kind, Diagnostic> {
        let mut when: Option<WaitWhen> = None;
        let mut timeout = None;
        let is_wait = self.form == "wait";
        while let Some(i) = self.peek() {
            let Some(k) = self.s.sym(i).filter(|k| k.starts_with(':')) else {
                break;
            };
            let w = match k {
                ":first-completed" => Some(WaitWhen::FirstCompleted),
                ":first-exception" => Some(WaitWhen::FirstException),
                ":all-completed" => Some(WaitWhen::AllCompleted),
                _ => None,
            };
            if let (Some(w), true) = (w, is_wait) {
                if when.is_some() {
                    return Err(self.err(i, format!("`wait` takes at most one of `:first-completed`, `:first-exception`, `:all-completed`; remove `{k}`")));
                }
                if timeout.is_some() {
                    return Err(self.err(i, format!("`{k}` must come before `:timeout`")));
                }
                when = Some(w);
                self.take();
            } else if k == ":timeout" {
                if timeout.is_some() {
                    return Err(self.err(i, "`:timeout` given twice; keep one".to_string()));
                }
                self.take();
                timeout = Some(self.time()?);
            } else {
                let opts = if is_wait {
                    "`:first-completed`, `:first-exception`, `:all-completed` and `:timeout T`"
                } else {
                    "`:timeout T`"
                };
                return Err(self.err(
                    i,
                    format!("unknown option `{k}` for `{}`; it takes {opts}", self.form),
                ));
            }
        }
        Ok(if is_wait {
            Kind::Wait {
                when: when.unwrap_or_default(),
                timeout,
            }
        } else {
            Kind::AsCompleted { timeout }
        })
    }

    /// The class of an except clause: `E`, `Exception`, `BaseException` or `(group E)`.
    pub fn catch(&mut self) -> Result<Catch, Diagnostic> {
        let s = self.s;
        let Some(i) = self.take() else {
            return Err(self.err_at(
                self.close,
                "`except` is missing the exception class to catch".into(),
            ));
        };
        let (star, c) = if s.is_list(i) {
            let mut kids = s.children(i);
            let head = kids.next();
            let class = kids.next();
            if head.and_then(|h| s.sym(h)) != Some("group")
                || class.is_none()
                || kids.next().is_some()
            {
                return Err(self.err(
                    i,
                    "write `(group E)` for Python's except*, e.g. (except (group ValueError) ...)"
                        .into(),
                ));
            }
            (true, class.unwrap_or(i))
        } else {
            (false, i)
        };
        let class = match s.sym(c) {
            Some("Exception") => Some(CatchClass::Exception),
            Some("BaseException") => Some(CatchClass::BaseException),
            Some(n) => ExcClass::from_name(n).map(CatchClass::Class),
            None => None,
        };
        match class {
            Some(class) => Ok(Catch { class, star }),
            None => Err(self.err(
                c,
                format!(
                    "`except` expects an exception class, found {}; use Exception, \
                     BaseException, {}",
                    s.describe(c),
                    EXC_LIST
                ),
            )),
        }
    }

    /// Requires exactly one remaining argument, a form, and returns it.
    pub fn exactly_one_form(&self, what: &str) -> Result<u32, Diagnostic> {
        let Some(i) = self.peek() else {
            return Err(self.missing(what));
        };
        let next = self.s.end(i);
        if next < self.end {
            let msg = format!(
                "`{}` takes exactly one {what}; remove this extra one",
                self.form
            );
            return Err(self.err(next, msg));
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert!(is_valid_name("a"));
        assert!(is_valid_name("worker_2"));
        for bad in ["A", "2a", "a-b", "", "class", "asyncio", "none", "_a"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(name_error("Foo").unwrap_err().contains("`foo`"));
    }

    #[test]
    fn typos_get_suggestions() {
        assert_eq!(suggest("slep"), Some("sleep"));
        assert_eq!(suggest("cancelself"), Some("cancel-self"));
        assert_eq!(suggest("xyzzyq"), None);
    }
}
