//! Skills kept in git repositories: an Agent custom resource names a repository's http(s) URL, a branch, tag or
//! commit, and the directory holding the skill's `SKILL.md`. The harness fetches that one commit (shallow) with the
//! `git` program into a temporary directory, reads the directory's files from git's objects (never from a checkout,
//! so a symbolic link in the repository cannot make it read anything else) and serves them as it serves a
//! ConfigMap's skill: named in the system prompt, copied into the sandbox.
//!
//! The URL is the Agent author's choice, so the fetch keeps to the harness's outbound wall: the host is resolved
//! here, refused when an address is internal (unless the platform operator opened it), and git is pinned to those
//! addresses (`http.curloptResolve`), follows no redirect and speaks http(s) only. The token, when the skill names
//! one, goes to git in its environment as an HTTP header (never on a command line) and to that host only.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use base64::Engine as _;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use crate::{
    outbound::OutboundWall,
    skills::{LoadedSkill, SkillError},
};

/// Most files one skill may hold (as an uploaded skill).
pub const MAX_FILES: usize = 500;
/// Most bytes one skill's files may hold together (as an uploaded skill).
pub const MAX_BYTES: u64 = 8 << 20;
/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Most skills fetched at a full commit id remembered per replica (a commit never changes).
const MAX_CACHED: usize = 256;

/// Where a skill is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSkillSource {
    /// The repository's http(s) URL.
    pub url: String,
    /// A branch, tag or full commit id; the repository's default branch when `None`.
    pub reference: Option<String>,
    /// The directory holding `SKILL.md`, relative to the repository's root; the root when `None`.
    pub path: Option<String>,
}

impl GitSkillSource {
    /// The directory inside the repository, without leading or trailing `/` (empty for the root).
    fn dir(&self) -> &str {
        self.path.as_deref().unwrap_or_default().trim_matches('/')
    }

    /// The id the skill is known by in the sandbox: stable for one repository and directory.
    fn skill_id(&self) -> String {
        let digest = sha2::Sha256::digest(format!("{}\n{}", self.url, self.dir()).as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("git-{hex}")
    }

    /// The directory's name when `SKILL.md` names none: the directory's last segment, else the repository's name.
    fn default_name(&self) -> String {
        match self.dir().rsplit('/').next().filter(|s| !s.is_empty()) {
            Some(last) => last.to_owned(),
            None => corral_api::repository::repository_name(&self.url),
        }
    }
}

/// Whether `reference` is a full commit id (its content can never change).
fn is_commit_id(reference: &str) -> bool {
    (reference.len() == 40 || reference.len() == 64) && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Fetches skills from git repositories, remembering those read at a commit id.
#[derive(Debug, Default)]
pub struct GitSkills {
    at_commits: Mutex<HashMap<(String, String, String), Arc<LoadedSkill>>>,
}

impl GitSkills {
    /// The skill `source` names, fetched now (or remembered, for a commit id) with `token` when it has one.
    pub async fn load(
        &self,
        source: &GitSkillSource,
        token: Option<&str>,
        wall: &OutboundWall,
    ) -> Result<Arc<LoadedSkill>, SkillError> {
        let pinned = source.reference.as_deref().filter(|r| is_commit_id(r));
        let key = pinned.map(|r| (source.url.clone(), r.to_lowercase(), source.dir().to_owned()));
        if let Some(key) = &key
            && let Some(hit) = self.lock().get(key)
        {
            return Ok(hit.clone());
        }
        let loaded = Arc::new(fetch(source, token, wall).await?);
        if let Some(key) = key {
            let mut cache = self.lock();
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, loaded.clone());
        }
        Ok(loaded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), Arc<LoadedSkill>>> {
        self.at_commits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why `url` cannot be fetched from, before anything is resolved.
fn url_refusal(url: &str) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => return Some(format!("{url:?} is not a URL: {e}")),
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some(format!("{url:?} is not an http(s) URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some(format!(
            "{url:?} carries credentials; name a Secret in authorizationSecretRef instead"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Some(format!("{url:?} has no host"));
    }
    None
}

/// The addresses git may connect to for `url`'s host: resolved here and judged by `wall`.
async fn resolve(url: &url::Url, wall: &OutboundWall) -> Result<(String, u16, Vec<IpAddr>), SkillError> {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses = wall.resolve(&host, port).await.map_err(|e| match e {
        crate::outbound::Unreachable::Lookup(why) => SkillError::Unavailable(why),
        crate::outbound::Unreachable::Closed(why) => SkillError::Missing(why),
    })?;
    Ok((host, port, addresses))
}

/// `http.curloptResolve`'s value pinning `host:port` to `addresses`.
fn pin(host: &str, port: u16, addresses: &[IpAddr]) -> String {
    let list: Vec<String> = addresses
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        })
        .collect();
    format!("{host}:{port}:{}", list.join(","))
}

/// What every git command runs with: no user or system configuration, no prompt, http(s) only, no redirect,
/// pinned addresses, and the token as a header (in the environment, not on the command line).
fn git_config(pinned: &str, token: Option<&str>) -> Vec<(String, String)> {
    let mut config: Vec<(&str, String)> = vec![
        ("protocol.allow", "never".into()),
        ("protocol.http.allow", "always".into()),
        ("protocol.https.allow", "always".into()),
        ("http.followRedirects", "false".into()),
        ("http.curloptResolve", pinned.to_owned()),
        ("http.lowSpeedLimit", "1000".into()),
        ("http.lowSpeedTime", "30".into()),
        ("core.hooksPath", "/dev/null".into()),
    ];
    if let Some(token) = token {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        config.push(("http.extraHeader", format!("Authorization: Basic {basic}")));
    }
    let mut env = vec![("GIT_CONFIG_COUNT".to_owned(), config.len().to_string())];
    for (i, (key, value)) in config.into_iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), key.to_owned()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), value));
    }
    env
}

