//! An agent's skills as the harness uses them: each skill version's name, description and files, read from the
//! gateway (`GET /internal/v1/namespaces/{ns}/skills/{id}/versions/{version}`, with this harness's own
//! ServiceAccount token, as file resources are), named in the system prompt and copied into the sandbox under
//! [`SKILLS_ROOT`] by the file resources' sync (`crate::tools::file_resources`). A pinned version never changes, so
//! it is read once per replica; an unpinned one (an Agent written with kubectl) is read again with the agent.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corral_api::agent::{Skill, SkillType};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Deserialize;

use crate::tools::file_resources::GatewayFiles;

/// Where skills are put in the sandbox: `/mnt/session/skills/<name>/SKILL.md` (a read-only directory, as file
/// resources under `/mnt/session` are).
pub const SKILLS_ROOT: &str = "/mnt/session/skills";

/// Most pinned versions remembered per replica.
const MAX_CACHED: usize = 1024;

/// One file of a skill version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SkillFile {
    /// Its path below the skill's directory.
    pub path: String,
    /// Bytes.
    pub size: u64,
}

/// A skill version, as the gateway describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LoadedSkill {
    /// `skill_...`.
    pub skill_id: String,
    /// The version id.
    pub version: String,
    /// The slug: the directory's name in the sandbox.
    pub name: String,
    /// When to use it (from its `SKILL.md`).
    pub description: String,
    /// Its files.
    pub files: Vec<SkillFile>,
    /// The files' bytes, for a skill read from a ConfigMap (path → bytes); `None` for one read through the gateway,
    /// whose files are fetched from it one by one.
    #[serde(skip)]
    pub inline: Option<Arc<BTreeMap<String, bytes::Bytes>>>,
}

impl LoadedSkill {
    /// The skill's directory in the sandbox.
    pub fn dir(&self) -> String {
        format!("{SKILLS_ROOT}/{}", self.name)
    }

    /// Where each file goes in the sandbox, and the id the sandbox lists it under: the gateway path it is read
    /// from (`skills/<id>/versions/<version>/files/<path>`), so a changed version replaces every file.
    pub fn placements(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.files.iter().map(|f| {
            (
                format!("{}/{}", self.dir(), f.path),
                format!(
                    "{SKILL_ID_PREFIX}{}/versions/{}/files/{}",
                    self.skill_id, self.version, f.path
                ),
            )
        })
    }
}

impl LoadedSkill {
    /// The bytes of each of its files by the id it is placed under, when the skill carries them (a ConfigMap's).
    pub fn inline_files(&self) -> Vec<(String, bytes::Bytes)> {
        let Some(inline) = &self.inline else {
            return Vec::new();
        };
        self.placements()
            .zip(&self.files)
            .filter_map(|((_, id), f)| Some((id, inline.get(&f.path)?.clone())))
            .collect()
    }
}

/// The prefix of the ids skill files are listed under in the sandbox (see [`LoadedSkill::placements`]).
pub const SKILL_ID_PREFIX: &str = "skills/";

/// The `skill_id` of a skill read from ConfigMap `name`: `configmap/<name>` (never an uploaded skill's `skill_...`).
pub fn config_map_skill_id(name: &str) -> String {
    format!("configmap/{name}")
}

/// The `# Skills` section of the system prompt for `skills` (empty for none).
pub fn prompt_section(skills: &[Arc<LoadedSkill>]) -> String {
    if skills.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# Skills\n\nSkills are folders of instructions, scripts and resources for particular tasks, in the sandbox \
         (read-only). When a task matches a skill's description, read its SKILL.md first (with the read tool or \
         cat) and follow it; open its other files only when SKILL.md points to them.\n",
    );
    for skill in skills {
        out.push_str(&format!(
            "\n- {} ({}/SKILL.md): {}",
            skill.name,
            skill.dir(),
            skill.description.replace('\n', " ")
        ));
    }
    out
}

/// Why a skill could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkillError {
    /// The skill or version does not exist (deleted, or another tenant's): the agent cannot run as written.
    Missing(String),
    /// The gateway could not answer; try again later.
    Unavailable(String),
}

