//! Writes the CustomResourceDefinitions of `corral-api` as YAML, one file per kind, into `<root>/crds/` (plain
//! manifests for `kubectl apply`) and `<root>/charts/corral-crds/templates/` (the same, kept on `helm uninstall`).
//! `<root>` is the first argument (default `.`). `make generate` runs it; CI fails when the committed files differ.

use std::{fs, path::PathBuf};

use anyhow::Context as _;
use corral_operator::crds;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let plain = root.join("crds");
    let chart = root.join("charts/corral-crds/templates");
    for dir in [&plain, &chart] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for crd in crds::all() {
        let file = crds::file_name(&crd);
        let targets = [
            (plain.join(&file), crds::to_yaml(&crd)?),
            (chart.join(&file), crds::to_chart_template(&crd)?),
        ];
        for (path, yaml) in targets {
            fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
