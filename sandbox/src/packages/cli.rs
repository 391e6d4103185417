//! `corral-sandbox install-packages`: installs the Environment's packages into the prefix (the sandbox pod's
//! `install-packages` init container). On failure the reason goes to the pod's termination message, which the
//! operator shows in the Session's `SandboxReady` condition.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use clap::Parser;
use corral_sandbox_protocol::pod::vars;

use super::{Layout, PackageLists, apt, plan};

/// Installs an Environment's packages into a prefix directory.
#[derive(Parser, Debug)]
#[command(name = "corral-sandbox install-packages", version)]
pub struct InstallArgs {
    /// The packages, as the Environment's `config.packages` JSON.
    #[arg(long, env = vars::PACKAGES)]
    pub packages: String,
    /// The install prefix, shared with the sandbox container.
    #[arg(
        long,
        env = vars::PACKAGES_DIR,
        default_value = "/opt/corral/packages"
    )]
    pub prefix: PathBuf,
    /// Scratch space for caches and package lists.
    #[arg(
        long,
        env = vars::PACKAGES_SCRATCH,
        default_value = "/tmp/corral-packages"
    )]
    pub scratch: PathBuf,
    /// Where a failure's reason is written for Kubernetes to report.
    #[arg(long, default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,
}

/// The egress CA bundle's variables, when the pod trusts an egress CA (set once at the start).
static TRUST_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// The most bytes of output a failure's reason quotes (Kubernetes keeps 4 KiB of a termination message).
const QUOTED_OUTPUT: usize = 2048;

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `step` (printing what it does and what it said); its stdout on success, the reason on failure.
fn run(step: &plan::Step, cwd: &Path) -> Result<String, String> {
    println!("==> {}: {} {}", step.manager, step.program, step.args.join(" "));
    let out = Command::new(&step.program)
        .args(&step.args)
        .envs(
            TRUST_ENV
                .get()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .envs(step.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "the sandbox image has no `{}`, which packages.{} needs",
                step.program, step.manager
            ),
            _ => format!(
                "could not run `{}` for packages.{}: {e}",
                step.program, step.manager
            ),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    print!("{stdout}");
    eprint!("{stderr}");
    if out.status.success() {
        return Ok(stdout);
    }
    let said = if stderr.trim().is_empty() {
        &stdout
    } else {
        &stderr
    };
    Err(format!(
        "installing packages.{} failed ({}): {}",
        step.manager,
        out.status,
        tail(said.trim(), QUOTED_OUTPUT)
    ))
}

fn install_apt(packages: &[String], layout: &Layout, scratch: &Path) -> Result<(), String> {
    for dir in apt::scratch_dirs(scratch) {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    run(&apt::update(scratch), scratch)?;
    let simulation = run(&apt::simulate(scratch, packages), scratch)?;
    let names = apt::to_unpack(&simulation);
    if names.is_empty() {
        println!("==> apt: everything asked for is in the image already");
        return Ok(());
    }
    let debs = scratch.join("apt/debs");
    run(&apt::download(scratch, &names), &debs)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&debs)
        .map_err(|e| format!("listing {}: {e}", debs.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    files.sort();
    let root = layout.apt_root();
    for file in files {
        let step = plan::Step {
            manager: "apt",
            program: "dpkg-deb".into(),
            args: vec![
                "-x".into(),
                file.display().to_string(),
                root.display().to_string(),
            ],
            env: vec![],
        };
        run(&step, scratch)?;
    }
    Ok(())
}

fn install(args: &InstallArgs) -> Result<(), String> {
    let lists: PackageLists = serde_json::from_str(&args.packages)
        .map_err(|e| format!("the packages setting is not valid JSON of config.packages: {e}"))?;
    lists.validate()?;
    if lists.is_empty() {
        println!("==> no packages to install");
        return Ok(());
    }
    let layout = Layout::new(&args.prefix);
    for dir in [&args.prefix, &args.scratch] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    if let Ok(ca) = std::env::var(vars::EGRESS_CA) {
        let env = crate::trust::install(&ca, &args.scratch.join("ca"))
            .map_err(|e| format!("writing the egress CA bundle: {e}"))?;
        let _ = TRUST_ENV.set(env);
    }
    if !lists.apt.is_empty() {
        install_apt(&lists.apt, &layout, &args.scratch)?;
    }
    for step in plan::steps(&lists, &layout, &args.scratch) {
        run(&step, &args.scratch)?;
    }
    println!("==> packages installed into {}", args.prefix.display());
    Ok(())
}

/// Entry point of the `install-packages` subcommand (`argv` includes the program name and the subcommand).
pub fn main(argv: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match InstallArgs::try_parse_from(argv.into_iter().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match install(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("corral-sandbox install-packages: {reason}");
            // Best effort: outside Kubernetes there is no termination log.
            let _ = std::fs::write(&args.termination_log, &reason);
            ExitCode::FAILURE
        }
    }
}
