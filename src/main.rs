//! The `canceltree` command line: run, export, gen, fuzz, repro, minimize,
//! check, explore, backends, bench and fingerprint.

use canceltree::ast::Program;
use canceltree::backend::{self, Backend, Spec};
use canceltree::trace::Trace;
use canceltree::{bench, generate, render, syntax};
use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canceltree",
    version,
    about = "Test suite and fuzzer for asyncio cancellation semantics"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a .ct program on one or more backends. One backend prints its
    /// trace; several print a side-by-side diff from the first difference.
    /// Exit 0 when they agree, 1 when they differ, 2 on bad input.
    Run {
        file: String,
        /// A backend spec, repeatable: cpython:3.12, cpython:3.13+eager,
        /// cpython:3.11+pytask, cpython:/path/to/python.
        #[arg(long = "backend", short = 'b', default_value = "cpython:3.12")]
        backends: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print a standalone Python script that runs the program on the same
    /// virtual-time loop and prints the same trace.
    Export {
        file: String,
        /// Tailor the script to a variant: +pytask blocks the C _asyncio
        /// module, +eager uses eager tasks.
        #[arg(long = "backend", short = 'b', default_value = "cpython:3.12")]
        backend: String,
    },
    /// Print a random well-formed program.
    Gen {
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Rough number of nodes.
        #[arg(long, default_value_t = 12)]
        size: usize,
    },
    /// The fuzz campaign (the main job): generated programs on sets of
    /// backends, traces diffed against the first backend's and checked by
    /// the invariants; each distinct failure is minimized and written as a
    /// bundle under --out. With no backends: each model profile against its
    /// CPython when the model is available, else every CPython cross-version.
    Fuzz {
        /// Seconds to run (default 60 when --cases is not given).
        #[arg(long)]
        time: Option<f64>,
        /// Stop when case numbers reach N (counted from 0 across --resume).
        #[arg(long)]
        cases: Option<u64>,
        /// Campaign seed: case i runs the program of seed S+i (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
        /// Parallel jobs (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// A backend spec, repeatable; every trace is compared against the first's.
        #[arg(long = "backend", short = 'b')]
        backends: Vec<String>,
        /// Where bundles and campaign.json go.
        #[arg(long, default_value = "findings")]
        out: String,
        /// Continue the campaign saved in OUT/campaign.json.
        #[arg(long)]
        resume: bool,
        /// Rough nodes per generated program (default 12).
        #[arg(long)]
        size: Option<usize>,
    },
    /// Rerun a finding bundle (a directory) or a .ct file on its backends
    /// (meta.json, or the file's `; backends:` line; --backend overrides).
    /// Exit 1 while it still fails, 0 once it passes, 2 on bad input.
    Repro {
        path: String,
        #[arg(long = "backend", short = 'b')]
        backends: Vec<String>,
    },
    /// Minimize a failing program by hand, preserving its failure's
    /// signature; prints the result.
    Minimize {
        file: String,
        #[arg(long = "backend", short = 'b')]
        backends: Vec<String>,
        /// Most candidate runs.
        #[arg(long, default_value_t = 5000)]
        max_tests: usize,
    },
    /// Run a program on each backend and check every invariant that holds
    /// for that backend's Python version. Exit 1 if any is violated.
    Check {
        file: String,
        #[arg(long = "backend", short = 'b', default_value = "cpython:3.12")]
        backends: Vec<String>,
    },
    /// Rerun a program once per cancel point (each task alive at each loop
    /// iteration boundary, cancelled there) and check every invariant on
    /// every run. Exit 1 if any is violated.
    Explore {
        file: String,
        #[arg(long = "backend", short = 'b', default_value = "cpython:3.12")]
        backend: String,
        /// Cancels injected per run: 1, or 2 for every ordered pair of points.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
        cancels: u32,
        /// Most runs to make; the rest are counted as skipped.
        #[arg(long, default_value_t = canceltree::explore::DEFAULT_MAX_RUNS)]
        max_runs: usize,
    },
    /// List the interpreters found and the backend specs they provide.
    Backends,
    /// Run the same generated programs on each backend and print programs/s,
    /// events/s and how much slower each is than the fastest.
    Bench {
        #[arg(long = "backend", short = 'b', default_value = "cpython:3.12")]
        backends: Vec<String>,
        #[arg(long, default_value_t = 10_000)]
        cases: usize,
        /// Rough nodes per program (10 is small, 50 medium).
        #[arg(long, default_value_t = 10)]
        size: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Benchmark these .ct files, cycled to make up --cases, instead of
        /// generated programs.
        files: Vec<String>,
    },
    /// Print one line per generated program with a hash of each backend's
    /// trace. Save it before a change and diff it after: the lines that
    /// differ name the programs (size, seed) whose traces the change moved.
    Fingerprint {
        /// Defaults to every model profile.
        #[arg(long = "backend", short = 'b')]
        backends: Vec<String>,
        #[arg(long, default_value_t = canceltree::fingerprint::DEFAULT_FIRST_SEED)]
        seed: u64,
        /// Programs per size, seeds from --seed on.
        #[arg(long, default_value_t = canceltree::fingerprint::DEFAULT_CASES)]
        cases: u64,
        #[arg(long = "size", default_values_t = canceltree::fingerprint::DEFAULT_SIZES)]
        sizes: Vec<usize>,
    },
}

/// Prints to stdout. A reader that went away (`canceltree run ... | head`)
/// ends the program quietly with the shell's code for a broken pipe, 141,
/// where `print!` would panic.
macro_rules! out {
    ($($t:tt)*) => { emit(format_args!($($t)*), false) };
}