/// Reads skill versions from the gateway, remembering pinned ones, and skills kept in ConfigMaps.
pub struct SkillLoader {
    gateway: Option<GatewayFiles>,
    kube: Option<kube::Client>,
    git: crate::git_skills::GitSkills,
    http: reqwest::Client,
    pinned: Mutex<HashMap<(String, String, String), Arc<LoadedSkill>>>,
}

impl std::fmt::Debug for SkillLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillLoader")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl SkillLoader {
    /// A loader reading through `gateway` (without one, an agent with skills cannot run, saying why).
    pub fn new(gateway: Option<GatewayFiles>) -> Self {
        Self {
            gateway,
            kube: None,
            git: crate::git_skills::GitSkills::default(),
            http: GatewayFiles::client(Some(Duration::from_secs(30))),
            pinned: Mutex::default(),
        }
    }

    /// Reads `configMap` skills, and the Secrets `gitRepository` skills name, through `client` (without one, an
    /// agent with such a skill cannot run, saying why).
    #[must_use]
    pub fn with_config_maps(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// The custom skills of an agent, in its order.
    pub async fn load_all(
        &self,
        namespace: &str,
        skills: &[Skill],
    ) -> Result<Vec<Arc<LoadedSkill>>, SkillError> {
        let mut out: Vec<Arc<LoadedSkill>> = Vec::with_capacity(skills.len());
        for skill in skills.iter().filter(|s| s.kind != SkillType::Anthropic) {
            let loaded = match skill.kind {
                SkillType::ConfigMap => Arc::new(self.load_config_map(namespace, &skill.skill_id).await?),
                SkillType::GitRepository => self.load_git(namespace, skill).await?,
                _ => self.load(namespace, skill).await?,
            };
            // An Agent written with kubectl is not checked by the gateway: two skills of one name would share a
            // directory in the sandbox.
            if let Some(other) = out.iter().find(|o| o.name == loaded.name) {
                return Err(SkillError::Missing(format!(
                    "skills {} and {} are both named {:?}; their files would share {}",
                    other.skill_id,
                    loaded.skill_id,
                    loaded.name,
                    loaded.dir()
                )));
            }
            out.push(loaded);
        }
        Ok(out)
    }

    /// One skill at its pinned version (the newest when it has none).
    pub async fn load(&self, namespace: &str, skill: &Skill) -> Result<Arc<LoadedSkill>, SkillError> {
        let version = skill.version.clone().unwrap_or_else(|| "latest".to_owned());
        let key = (namespace.to_owned(), skill.skill_id.clone(), version.clone());
        if let Some(hit) = self.lock().get(&key) {
            return Ok(hit.clone());
        }
        let loaded = Arc::new(self.fetch(namespace, &skill.skill_id, &version).await?);
        if version != "latest" {
            let mut pinned = self.lock();
            if pinned.len() >= MAX_CACHED {
                pinned.clear();
            }
            pinned.insert(key, loaded.clone());
        }
        Ok(loaded)
    }

    /// A skill kept in ConfigMap `name` of `namespace`: each key (of `data` and `binaryData`) a file of the skill's
    /// directory, `SKILL.md` among them. Read as it is at every load of the agent; its `resourceVersion` is the
    /// version, so an edited ConfigMap replaces the skill's files in the sandbox at the next tool call.
    pub async fn load_config_map(&self, namespace: &str, name: &str) -> Result<LoadedSkill, SkillError> {
        let Some(client) = &self.kube else {
            return Err(SkillError::Missing(format!(
                "skill ConfigMap {name}: this harness does not read ConfigMaps for skills"
            )));
        };
        let maps: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
        let map = maps
            .get_opt(name)
            .await
            .map_err(|e| SkillError::Unavailable(format!("reading skill ConfigMap {name}: {e}")))?
            .ok_or_else(|| {
                SkillError::Missing(format!("skill ConfigMap {name} does not exist in {namespace}"))
            })?;
        config_map_skill(name, &map)
            .map_err(|why| SkillError::Missing(format!("skill ConfigMap {name}: {why}")))
    }

    /// A skill kept in a git repository (`skill_id` its URL, `version` the branch, tag or commit, `path` the
    /// directory), fetched at every load of the agent unless pinned to a commit id (see [`crate::git_skills`]).
    pub async fn load_git(&self, namespace: &str, skill: &Skill) -> Result<Arc<LoadedSkill>, SkillError> {
        let token = match &skill.authorization_secret_ref {
            Some(reference) => Some(self.git_token(namespace, reference).await?),
            None => None,
        };
        let source = crate::git_skills::GitSkillSource {
            url: skill.skill_id.clone(),
            reference: skill.version.clone().filter(|v| !v.is_empty()),
            path: skill.path.clone(),
        };
        self.git
            .load(&source, token.as_deref(), &crate::outbound::current())
            .await
    }

    /// The token a `gitRepository` skill names: only a Secret labelled as a repository token.
    async fn git_token(
        &self,
        namespace: &str,
        reference: &corral_api::common::SecretKeyRef,
    ) -> Result<String, SkillError> {
        let Some(client) = &self.kube else {
            return Err(SkillError::Missing(
                "a gitRepository skill names a Secret, and this harness does not read Secrets for skills"
                    .into(),
            ));
        };
        let name = &reference.name;
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| SkillError::Unavailable(format!("reading Secret {name}: {e}")))?
            .ok_or_else(|| SkillError::Missing(format!("Secret {name} does not exist in {namespace}")))?;
        if let Some(why) = corral_api::repository::skill_token_refusal(&secret) {
            return Err(SkillError::Missing(why));
        }
        crate::agent::manifest::secret_value(&secret, &reference.key)
            .ok_or_else(|| SkillError::Missing(format!("Secret {name} has no key {}", reference.key)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), Arc<LoadedSkill>>> {
        self.pinned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch(&self, namespace: &str, skill: &str, version: &str) -> Result<LoadedSkill, SkillError> {
        let Some(gateway) = &self.gateway else {
            return Err(SkillError::Missing(
                "the agent has skills, and this harness has no gateway to read them from (--gateway-url)"
                    .into(),
            ));
        };
        let response = gateway
            .get(&self.http, namespace, &["skills", skill, "versions", version])
            .await
            .map_err(SkillError::Unavailable)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(SkillError::Missing(format!(
                "skill {skill} (version {version}) is not one of this namespace's skills (deleted?)"
            )));
        }
        if !status.is_success() {
            return Err(SkillError::Unavailable(format!(
                "the gateway answered {status} for skill {skill}"
            )));
        }
        response
            .json()
            .await
            .map_err(|e| SkillError::Unavailable(format!("the gateway's answer for skill {skill}: {e}")))
    }
}

/// The skill ConfigMap `name` holds (see [`SkillLoader::load_config_map`]); an error says what is wrong with it.
pub fn config_map_skill(name: &str, map: &ConfigMap) -> Result<LoadedSkill, String> {
    let mut inline: BTreeMap<String, bytes::Bytes> = BTreeMap::new();
    for (key, text) in map.data.iter().flatten() {
        inline.insert(key.clone(), bytes::Bytes::from(text.clone().into_bytes()));
    }
    for (key, data) in map.binary_data.iter().flatten() {
        inline.insert(key.clone(), bytes::Bytes::from(data.0.clone()));
    }
    if !inline.contains_key("SKILL.md") {
        return Err("it has no key SKILL.md (each key is a file of the skill's directory)".into());
    }
    inline_skill(
        config_map_skill_id(name),
        map.metadata.resource_version.clone().unwrap_or_default(),
        name,
        inline,
    )
}

/// The skill whose files (path → bytes, `SKILL.md` among them) a ConfigMap or a git repository holds, known as
/// `skill_id` at `version`; named by its `SKILL.md` frontmatter, else `default_name`.
pub fn inline_skill(
    skill_id: String,
    version: String,
    default_name: &str,
    files: BTreeMap<String, bytes::Bytes>,
) -> Result<LoadedSkill, String> {
    let skill_md = files.get("SKILL.md").ok_or("there is no SKILL.md")?;
    let text = std::str::from_utf8(skill_md).map_err(|_| "SKILL.md is not UTF-8 text".to_owned())?;
    let header = corral_api::skill_md::parse(text)?;
    let name = header.name.unwrap_or_else(|| default_name.to_owned());
    if !corral_api::skill_md::slug_ok(&name) {
        return Err(corral_api::skill_md::bad_slug(&name));
    }
    Ok(LoadedSkill {
        skill_id,
        version,
        name,
        description: header.description,
        files: files
            .iter()
            .map(|(path, bytes)| SkillFile {
                path: path.clone(),
                size: bytes.len() as u64,
            })
            .collect(),
        inline: Some(Arc::new(files)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill() -> LoadedSkill {
        LoadedSkill {
            skill_id: "skill_01".into(),
            version: "17".into(),
            name: "csv-report".into(),
            description: "Turns a CSV\ninto a report.".into(),
            files: vec![
                SkillFile {
                    path: "SKILL.md".into(),
                    size: 10,
                },
                SkillFile {
                    path: "scripts/run me.py".into(),
                    size: 3,
                },
            ],
            inline: None,
        }
    }

    #[test]
    fn a_config_map_holds_a_skill_directory_named_by_its_frontmatter() {
        let map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "csv-skill", "resourceVersion": "42"},
            "data": {"SKILL.md": "---\nname: csv-report\ndescription: Turns CSV into reports.\n---\n", "run.sh": "echo hi\n"},
            "binaryData": {"logo.png": "iVBORw=="}
        }))
        .unwrap();
        let skill = config_map_skill("csv-skill", &map).unwrap();
        assert_eq!(
            (skill.name.as_str(), skill.version.as_str()),
            ("csv-report", "42")
        );
        assert_eq!(skill.description, "Turns CSV into reports.");
        let inline = skill.inline_files();
        assert_eq!(inline.len(), 3);
        assert!(inline.contains(&(
            "skills/configmap/csv-skill/versions/42/files/run.sh".to_owned(),
            bytes::Bytes::from_static(b"echo hi\n")
        )));
        let placed: Vec<_> = skill.placements().map(|(p, _)| p).collect();
        assert!(
            placed.contains(&"/mnt/session/skills/csv-report/logo.png".to_owned()),
            "{placed:?}"
        );
    }

    #[test]
    fn a_config_map_without_a_good_skill_md_is_refused_saying_why() {
        let map = |data: serde_json::Value| -> ConfigMap {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "m"}, "data": data})).unwrap()
        };
        let err = config_map_skill("m", &map(serde_json::json!({"run.sh": "x"}))).unwrap_err();
        assert!(err.contains("no key SKILL.md"), "{err}");
        let err = config_map_skill("m", &map(serde_json::json!({"SKILL.md": "# none"}))).unwrap_err();
        assert!(err.contains("frontmatter"), "{err}");
        let err = config_map_skill(
            "Bad_Name",
            &map(serde_json::json!({"SKILL.md": "---\ndescription: d\n---\n"})),
        )
        .unwrap_err();
        assert!(err.contains("kebab-case"), "{err}");
    }

    #[test]
    fn a_skill_lands_under_its_name_and_is_listed_by_its_version() {
        let placed: Vec<_> = skill().placements().collect();
        assert_eq!(
            placed[1],
            (
                "/mnt/session/skills/csv-report/scripts/run me.py".to_owned(),
                "skills/skill_01/versions/17/files/scripts/run me.py".to_owned()
            )
        );
        for (path, _) in &placed {
            assert!(
                corral_sandbox_protocol::pod::file_resource_path_ok(path),
                "{path}"
            );
        }
    }

    #[test]
    fn the_prompt_names_each_skill_its_description_and_where_its_skill_md_is() {
        assert_eq!(prompt_section(&[]), "");
        let text = prompt_section(&[Arc::new(skill())]);
        assert!(text.starts_with("# Skills"), "{text}");
        assert!(
            text.contains(
                "- csv-report (/mnt/session/skills/csv-report/SKILL.md): Turns a CSV into a report."
            ),
            "{text}"
        );
    }
}
