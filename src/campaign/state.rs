//! `DIR/campaign.json`: where a campaign stands, written atomically every
//! few seconds and at the end, so that `--resume` continues from it.

use super::bundle::{self, FindingKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "campaign.json";

/// Case counts. A case is counted once, whatever number of backends or
/// groups it ran on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub cases: u64,
    /// Cases where some backends disagreed (not counting known gaps).
    pub divergent: u64,
    /// Cases where the model and CPython differed only by a known gap.
    #[serde(default)]
    pub known_gap: u64,
    /// Cases whose only violations a known CPython bug explains.
    #[serde(default)]
    pub known_bug: u64,
    /// Cases where some trace broke an invariant.
    pub violating: u64,
    /// Invariant violations in all (one case can have several).
    pub violations: u64,
    /// Cases skipped because a backend hung or crashed on them.
    pub backend_failures: u64,
    pub hung: u64,
    pub crashed: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.cases += o.cases;
        self.divergent += o.divergent;
        self.known_gap += o.known_gap;
        self.known_bug += o.known_bug;
        self.violating += o.violating;
        self.violations += o.violations;
        self.backend_failures += o.backend_failures;
        self.hung += o.hung;
        self.crashed += o.crashed;
    }
}

/// One distinct finding (signature) of the campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub signature: String,
    pub slug: String,
    pub kind: FindingKind,
    pub backends: Vec<String>,
    /// The case whose program the bundle holds, if a campaign found it.
    pub case: Option<u64>,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub minimized: bool,
    /// Cases with this signature, in the sessions that saw it.
    pub hits: u64,
    /// Seconds into the campaign (all sessions) when it was first seen;
    /// `None` for a bundle an earlier campaign left in the directory.
    pub first_secs: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub seed: u64,
    pub size: usize,
    /// Backend groups: in each, every trace is compared against the first's.
    pub groups: Vec<Vec<String>>,
    /// Every case below this one has run and is counted in `counts`.
    pub next_case: u64,
    pub counts: Counts,
    /// Seconds spent over all sessions.
    pub elapsed_secs: f64,
    pub findings: Vec<Record>,
}

pub fn path(out: &Path) -> PathBuf {
    out.join(FILE)
}

pub fn load(out: &Path) -> Result<State, String> {
    let p = path(out);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| format!("error: cannot resume: cannot read {}: {e}", p.display()))?;
    let s: State = serde_json::from_str(&text).map_err(|e| {
        format!(
            "error: cannot resume: {} is not a campaign state file: {e}",
            p.display()
        )
    })?;
    if s.format != 1 {
        return Err(format!(
            "error: cannot resume: {} has format {}, this canceltree reads 1",
            p.display(),
            s.format
        ));
    }
    Ok(s)
}

pub fn save(out: &Path, s: &State) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_string_pretty(s).map_err(std::io::Error::other)?;
    bundle::write_atomic(&path(out), (json + "\n").as_bytes())
}