macro_rules! outln {
    ($($t:tt)*) => { emit(format_args!($($t)*), true) };
}

fn emit(args: std::fmt::Arguments, newline: bool) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = r {
        stdout_failed(e);
    }
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("canceltree: cannot write to standard output: {e}");
    std::process::exit(2);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn load(file: &str) -> Result<Program, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("error: cannot read {file}: {e}"))?;
    syntax::parse(file, &text).map_err(|d| d.render(&text))
}

fn open_all(specs: &[String]) -> Result<Vec<Box<dyn Backend>>, String> {
    specs
        .iter()
        .map(|s| {
            Spec::parse(s)
                .and_then(|spec| backend::open(&spec))
                .map_err(|e| format!("error: {e}"))
        })
        .collect()
}

fn run(cmd: Cmd) -> Result<ExitCode, String> {
    match cmd {
        Cmd::Run {
            file,
            backends,
            format,
        } => {
            let program = load(&file)?;
            let mut opened = open_all(&backends)?;
            let traces: Vec<(String, Trace)> = opened
                .iter_mut()
                .map(|b| (b.name().to_string(), b.run(&program)))
                .collect();
            let refs: Vec<(&str, &Trace)> = traces.iter().map(|(n, t)| (n.as_str(), t)).collect();
            let labels = render::labels(&program);
            let differ = render::diff(&refs, &labels);
            match format {
                Format::Json => {
                    let runs: Vec<_> = traces
                        .iter()
                        .map(|(n, t)| serde_json::json!({ "backend": n, "trace": t }))
                        .collect();
                    let doc = if runs.len() == 1 {
                        runs[0]["trace"].clone()
                    } else {
                        serde_json::json!({ "agree": differ.is_none(), "runs": runs })
                    };
                    outln!("{doc}");
                }
                Format::Text => match &differ {
                    Some(d) => out!("{d}"),
                    None => {
                        if traces.len() > 1 {
                            outln!("all {} backends agree:", traces.len());
                        }
                        out!("{}", render::text(&traces[0].1, &labels));
                    }
                },
            }
            Ok(if differ.is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Export { file, backend } => {
            let program = load(&file)?;
            let spec = Spec::parse(&backend).map_err(|e| format!("error: {e}"))?;
            out!(
                "{}",
                backend::export_script(&program, &file, spec.pytask, spec.eager)
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gen { seed, size } => {
            out!("{}", syntax::print(&generate::program(seed, size)));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            backends,
            cases,
            size,
            seed,
            files,
        } => {
            let mut opened = open_all(&backends)?;
            let programs = if files.is_empty() {
                bench::programs(seed, cases, size)
            } else {
                let loaded = files
                    .iter()
                    .map(|f| load(f))
                    .collect::<Result<Vec<_>, _>>()?;
                loaded.iter().cycle().take(cases).cloned().collect()
            };
            let nodes: usize = programs.iter().map(|p| p.len()).sum();
            let from = if files.is_empty() {
                format!("generated from seed {seed}")
            } else {
                format!("from {} files", files.len())
            };
            outln!(
                "{} programs {from}, {:.1} nodes on average",
                programs.len(),
                nodes as f64 / programs.len().max(1) as f64
            );
            out!("{}", bench::report(&bench::measure(&mut opened, &programs)));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fingerprint {
            backends,
            seed,
            cases,
            sizes,
        } => {
            let specs = if backends.is_empty() {
                generate::MODEL_PROFILES.map(String::from).to_vec()
            } else {
                backends
            };
            let mut opened = open_all(&specs)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            canceltree::fingerprint::write(&mut opened, &sizes, seed, cases, &mut out)
                .and_then(|()| std::io::Write::flush(&mut out))
                .unwrap_or_else(|e| stdout_failed(e));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fuzz {
            time,
            cases,
            seed,
            jobs,
            backends,
            out,
            resume,
            size,
        } => {
            let mut cfg = canceltree::campaign::Config::new(out);
            cfg.backends = backends;
            (
                cfg.time, cfg.cases, cfg.seed, cfg.jobs, cfg.size, cfg.resume,
            ) = (time, cases, seed, jobs, size, resume);
            canceltree::campaign::cli::fuzz(cfg).map(ExitCode::from)
        }
        Cmd::Repro { path, backends } => {
            canceltree::campaign::cli::repro(&path, &backends).map(ExitCode::from)
        }
        Cmd::Minimize {
            file,
            backends,
            max_tests,
        } => canceltree::campaign::cli::minimize(&file, &backends, max_tests).map(ExitCode::from),
        Cmd::Check { file, backends } => canceltree::explore::check_cli(&load(&file)?, &backends),
        Cmd::Explore {
            file,
            backend,
            cancels,
            max_runs,
        } => canceltree::explore::explore_cli(&load(&file)?, &backend, cancels, max_runs),
        Cmd::Backends => {
            let found = backend::discover::all();
            if found.is_empty() {
                outln!("no CPython 3.11 or later found under pyenv or on PATH");
            }
            for f in &found {
                let (a, b, _) = f.version;
                let mut variants = vec![
                    format!("cpython:{a}.{b}"),
                    format!("cpython:{a}.{b}+pytask"),
                ];
                if (a, b) >= (3, 12) {
                    variants.push(format!("cpython:{a}.{b}+eager"));
                }
                outln!("CPython {:<8} {}", f.version_string(), f.path.display());
                outln!("  {}", variants.join("  "));
            }
            outln!("(cpython:3.X picks the newest 3.X listed; name any other as cpython:PATH)");
            Ok(ExitCode::SUCCESS)
        }
    }
}
