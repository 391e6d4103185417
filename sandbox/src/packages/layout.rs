//! Where each package manager installs under the prefix, and the shell variables that make the installs usable.

use std::path::{Path, PathBuf};

/// The directories under one install prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The prefix (an emptyDir shared by the init container and the sandbox container).
    pub prefix: PathBuf,
}

impl Layout {
    /// The layout under `prefix`.
    pub fn new(prefix: impl Into<PathBuf>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `pip install --target` directory.
    pub fn python(&self) -> PathBuf {
        self.prefix.join("python")
    }
    /// `npm install --global --prefix` directory.
    pub fn npm(&self) -> PathBuf {
        self.prefix.join("npm")
    }
    /// `cargo install --root` directory.
    pub fn cargo(&self) -> PathBuf {
        self.prefix.join("cargo")
    }
    /// `GOBIN` of `go install`.
    pub fn go_bin(&self) -> PathBuf {
        self.prefix.join("go/bin")
    }
    /// `gem install --install-dir` directory.
    pub fn gem(&self) -> PathBuf {
        self.prefix.join("gem")
    }
    /// The root apt packages are unpacked into.
    pub fn apt_root(&self) -> PathBuf {
        self.prefix.join("apt")
    }

    fn path_dirs(&self) -> Vec<PathBuf> {
        let apt = self.apt_root();
        vec![
            self.python().join("bin"),
            self.npm().join("bin"),
            self.cargo().join("bin"),
            self.go_bin(),
            self.gem().join("bin"),
            apt.join("usr/local/bin"),
            apt.join("usr/bin"),
            apt.join("bin"),
        ]
    }

    fn library_dirs(&self) -> Vec<PathBuf> {
        let apt = self.apt_root();
        let mut dirs = Vec::new();
        for base in [apt.join("usr/lib"), apt.join("lib")] {
            // The multiarch directories (x86_64-linux-gnu, aarch64-linux-gnu, ...) hold most libraries.
            if let Ok(entries) = std::fs::read_dir(&base) {
                let mut arch: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_dir()
                            && p.file_name()
                                .is_some_and(|n| n.to_string_lossy().ends_with("-linux-gnu"))
                    })
                    .collect();
                arch.sort();
                dirs.extend(arch);
            }
            dirs.push(base);
        }
        dirs
    }

    /// The variables the sandbox shell gets: each existing directory of the layout prepended to the value in
    /// `current` (the daemon's own environment), so the image's settings still apply after the packages'.
    pub fn shell_env(&self, current: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let gem = self.gem();
        let wanted: [(&str, Vec<PathBuf>); 5] = [
            ("PATH", self.path_dirs()),
            ("PYTHONPATH", vec![self.python()]),
            ("NODE_PATH", vec![self.npm().join("lib/node_modules")]),
            ("GEM_PATH", vec![gem]),
            ("LD_LIBRARY_PATH", self.library_dirs()),
        ];
        wanted
            .into_iter()
            .filter_map(|(var, dirs)| {
                let existing: Vec<String> = dirs
                    .iter()
                    .filter(|d| Path::new(d).is_dir())
                    .map(|d| d.display().to_string())
                    .collect();
                if existing.is_empty() {
                    return None;
                }
                let mut value = existing.join(":");
                if let Some(rest) = current(var).filter(|v| !v.is_empty()) {
                    value = format!("{value}:{rest}");
                }
                Some((var.to_owned(), value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_that_exist_are_prepended_to_the_images_values() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert!(
            layout.shell_env(|_| Some("/usr/bin".into())).is_empty(),
            "nothing installed, nothing changed"
        );

        std::fs::create_dir_all(layout.python().join("bin")).unwrap();
        std::fs::create_dir_all(layout.apt_root().join("usr/lib/x86_64-linux-gnu")).unwrap();
        let env = layout.shell_env(|var| (var == "PATH").then(|| "/usr/local/bin:/usr/bin".into()));
        let get = |var: &str| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone());
        let p = dir.path().display();
        assert_eq!(
            get("PATH").unwrap(),
            format!("{p}/python/bin:/usr/local/bin:/usr/bin")
        );
        assert_eq!(get("PYTHONPATH").unwrap(), format!("{p}/python"));
        assert_eq!(
            get("LD_LIBRARY_PATH").unwrap(),
            format!("{p}/apt/usr/lib/x86_64-linux-gnu:{p}/apt/usr/lib")
        );
        assert_eq!(get("NODE_PATH"), None);
    }
}
