//! `corral skills`: a skill's directory uploaded, a new version, its versions listed, its archive downloaded, and
//! the skill deleted, against a gateway with real object storage (SeaweedFS), scoped to the key's namespace.

use std::process::Command;

use crate::{files::wait_for_storage, harness::Gateway, s3::S3Server, terminal::check_everywhere};

fn skill_dir(root: &std::path::Path, description: &str) -> std::path::PathBuf {
    let dir = root.join("csv-report");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: csv-report\ndescription: {description}\n---\n# Use\nRun scripts/run.sh.\n"),
    )
    .unwrap();
    std::fs::write(dir.join("scripts/run.sh"), "echo report\n").unwrap();
    dir
}

/// The entry names of the zip at `path` (read by Python's zipfile, not by code of this repository).
fn zip_names(path: &std::path::Path) -> Vec<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_skill_directory_is_uploaded_versioned_downloaded_and_deleted() {
    let s3 = S3Server::start();
    let flags = s3.gateway_flags();
    let gw = Gateway::start_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    let t = gw.tenant();
    let work = tempfile::tempdir().unwrap();
    wait_for_storage(&t, work.path());

    let first = skill_dir(&work.path().join("v1"), "Turns a CSV into a report.");
    let created = t
        .run(&["skills", "create", first.to_str().unwrap(), "-o", "json"])
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("skill_"), "{created}");
    assert_eq!(created["display_name"], "csv-report");

    let second = skill_dir(&work.path().join("v2"), "Turns a CSV into two reports.");
    let version = t
        .run(&["skills", "update", &id, second.to_str().unwrap(), "-o", "json"])
        .json();
    assert_eq!(version["description"], "Turns a CSV into two reports.");
    let versions = t.run(&["skills", "versions", &id, "-o", "json"]).json();
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    let listed = t.run(&["skills", "ls", "-o", "json"]).json();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["latest_version_id"], version["id"]);
    check_everywhere(&t, &["skills", "list"], &[&id]);
    let version_ids: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    check_everywhere(&t, &["skills", "versions", &id], &version_ids);

    let zip = work.path().join("skill.zip");
    t.run(&["skills", "download", &id, zip.to_str().unwrap()]).ok();
    assert_eq!(
        zip_names(&zip),
        ["csv-report/SKILL.md", "csv-report/scripts/run.sh"]
    );
    let again = t.run(&["skills", "download", &id, zip.to_str().unwrap()]);
    assert!(
        !again.status.success() && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );

    // A symlink in the directory is refused before anything is sent.
    std::os::unix::fs::symlink("/etc/passwd", first.join("passwd")).unwrap();
    let refused = t.run(&["skills", "create", first.to_str().unwrap()]);
    assert!(
        !refused.status.success() && refused.stderr.contains("symlink"),
        "{}",
        refused.stderr
    );
    let listed = t.run(&["skills", "ls", "-o", "json"]).json();
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1),
        "nothing was created: {listed}"
    );

    let stranger = gw.tenant();
    let hidden = stranger.run(&["skills", "get", &id]);
    assert!(
        !hidden.status.success(),
        "another tenant sees the skill: {}",
        hidden.stdout
    );

    t.run(&["skills", "rm", &id]).ok();
    let gone = t.run(&["skills", "get", &id]);
    assert!(
        !gone.status.success() && gone.stderr.contains("404"),
        "{}",
        gone.stderr
    );
}
