//! Debian packages without root: apt runs with its lists and cache in a scratch directory, resolves what the image
//! lacks with a simulated install against the image's own dpkg database, downloads those packages and unpacks them
//! under the prefix. Maintainer scripts do not run, which suits tools and libraries (most of what agents ask for),
//! not daemons.

use std::path::Path;

use super::plan::Step;

fn options(scratch: &Path) -> Vec<String> {
    let s = scratch.display();
    vec![
        "-o".into(),
        format!("Dir::State::Lists={s}/apt/lists"),
        "-o".into(),
        format!("Dir::Cache={s}/apt/cache"),
        "-o".into(),
        "Debug::NoLocking=1".into(),
        "-q".into(),
    ]
}

/// The directories apt needs to exist under `scratch` before it runs.
pub fn scratch_dirs(scratch: &Path) -> Vec<std::path::PathBuf> {
    vec![
        scratch.join("apt/lists/partial"),
        scratch.join("apt/cache/archives/partial"),
        scratch.join("apt/debs"),
    ]
}

/// `apt-get update` into the scratch lists.
pub fn update(scratch: &Path) -> Step {
    let mut args = options(scratch);
    args.push("update".into());
    Step {
        manager: "apt",
        program: "apt-get".into(),
        args,
        env: vec![],
    }
}

/// A simulated install of `packages`: its output lists every package the image lacks.
pub fn simulate(scratch: &Path, packages: &[String]) -> Step {
    let mut args = options(scratch);
    args.extend([
        "install".into(),
        "--simulate".into(),
        "--no-install-recommends".into(),
    ]);
    args.extend(packages.iter().cloned());
    Step {
        manager: "apt",
        program: "apt-get".into(),
        args,
        env: vec![],
    }
}

/// The packages a simulated install would unpack (its `Inst` lines).
pub fn to_unpack(simulation: &str) -> Vec<String> {
    simulation
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Downloads `packages` into the current directory.
pub fn download(scratch: &Path, packages: &[String]) -> Step {
    let mut args = options(scratch);
    args.push("download".into());
    args.extend(packages.iter().cloned());
    Step {
        manager: "apt",
        program: "apt-get".into(),
        args,
        env: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulation_names_the_packages_to_unpack() {
        let out = "NOTE: This is only a simulation!\n\
                   Reading package lists...\n\
                   Inst libonig5 (6.9.8-1 Debian:12.5/stable [amd64])\n\
                   Inst libjq1 [1.6-2] (1.6-2.1 Debian:12.5/stable [amd64])\n\
                   Inst jq (1.6-2.1 Debian:12.5/stable [amd64])\n\
                   Conf libonig5 (6.9.8-1 Debian:12.5/stable [amd64])\n";
        assert_eq!(to_unpack(out), ["libonig5", "libjq1", "jq"]);
        assert!(to_unpack("0 upgraded, 0 newly installed").is_empty());
    }

    #[test]
    fn apt_keeps_its_state_in_the_scratch_directory() {
        let step = simulate(Path::new("/tmp/s"), &["jq".into()]);
        let line = step.args.join(" ");
        assert!(line.contains("Dir::State::Lists=/tmp/s/apt/lists"), "{line}");
        assert!(line.contains("Dir::Cache=/tmp/s/apt/cache"), "{line}");
        assert!(
            line.ends_with("install --simulate --no-install-recommends jq"),
            "{line}"
        );
    }
}
