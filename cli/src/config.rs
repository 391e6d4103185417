//! Where the gateway is and which key to use: flags, then the environment, then the config file
//! (`~/.config/corral/config.toml`, or `--config` / `CORRAL_CONFIG`).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// The settings kept in the config file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The gateway's base URL, such as `http://localhost:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The API key (`sk-corral-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The agent `corral chat` and `corral run` start sessions with when `--agent` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The environment `corral chat` and `corral run` start sessions in when `--env` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// A key of the config file, as `corral config set` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[expect(
    clippy::enum_variant_names,
    reason = "ApiKey is named for its `api-key` setting, not for the enum"
)]
pub enum Key {
    /// The gateway's base URL.
    Url,
    /// The API key.
    ApiKey,
    /// The default agent of new sessions (`chat`, `run`).
    Agent,
    /// The default environment of new sessions (`chat`, `run`).
    Environment,
}

impl Key {
    /// The key's name in the file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::ApiKey => "api-key",
            Self::Agent => "agent",
            Self::Environment => "environment",
        }
    }
}

impl FileConfig {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(CliError::Config(format!("reading {}: {e}", path.display()))),
        };
        toml::from_str(&text).map_err(|e| {
            CliError::Config(format!(
                "{}: {} (expected `url`, `api_key`, `agent` and `environment`, each `= \"…\"`)",
                path.display(),
                e.message()
            ))
        })
    }

    /// Writes the file (readable by its owner only: it may hold a key), creating its directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        let failed = |e: std::io::Error| CliError::Other(format!("writing {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let text = toml::to_string(self).map_err(|e| CliError::Other(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)
    }

    /// The value of `key`.
    pub fn get(&self, key: Key) -> Option<&str> {
        match key {
            Key::Url => self.url.as_deref(),
            Key::ApiKey => self.api_key.as_deref(),
            Key::Agent => self.agent.as_deref(),
            Key::Environment => self.environment.as_deref(),
        }
    }

    /// Sets (or with `None`, removes) `key`.
    pub fn set(&mut self, key: Key, value: Option<String>) {
        match key {
            Key::Url => self.url = value,
            Key::ApiKey => self.api_key = value,
            Key::Agent => self.agent = value,
            Key::Environment => self.environment = value,
        }
    }
}

/// The config file's path: `explicit` (flag or `CORRAL_CONFIG`), else `<config dir>/corral/config.toml`.
pub fn path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    dirs::config_dir()
        .map(|d| d.join("corral").join("config.toml"))
        .ok_or_else(|| {
            CliError::Config("no config directory on this system: pass --config or CORRAL_CONFIG".into())
        })
}

/// Checks a gateway URL and returns it without a trailing slash.
pub fn normalize_url(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| CliError::Config(format!("gateway URL {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::Config(format!(
            "gateway URL {url:?} must start with http:// or https://"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(CliError::Config(format!(
            "gateway URL {url:?} must not have a query or fragment"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Where the API is and how to authenticate, resolved from every source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Base URL without a trailing slash.
    pub url: String,
    /// The API key.
    pub api_key: String,
}

/// Resolves the URL and key: `flag_*` (which clap already filled from `CORRAL_URL` / `CORRAL_API_KEY`) win over
/// the file. Errors say every way to set what is missing.
pub fn resolve(
    flag_url: Option<&str>,
    flag_key: Option<&str>,
    file: &FileConfig,
    path: &Path,
) -> Result<Resolved> {
    let url = flag_url
        .or(file.url.as_deref())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            CliError::Config(format!(
                "no gateway URL: pass --url, set CORRAL_URL, or run `corral config set url http://HOST:PORT` (file {})",
                path.display()
            ))
        })?;
    let api_key = flag_key
        .or(file.api_key.as_deref())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            CliError::Config(format!(
                "no API key: pass --api-key, set CORRAL_API_KEY, or run `corral config set api-key sk-corral-…` (file {}); \
                 an operator makes keys with `corral-gateway create-key --namespace NS`",
                path.display()
            ))
        })?;
    Ok(Resolved {
        url: normalize_url(url)?,
        api_key: api_key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saves_and_loads_the_file_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        assert_eq!(FileConfig::load(&path).unwrap(), FileConfig::default());
        let mut cfg = FileConfig::default();
        cfg.set(Key::Url, Some("http://localhost:8080".into()));
        cfg.set(Key::ApiKey, Some("sk-corral-x".into()));
        cfg.save(&path).unwrap();
        assert_eq!(FileConfig::load(&path).unwrap(), cfg);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        cfg.set(Key::ApiKey, None);
        cfg.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), r#"url = "http://localhost:8080""#);
    }

    #[test]
    fn a_broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "url = 3\n").unwrap();
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
        std::fs::write(&path, "colour = \"red\"\n").unwrap();
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file_and_missing_values_say_how_to_set_them() {
        let file = FileConfig {
            url: Some("http://file:1/".into()),
            api_key: Some("file-key".into()),
            ..FileConfig::default()
        };
        let p = Path::new("/x/config.toml");
        let r = resolve(None, None, &file, p).unwrap();
        assert_eq!(r.url, "http://file:1");
        assert_eq!(r.api_key, "file-key");
        let r = resolve(Some("https://flag:2"), Some("flag-key"), &file, p).unwrap();
        assert_eq!(
            (r.url.as_str(), r.api_key.as_str()),
            ("https://flag:2", "flag-key")
        );
        let err = resolve(None, Some("k"), &FileConfig::default(), p).unwrap_err();
        assert!(err.to_string().contains("CORRAL_URL"), "{err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_CONFIG);
        let err = resolve(Some("http://a"), Some("  "), &FileConfig::default(), p).unwrap_err();
        assert!(err.to_string().contains("CORRAL_API_KEY"), "{err}");
    }

    #[test]
    fn urls_must_be_http() {
        assert_eq!(normalize_url("http://h:1/prefix/").unwrap(), "http://h:1/prefix");
        for bad in ["localhost:8080", "ftp://h", "http://h/?a=1", "not a url"] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
    }
}