/// Runs `git args...` in `repo` with `env`; its standard output, or an error with what git said.
async fn git(
    repo: &Path,
    env: &[(String, String)],
    args: &[&str],
    stdin: Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(repo)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run git (is it installed in the harness image?): {e}"))?;
    let writer = child.stdin.take().zip(stdin).map(|(mut pipe, bytes)| {
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
        })
    });
    let output = child.wait_with_output().await.map_err(|e| format!("git: {e}"))?;
    if let Some(writer) = writer {
        let _ = writer.await;
    }
    let (status, out, err) = (output.status, output.stdout, output.stderr);
    if status.success() {
        Ok(out)
    } else {
        let said = String::from_utf8_lossy(&err).trim().to_owned();
        Err(if said.is_empty() {
            format!("git {} failed ({status})", args[0])
        } else {
            said
        })
    }
}

/// Fetches `source` into a temporary directory and reads the skill from it.
async fn fetch(
    source: &GitSkillSource,
    token: Option<&str>,
    wall: &OutboundWall,
) -> Result<LoadedSkill, SkillError> {
    let what = format!("skill repository {}", source.url);
    if let Some(why) = url_refusal(&source.url) {
        return Err(SkillError::Missing(format!("{what}: {why}")));
    }
    let parsed = url::Url::parse(&source.url).map_err(|e| SkillError::Missing(e.to_string()))?;
    let (host, port, addresses) = resolve(&parsed, wall).await.map_err(|e| prefix(e, &what))?;
    let env = git_config(&pin(&host, port, &addresses), token);
    let scratch = tempfile::Builder::new()
        .prefix("corral-skill-")
        .tempdir()
        .map_err(|e| SkillError::Unavailable(format!("{what}: a temporary directory: {e}")))?;
    let repo = scratch.path();
    let run = async {
        git(repo, &env, &["init", "--quiet", "--bare"], None).await?;
        let wanted = source.reference.as_deref().unwrap_or("HEAD");
        let shallow = git(
            repo,
            &env,
            &[
                "fetch",
                "--quiet",
                "--depth=1",
                "--no-tags",
                "--",
                &source.url,
                wanted,
            ],
            None,
        )
        .await;
        // A server that cannot serve a shallow fetch (git's dumb HTTP protocol) or a commit id alone: fetch the
        // history instead (the branches, for a commit id).
        let target = match shallow {
            Ok(_) => "FETCH_HEAD",
            Err(_) if is_commit_id(wanted) => {
                git(
                    repo,
                    &env,
                    &[
                        "fetch",
                        "--quiet",
                        "--no-tags",
                        "--",
                        &source.url,
                        "+refs/heads/*:refs/remotes/origin/*",
                    ],
                    None,
                )
                .await?;
                wanted
            }
            Err(_) => {
                git(
                    repo,
                    &env,
                    &["fetch", "--quiet", "--no-tags", "--", &source.url, wanted],
                    None,
                )
                .await?;
                "FETCH_HEAD"
            }
        };
        let commit = git(
            repo,
            &env,
            &["rev-parse", "--verify", &format!("{target}^{{commit}}")],
            None,
        )
        .await?;
        Ok::<String, String>(String::from_utf8_lossy(&commit).trim().to_owned())
    };
    let commit = match tokio::time::timeout(FETCH_TIMEOUT, run).await {
        Ok(Ok(commit)) => commit,
        Ok(Err(said)) => {
            return Err(SkillError::Unavailable(format!(
                "{what}: fetching {}: {said}",
                reference(source)
            )));
        }
        Err(_) => {
            return Err(SkillError::Unavailable(format!(
                "{what}: fetching {} took longer than {FETCH_TIMEOUT:?}",
                reference(source)
            )));
        }
    };
    let files = read_tree(repo, &env, &commit, source.dir())
        .await
        .map_err(|why| SkillError::Missing(format!("{what} at {commit}: {why}")))?;
    skill_from_files(source, &commit, files)
        .map_err(|why| SkillError::Missing(format!("{what} at {commit}: {why}")))
}

