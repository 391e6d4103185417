//! `corral files`: upload, download, list, get and delete against a gateway with real object storage (SeaweedFS),
//! streamed both ways, scoped to the key's namespace.

use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    harness::{Gateway, Tenant},
    s3::S3Server,
    terminal::check_everywhere,
};

/// `len` bytes that differ from any shifted copy of themselves (a lost or repeated chunk shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Uploads a small file until the object store takes it (its S3 port opens before its volumes are ready).
pub(crate) fn wait_for_storage(t: &Tenant, dir: &Path) {
    let probe = dir.join("probe.txt");
    std::fs::write(&probe, "ready").unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let run = t.run(&["files", "upload", probe.to_str().unwrap(), "-o", "json"]);
        if run.status.success() {
            let id = run.json()["id"].as_str().unwrap().to_owned();
            t.run(&["files", "rm", &id]).ok();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "object storage never became ready: {}",
            run.stderr
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// The peak resident memory of `corral args…`, in KiB (GNU time's `%M`).
fn peak_kib(t: &Tenant, args: &[&str]) -> u64 {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "peak %M"])
        .arg(env!("CARGO_BIN_EXE_corral"))
        .args(args);
    t.configure(&mut cmd);
    let out = cmd.output().expect("/usr/bin/time runs corral");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "corral {args:?}: {stderr}");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak in {stderr}"))
}

#[test]
fn files_upload_download_list_and_delete_streamed_and_per_tenant() {
    let s3 = S3Server::start();
    let flags = s3.gateway_flags();
    let gw = Gateway::start_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    let t = gw.tenant();
    let dir = tempfile::tempdir().unwrap();
    wait_for_storage(&t, dir.path());

    // A 48 MiB upload and download each stay far below the file's size in memory.
    let len = 48 << 20;
    let content = pattern(len);
    let big = dir.path().join("big.bin");
    std::fs::write(&big, &content).unwrap();
    let upload_peak = peak_kib(&t, &["files", "upload", big.to_str().unwrap(), "-o", "name"]);
    assert!(
        upload_peak < 32 << 10,
        "the upload peaked at {upload_peak} KiB for a 48 MiB file"
    );
    let listed = t.run(&["files", "list", "-o", "json"]).json();
    let meta = &listed[0];
    assert_eq!(meta["filename"], "big.bin", "{listed}");
    assert_eq!(meta["size_bytes"], len as u64, "{listed}");
    assert_eq!(meta["mime_type"], "application/octet-stream", "{listed}");
    let big_id = meta["id"].as_str().unwrap().to_owned();

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dest = out.join("copy.bin");
    let download_peak = peak_kib(&t, &["files", "download", &big_id, dest.to_str().unwrap()]);
    assert!(
        download_peak < 32 << 10,
        "the download peaked at {download_peak} KiB"
    );
    eprintln!("48 MiB file: upload peak {upload_peak} KiB, download peak {download_peak} KiB");
    assert!(
        std::fs::read(&dest).unwrap() == content,
        "the download differs from the upload"
    );
    assert!(!out.join("copy.bin.part").exists());

    // An existing file is kept unless --force; a directory takes the stored name.
    let again = t.run(&["files", "download", &big_id, dest.to_str().unwrap()]);
    assert!(again.fails(2).contains("--force"), "{}", again.stderr);
    t.run(&["files", "download", &big_id, dest.to_str().unwrap(), "--force"])
        .ok();
    t.run(&["files", "download", &big_id, out.to_str().unwrap()]).ok();
    assert!(std::fs::read(out.join("big.bin")).unwrap() == content);

    // A typed, renamed, expiring upload; `-` downloads to standard output.
    let notes = dir.path().join("notes");
    std::fs::write(&notes, "# Notes\nline two\n").unwrap();
    let small = t
        .run(&[
            "files",
            "upload",
            notes.to_str().unwrap(),
            "--name",
            "notes.md",
            "--expires-in",
            "3600",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(small["filename"], "notes.md", "{small}");
    assert_eq!(small["mime_type"], "text/markdown", "{small}");
    assert!(small["expires_at"].is_string(), "{small}");
    let small_id = small["id"].as_str().unwrap().to_owned();
    assert_eq!(
        t.run(&["files", "download", &small_id, "-"]).ok(),
        "# Notes\nline two\n"
    );
    let shown = t.run(&["files", "get", &small_id]).ok().to_owned();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("filename") && l.ends_with("notes.md")),
        "{shown}"
    );

    // Lists: newest first, as names, and lined up in a terminal.
    let names = t.run(&["files", "ls", "-o", "name"]).ok().to_owned();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [small_id.as_str(), big_id.as_str()]
    );
    let table = t.run(&["files", "list"]).ok().to_owned();
    assert!(
        table.contains("48.00 MiB") && table.contains("notes.md"),
        "{table}"
    );
    check_everywhere(&t, &["files", "list"], &[&small_id, &big_id]);

    // A progress bar on a terminal for a large file.
    let screen = t.in_terminal(&["files", "upload", big.to_str().unwrap()], 100, true);
    assert!(screen.contains("uploading big.bin"), "{screen:?}");

    // Another tenant sees none of it.
    let other = gw.tenant();
    assert_eq!(
        other.run(&["files", "list", "-o", "json"]).json(),
        Value::Array(vec![])
    );
    other.run(&["files", "get", &big_id]).fails(5);
    other.run(&["files", "download", &big_id, "-"]).fails(5);
    other.run(&["files", "rm", &big_id]).fails(5);

    // Past the gateway's size limit: the API's 413 when it arrives before the connection breaks under the body,
    // else a message that names the limit (the gateway closes the connection without reading the file).
    let mut small_limit = flags.clone();
    small_limit.push("--max-file-bytes=1048576".into());
    let limited = Gateway::start_with(&small_limit.iter().map(String::as_str).collect::<Vec<_>>());
    let lt = limited.tenant();
    let refused = lt.run(&["files", "upload", big.to_str().unwrap()]);
    let said = refused.fails(1);
    assert!(
        said.contains("HTTP 413 invalid_request_error file_too_large") || said.contains("size limit"),
        "{said}"
    );
    assert_eq!(
        lt.run(&["files", "list", "-o", "json"]).json(),
        Value::Array(vec![])
    );

    // Delete.
    assert_eq!(
        t.run(&["files", "rm", &big_id]).ok().trim(),
        format!("deleted file {big_id}")
    );
    t.run(&["files", "get", &big_id]).fails(5);
    let missing = t.run(&["files", "upload", dir.path().join("nope").to_str().unwrap()]);
    assert!(missing.fails(2).contains("nope"), "{}", missing.stderr);
}
