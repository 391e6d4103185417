use std::process::Command;

use axum::{
    Router,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, StatusCode},
};

use super::*;

#[test]
fn only_http_urls_without_credentials_are_fetched() {
    for url in [
        "file:///etc",
        "ssh://git@host/r.git",
        "git@host:o/r.git",
        "https://user:pw@host/r.git",
        "https://x-access-token@host/r.git",
    ] {
        assert!(url_refusal(url).is_some(), "{url}");
    }
    assert!(url_refusal("https://git.example/o/skills.git").is_none());
    assert!(url_refusal("http://10.201.0.1:8080/project.git").is_none());
}

#[test]
fn git_is_pinned_to_the_judged_addresses_and_the_token_stays_in_the_environment() {
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let v4: IpAddr = "140.82.112.3".parse().unwrap();
    assert_eq!(
        pin("git.example", 443, &[v4, v6]),
        "git.example:443:140.82.112.3,[2001:db8::1]"
    );
    let env = git_config("git.example:443:140.82.112.3", Some("s3cret"));
    let value = |key: &str| {
        let index = env
            .iter()
            .find(|(_, v)| v == key)
            .map(|(k, _)| k.trim_start_matches("GIT_CONFIG_KEY_").to_owned())?;
        env.iter()
            .find(|(k, _)| *k == format!("GIT_CONFIG_VALUE_{index}"))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(value("protocol.allow").as_deref(), Some("never"));
    assert_eq!(value("http.followRedirects").as_deref(), Some("false"));
    assert_eq!(
        value("http.curloptResolve").as_deref(),
        Some("git.example:443:140.82.112.3")
    );
    let header = value("http.extraHeader").unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:s3cret");
    assert_eq!(header, format!("Authorization: Basic {basic}"));
    assert!(value("http.extraHeader").is_some());
    assert!(
        git_config("h:1:1.2.3.4", None)
            .iter()
            .all(|(_, v)| v != "http.extraHeader")
    );
}

#[test]
fn commit_ids_are_told_from_branches() {
    assert!(is_commit_id(&"a".repeat(40)));
    assert!(!is_commit_id("main"));
    assert!(!is_commit_id(&"g".repeat(40)));
}

fn run(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A repository holding a skill under `skills/csv` (with a symbolic link beside its files), published as a bare
/// repository for git's dumb HTTP protocol; the served directory and the commit id.
fn published_repository() -> (tempfile::TempDir, String) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("work");
    std::fs::create_dir_all(dir.join("skills/csv/scripts")).unwrap();
    std::fs::write(
        dir.join("skills/csv/SKILL.md"),
        "---\nname: csv-report\ndescription: Turns a CSV into a report.\n---\nRun scripts/report.sh.\n",
    )
    .unwrap();
    std::fs::write(dir.join("skills/csv/scripts/report.sh"), "echo report\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("skills/csv/passwd")).unwrap();
    std::fs::write(dir.join("README.md"), "not a skill\n").unwrap();
    run(&dir, &["init", "--quiet", "--initial-branch=main"]);
    run(&dir, &["add", "."]);
    run(&dir, &["commit", "--quiet", "-m", "a skill"]);
    let served = work.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    run(
        work.path(),
        &["clone", "--quiet", "--bare", "work", "served/skills.git"],
    );
    run(&served.join("skills.git"), &["update-server-info"]);
    let commit = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    (work, String::from_utf8(commit.stdout).unwrap().trim().to_owned())
}

/// Serves `root` as static files on loopback, requiring `Authorization: Basic x-access-token:<token>`.
async fn serve(root: std::path::PathBuf, token: &'static str) -> u16 {
    async fn file(
        State((root, token)): State<(std::path::PathBuf, &'static str)>,
        headers: HeaderMap,
        UrlPath(path): UrlPath<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent != Some(format!("Basic {basic}").as_str()) {
            return Err(StatusCode::UNAUTHORIZED);
        }
        if path.contains("..") {
            return Err(StatusCode::NOT_FOUND);
        }
        std::fs::read(root.join(path)).map_err(|_| StatusCode::NOT_FOUND)
    }
    let app = Router::new()
        .route("/{*path}", axum::routing::get(file))
        .with_state((root, token));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
async fn a_skill_directory_is_read_from_the_repository_with_its_token() {
    let (work, commit) = published_repository();
    let port = serve(work.path().join("served"), "right").await;
    let source = GitSkillSource {
        url: format!("http://localhost:{port}/skills.git"),
        reference: Some("main".into()),
        path: Some("skills/csv/".into()),
    };
    let skills = GitSkills::default();
    let skill = skills
        .load(&source, Some("right"), &OutboundWall::Open)
        .await
        .unwrap();
    assert_eq!(skill.name, "csv-report");
    assert_eq!(skill.description, "Turns a CSV into a report.");
    assert_eq!(skill.version, commit);
    let paths: Vec<&str> = skill.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["SKILL.md", "scripts/report.sh"],
        "the symbolic link is left out"
    );
    let inline = skill.inline.as_ref().unwrap();
    assert_eq!(&inline["scripts/report.sh"][..], b"echo report\n");

    let wrong = skills
        .load(&source, Some("wrong"), &OutboundWall::Open)
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, SkillError::Unavailable(why) if why.contains("skills.git")),
        "{wrong:?}"
    );

    let at_root = GitSkillSource {
        path: None,
        ..source.clone()
    };
    let err = skills
        .load(&at_root, Some("right"), &OutboundWall::Open)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SkillError::Missing(why) if why.contains("no SKILL.md")),
        "{err:?}"
    );

    let pinned = GitSkillSource {
        reference: Some(commit.clone()),
        ..source.clone()
    };
    let at_commit = skills
        .load(&pinned, Some("right"), &OutboundWall::Open)
        .await
        .unwrap();
    assert_eq!(at_commit.version, commit);
}

#[tokio::test]
async fn an_internal_host_is_refused_by_a_closed_wall() {
    let (work, _) = published_repository();
    let port = serve(work.path().join("served"), "t").await;
    let source = GitSkillSource {
        url: format!("http://localhost:{port}/skills.git"),
        reference: None,
        path: Some("skills/csv".into()),
    };
    let err = GitSkills::default()
        .load(&source, Some("t"), &OutboundWall::closed(Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SkillError::Missing(why) if why.contains("internal address")),
        "{err:?}"
    );
    let opened = OutboundWall::closed(["localhost".to_owned()]);
    let skill = GitSkills::default()
        .load(&source, Some("t"), &opened)
        .await
        .unwrap();
    assert_eq!(skill.name, "csv-report", "an opened internal host is reached");
}
