//! The commands that install an Environment's packages (pure: lists and layout in, commands out).

use serde::Deserialize;

use super::Layout;

/// The Environment's `config.packages`, as the operator passes it (the CRD's JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageLists {
    /// Debian packages.
    #[serde(default)]
    pub apt: Vec<String>,
    /// Rust crates.
    #[serde(default)]
    pub cargo: Vec<String>,
    /// Ruby gems.
    #[serde(default)]
    pub gem: Vec<String>,
    /// Go packages (`module/path@version`; `@latest` when no version is given).
    #[serde(default)]
    pub go: Vec<String>,
    /// npm packages.
    #[serde(default)]
    pub npm: Vec<String>,
    /// Python packages.
    #[serde(default)]
    pub pip: Vec<String>,
}

/// One package manager run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The manager's name as in `config.packages` (`pip`, `npm`, ...).
    pub manager: &'static str,
    /// The program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl PackageLists {
    /// Whether nothing is to be installed.
    pub fn is_empty(&self) -> bool {
        self.managers().iter().all(|(_, list)| list.is_empty())
    }

    fn managers(&self) -> [(&'static str, &Vec<String>); 6] {
        [
            ("apt", &self.apt),
            ("cargo", &self.cargo),
            ("gem", &self.gem),
            ("go", &self.go),
            ("npm", &self.npm),
            ("pip", &self.pip),
        ]
    }

    /// Refuses entries a package manager would read as an option or that hold whitespace.
    pub fn validate(&self) -> Result<(), String> {
        for (manager, list) in self.managers() {
            for entry in list {
                if entry.is_empty() || entry.starts_with('-') || entry.chars().any(char::is_whitespace) {
                    return Err(format!(
                        "packages.{manager} entry {entry:?} is not a package: it must be non-empty, without \
                         whitespace, and must not start with '-'"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The runs for every manager but apt (see [`super::apt`]), in a fixed order. `scratch` is a writable directory
/// for caches and homes.
pub fn steps(lists: &PackageLists, layout: &Layout, scratch: &std::path::Path) -> Vec<Step> {
    let scratch = scratch.display();
    let mut out = Vec::new();
    if !lists.pip.is_empty() {
        let mut args = strings(&[
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--target",
        ]);
        args.push(layout.python().display().to_string());
        args.extend(lists.pip.iter().cloned());
        out.push(Step {
            manager: "pip",
            program: "python3".into(),
            args,
            env: vec![],
        });
    }
    if !lists.npm.is_empty() {
        let mut args = strings(&["install", "--global", "--no-fund", "--no-audit", "--prefix"]);
        args.push(layout.npm().display().to_string());
        args.extend(lists.npm.iter().cloned());
        let env = vec![("npm_config_cache".to_owned(), format!("{scratch}/npm-cache"))];
        out.push(Step {
            manager: "npm",
            program: "npm".into(),
            args,
            env,
        });
    }
    if !lists.cargo.is_empty() {
        let mut args = strings(&["install", "--locked", "--root"]);
        args.push(layout.cargo().display().to_string());
        args.extend(lists.cargo.iter().cloned());
        let env = vec![("CARGO_HOME".to_owned(), format!("{scratch}/cargo-home"))];
        out.push(Step {
            manager: "cargo",
            program: "cargo".into(),
            args,
            env,
        });
    }
    if !lists.go.is_empty() {
        let mut args = strings(&["install"]);
        args.extend(lists.go.iter().map(|p| {
            if p.contains('@') {
                p.clone()
            } else {
                format!("{p}@latest")
            }
        }));
        let env = vec![
            ("GOBIN".to_owned(), layout.go_bin().display().to_string()),
            ("GOPATH".to_owned(), format!("{scratch}/go")),
            ("GOCACHE".to_owned(), format!("{scratch}/go-cache")),
        ];
        out.push(Step {
            manager: "go",
            program: "go".into(),
            args,
            env,
        });
    }
    if !lists.gem.is_empty() {
        let mut args = strings(&["install", "--no-document", "--install-dir"]);
        args.push(layout.gem().display().to_string());
        args.push("--bindir".into());
        args.push(layout.gem().join("bin").display().to_string());
        args.extend(lists.gem.iter().cloned());
        out.push(Step {
            manager: "gem",
            program: "gem".into(),
            args,
            env: vec![],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(json: serde_json::Value) -> PackageLists {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_manager_installs_into_its_own_directory_of_the_prefix() {
        let l = lists(serde_json::json!({
            "pip": ["requests==2.32.0"], "npm": ["left-pad"], "cargo": ["ripgrep"],
            "go": ["golang.org/x/tools/cmd/stringer", "example.com/tool@v1.2.0"], "gem": ["rake"],
            "apt": ["jq"]
        }));
        let layout = Layout::new("/opt/corral/packages");
        let steps = steps(&l, &layout, std::path::Path::new("/tmp/s"));
        let line = |m: &str| {
            let s = steps.iter().find(|s| s.manager == m).unwrap();
            format!("{} {}", s.program, s.args.join(" "))
        };
        assert_eq!(
            line("pip"),
            "python3 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/corral/packages/python \
             requests==2.32.0"
        );
        assert_eq!(
            line("npm"),
            "npm install --global --no-fund --no-audit --prefix /opt/corral/packages/npm left-pad"
        );
        assert_eq!(
            line("cargo"),
            "cargo install --locked --root /opt/corral/packages/cargo ripgrep"
        );
        assert_eq!(
            line("go"),
            "go install golang.org/x/tools/cmd/stringer@latest example.com/tool@v1.2.0"
        );
        assert_eq!(
            line("gem"),
            "gem install --no-document --install-dir /opt/corral/packages/gem --bindir /opt/corral/packages/gem/bin rake"
        );
        assert!(
            steps.iter().all(|s| s.manager != "apt"),
            "apt has its own procedure"
        );
        let go = steps.iter().find(|s| s.manager == "go").unwrap();
        assert!(
            go.env
                .contains(&("GOBIN".into(), "/opt/corral/packages/go/bin".into()))
        );
    }

    #[test]
    fn option_like_or_blank_entries_are_refused_and_empty_lists_install_nothing() {
        assert!(
            lists(serde_json::json!({"pip": ["--index-url=http://evil"]}))
                .validate()
                .is_err()
        );
        assert!(lists(serde_json::json!({"npm": ["a b"]})).validate().is_err());
        assert!(lists(serde_json::json!({"apt": [""]})).validate().is_err());
        assert!(
            lists(serde_json::json!({"pip": ["requests>=2,<3"]}))
                .validate()
                .is_ok()
        );
        let empty = lists(serde_json::json!({"pip": [], "apt": []}));
        assert!(empty.is_empty());
        assert!(steps(&empty, &Layout::new("/p"), std::path::Path::new("/t")).is_empty());
    }
}
