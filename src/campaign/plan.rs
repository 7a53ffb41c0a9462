//! What a campaign runs: its plan (which backends, and why) and its
//! configuration.

use super::*;

/// Which backends a campaign runs, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// In each group every trace is compared against the first's.
    pub groups: Vec<Vec<String>>,
    pub why: String,
}

impl Plan {
    pub fn describe(&self) -> String {
        let groups: Vec<String> = self.groups.iter().map(|g| g.join(" vs ")).collect();
        format!("{} ({})", groups.join("; "), self.why)
    }
}

/// The plan with no `--backend`: each model profile against its CPython
/// when model backends open (eager tasks too, from 3.12), else every
/// discovered CPython against the oldest (cross-version), else the one
/// CPython alone (invariants only).
pub fn default_plan() -> Result<Plan, String> {
    let versions = discover::versions();
    if versions.is_empty() {
        return Err(
            "error: no CPython 3.11 or later found under pyenv or on PATH; install one \
                    (`pyenv install 3.12`) or name backends with --backend"
                .to_string(),
        );
    }
    let mut pairs = Vec::new();
    let mut model_error = None;
    for (a, b) in &versions {
        // Eager tasks start a task's first step inside create_task, a
        // different schedule with bugs of its own: a profile of its own.
        let variants: &[&str] = if (*a, *b) >= (3, 12) {
            &["", "+eager"]
        } else {
            &[""]
        };
        for v in variants {
            let model = format!("model:{a}.{b}{v}");
            match Spec::parse(&model).and_then(|s| backend::open(&s)) {
                Ok(_) => pairs.push(vec![model, format!("cpython:{a}.{b}{v}")]),
                Err(e) => {
                    model_error.get_or_insert(e);
                }
            }
        }
    }
    if !pairs.is_empty() {
        return Ok(Plan {
            groups: pairs,
            why: "model backends open: each model profile (eager tasks included) is diffed \
                  against the CPython it models, and every trace is checked by the invariants"
                .to_string(),
        });
    }
    let cpythons: Vec<String> = versions
        .iter()
        .map(|(a, b)| format!("cpython:{a}.{b}"))
        .collect();
    let reason = model_error.unwrap_or_default();
    let why = if cpythons.len() > 1 {
        format!(
            "cross-version: model backends do not open ({reason}), so every discovered CPython is \
             diffed against {} and every trace is checked by the invariants",
            cpythons[0]
        )
    } else {
        format!(
            "one interpreter: model backends do not open ({reason}) and only one CPython was \
             found, so its traces are only checked by the invariants"
        )
    };
    Ok(Plan {
        groups: vec![cpythons],
        why,
    })
}

/// A campaign's settings, as the command line gives them (`None`: default,
/// or on `--resume` the state file's).
#[derive(Clone, Debug)]
pub struct Config {
    /// Empty: the default plan.
    pub backends: Vec<String>,
    pub seed: Option<u64>,
    /// Stop when case numbers reach this (counted from case 0, across resumes).
    pub cases: Option<u64>,
    /// Stop after this many seconds of this session.
    pub time: Option<f64>,
    pub jobs: Option<usize>,
    pub size: Option<usize>,
    pub out: PathBuf,
    pub resume: bool,
    /// Redraw a status line on stderr.
    pub tty: bool,
    /// Print nothing on stderr.
    pub quiet: bool,
    /// Most candidate runs per minimization.
    pub max_tests: usize,
}

impl Config {
    pub fn new(out: impl Into<PathBuf>) -> Config {
        Config {
            backends: Vec::new(),
            seed: None,
            cases: None,
            time: None,
            jobs: None,
            size: None,
            out: out.into(),
            resume: false,
            tty: false,
            quiet: true,
            max_tests: Budget::default().max_tests,
        }
    }
}
