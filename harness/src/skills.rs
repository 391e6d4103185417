//! An agent's skills as the harness uses them: each skill version's name, description and files, read from the
//! gateway (`GET /internal/v1/namespaces/{ns}/skills/{id}/versions/{version}`, with this harness's own
//! ServiceAccount token, as file resources are), named in the system prompt and copied into the sandbox under
//! [`SKILLS_ROOT`] by the file resources' sync (`crate::tools::file_resources`). A pinned version never changes, so
//! it is read once per replica; an unpinned one (an Agent written with kubectl) is read again with the agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corral_api::agent::{Skill, SkillType};
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

/// The prefix of the ids skill files are listed under in the sandbox (see [`LoadedSkill::placements`]).
pub const SKILL_ID_PREFIX: &str = "skills/";

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

/// Reads skill versions from the gateway, remembering pinned ones.
pub struct SkillLoader {
    gateway: Option<GatewayFiles>,
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
            http: GatewayFiles::client(Some(Duration::from_secs(30))),
            pinned: Mutex::default(),
        }
    }

    /// The custom skills of an agent, in its order.
    pub async fn load_all(
        &self,
        namespace: &str,
        skills: &[Skill],
    ) -> Result<Vec<Arc<LoadedSkill>>, SkillError> {
        let mut out: Vec<Arc<LoadedSkill>> = Vec::with_capacity(skills.len());
        for skill in skills.iter().filter(|s| s.kind == SkillType::Custom) {
            let loaded = self.load(namespace, skill).await?;
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
        }
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