fn reference(source: &GitSkillSource) -> String {
    source
        .reference
        .as_deref()
        .map_or_else(|| "its default branch".to_owned(), |r| format!("{r:?}"))
}

fn prefix(error: SkillError, what: &str) -> SkillError {
    match error {
        SkillError::Missing(why) => SkillError::Missing(format!("{what}: {why}")),
        SkillError::Unavailable(why) => SkillError::Unavailable(format!("{what}: {why}")),
    }
}

/// The regular files under `dir` at `commit` (path below `dir` → bytes), read from git's objects; symbolic links
/// and submodules are left out.
async fn read_tree(
    repo: &Path,
    env: &[(String, String)],
    commit: &str,
    dir: &str,
) -> Result<BTreeMap<String, bytes::Bytes>, String> {
    let tree = if dir.is_empty() {
        commit.to_owned()
    } else {
        format!("{commit}:{dir}")
    };
    let listing = git(repo, env, &["ls-tree", "-r", "-z", "--long", &tree], None)
        .await
        .map_err(|said| format!("no directory {dir:?}: {said}"))?;
    let mut entries: Vec<(String, String, u64)> = Vec::new();
    let mut total = 0u64;
    for record in listing.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        let Some((meta, path)) = record.split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, kind, object, size] = fields[..] else {
            continue;
        };
        if kind != "blob" || !(mode == "100644" || mode == "100755") {
            continue;
        }
        let size: u64 = size.parse().unwrap_or(u64::MAX);
        total = total.saturating_add(size);
        if entries.len() >= MAX_FILES {
            return Err(format!("the skill has more than {MAX_FILES} files"));
        }
        if total > MAX_BYTES {
            return Err(format!(
                "the skill's files are more than {MAX_BYTES} bytes together"
            ));
        }
        entries.push((path.to_owned(), object.to_owned(), size));
    }
    let request: Vec<u8> = entries
        .iter()
        .flat_map(|(_, object, _)| format!("{object}\n").into_bytes())
        .collect();
    let batch = git(repo, env, &["cat-file", "--batch"], Some(request)).await?;
    let mut files = BTreeMap::new();
    let mut rest: &[u8] = &batch;
    for (path, object, size) in entries {
        let header_end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("git cat-file ended early")?;
        let header = String::from_utf8_lossy(&rest[..header_end]).into_owned();
        if !header.starts_with(&object) || !header.ends_with(&format!(" {size}")) {
            return Err(format!("git cat-file answered {header:?} for {path}"));
        }
        let start = header_end + 1;
        let end = start + usize::try_from(size).map_err(|_| "a file too large")?;
        let content = rest.get(start..end).ok_or("git cat-file ended early")?;
        files.insert(path, bytes::Bytes::copy_from_slice(content));
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    Ok(files)
}

/// The skill in `files` (path → bytes) of `source` at `commit`.
fn skill_from_files(
    source: &GitSkillSource,
    commit: &str,
    files: BTreeMap<String, bytes::Bytes>,
) -> Result<LoadedSkill, String> {
    if !files.contains_key("SKILL.md") {
        return Err(format!(
            "no SKILL.md in {}",
            if source.dir().is_empty() {
                "the repository's root".to_owned()
            } else {
                format!("{:?}", source.dir())
            }
        ));
    }
    crate::skills::inline_skill(
        source.skill_id(),
        commit.to_owned(),
        &source.default_name(),
        files,
    )
}

#[cfg(test)]
mod tests;
