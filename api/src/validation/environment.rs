//! The rules of an Environment's spec.

use std::time::Duration;

use super::{
    SpecError,
    common::{between, validate_metadata},
    idle_timeout, rule,
};
use crate::environment::{EnvironmentSpec, NetworkingType, Packages, SandboxSpec, WorkspaceType};

/// Checks an Environment spec: its CEL rules, and an idle timeout that parses and is at least 10 seconds.
pub fn validate_environment(spec: &EnvironmentSpec) -> Result<(), SpecError> {
    if let Some(name) = &spec.name {
        rule(
            between(name, 1, 256),
            || "spec.name".into(),
            "name must be 1 to 256 characters",
        )?;
    }
    validate_metadata("spec.metadata", &spec.metadata)?;
    let net = &spec.config.networking;
    let limited = net.kind == NetworkingType::Limited;
    rule(
        limited
            || (net.allowed_hosts.is_none()
                && net.allow_mcp_servers.is_none()
                && net.allow_package_managers.is_none()),
        || "spec.config.networking".into(),
        "allowedHosts, allowMcpServers and allowPackageManagers apply only to limited networking",
    )?;
    for (i, host) in net.allowed_hosts.iter().flatten().enumerate() {
        rule(
            valid_host(host),
            || format!("spec.config.networking.allowedHosts[{i}]"),
            "allowedHosts entries must be host names, optionally with a leading *. and a :port",
        )?;
    }
    packages(&spec.config.packages)?;
    rule(
        !limited || net.allow_package_managers == Some(true) || !has_packages(&spec.config.packages),
        || "spec.config.packages".into(),
        "packages under limited networking require networking.allowPackageManagers: true",
    )?;
    sandbox(&spec.sandbox)?;
    // Rust only: the idle timeout's value.
    let timeout = idle_timeout(spec)?;
    rule(
        timeout >= Duration::from_secs(10),
        || "spec.sandbox.idleTimeout".into(),
        "idleTimeout must be at least 10s",
    )
}

/// `^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$`.
fn valid_host(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && name.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && name.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
    port_ok && name_ok
}

fn managers(p: &Packages) -> [(&'static str, &Option<Vec<String>>); 6] {
    [
        ("apt", &p.apt),
        ("cargo", &p.cargo),
        ("gem", &p.gem),
        ("go", &p.go),
        ("npm", &p.npm),
        ("pip", &p.pip),
    ]
}

fn has_packages(p: &Packages) -> bool {
    managers(p)
        .iter()
        .any(|(_, list)| list.as_ref().is_some_and(|l| !l.is_empty()))
}

/// `^[^-\s][^\s]*$` for every entry.
fn packages(p: &Packages) -> Result<(), SpecError> {
    for (manager, list) in managers(p) {
        for (i, entry) in list.iter().flatten().enumerate() {
            let ok = !entry.is_empty()
                && !entry.starts_with('-')
                && !entry.bytes().any(|b| b.is_ascii_whitespace());
            rule(
                ok,
                || format!("spec.config.packages.{manager}[{i}]"),
                "package entries must be non-empty, without whitespace, and must not start with -",
            )?;
        }
    }
    Ok(())
}

fn sandbox(s: &SandboxSpec) -> Result<(), SpecError> {
    let at = "spec.sandbox";
    rule(
        s.image.as_ref().is_none_or(|i| !i.is_empty()),
        || format!("{at}.image"),
        "image must not be empty",
    )?;
    rule(
        s.image_pull_policy
            .as_deref()
            .is_none_or(|p| matches!(p, "Always" | "IfNotPresent" | "Never")),
        || format!("{at}.imagePullPolicy"),
        "imagePullPolicy must be Always, IfNotPresent or Never",
    )?;
    rule(
        s.env.iter().all(|e| !e.name.starts_with("CORRAL_")),
        || format!("{at}.env"),
        "env names starting with CORRAL_ are reserved",
    )?;
    for (i, var) in s.env.iter().enumerate() {
        let ok = var
            .name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && var.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        rule(
            ok,
            || format!("{at}.env[{i}].name"),
            "env names are letters, digits and underscores, not starting with a digit",
        )?;
    }
    rule(
        s.warm_pool.is_none_or(|w| (0..=100).contains(&w)),
        || format!("{at}.warmPool"),
        "warmPool must be between 0 and 100",
    )?;
    rule(
        s.idle_timeout.as_deref().is_none_or(duration_text),
        || format!("{at}.idleTimeout"),
        "idleTimeout must be a duration such as 90s, 15m or 1h30m",
    )?;
    let w = &s.workspace;
    rule(
        w.kind == WorkspaceType::Persistent || (w.size.is_none() && w.storage_class_name.is_none()),
        || format!("{at}.workspace"),
        "size and storageClassName apply only to a persistent workspace",
    )?;
    rule(
        w.size.as_deref().is_none_or(quantity),
        || format!("{at}.workspace.size"),
        "size must be a quantity such as 512Mi or 5Gi",
    )
}

/// `^([0-9]+(s|m|h))+$`.
fn duration_text(text: &str) -> bool {
    let mut digits = 0;
    for b in text.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b's' | b'm' | b'h' if digits > 0 => digits = 0,
            _ => return false,
        }
    }
    !text.is_empty() && digits == 0
}

/// `^[0-9]+(Ki|Mi|Gi|Ti)$`.
fn quantity(text: &str) -> bool {
    ["Ki", "Mi", "Gi", "Ti"].iter().any(|unit| {
        text.strip_suffix(unit)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::reasons;

    #[test]
    fn idle_timeout_must_parse_and_be_long_enough() {
        let mut spec = EnvironmentSpec::default();
        assert_eq!(
            idle_timeout(&spec),
            Ok(Duration::from_secs(900)),
            "15 minutes by default"
        );
        spec.sandbox.idle_timeout = Some("1h30m".into());
        assert_eq!(idle_timeout(&spec), Ok(Duration::from_secs(5400)));
        spec.sandbox.idle_timeout = Some("3s".into());
        assert!(
            validate_environment(&spec)
                .unwrap_err()
                .message
                .contains("at least 10s")
        );
        spec.sandbox.idle_timeout = Some("soon".into());
        let err = validate_environment(&spec).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.reason),
            ("spec.sandbox.idleTimeout", reasons::INVALID_SPEC)
        );
    }

    #[test]
    fn hosts_durations_and_quantities() {
        for ok in ["a", "*.example.com", "example.com:8443", "10.0.0.1"] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "*.", "a:", "a:123456", "a b", "a/b"] {
            assert!(!valid_host(bad), "{bad}");
        }
        assert!(duration_text("1h30m") && duration_text("90s"));
        assert!(!duration_text("") && !duration_text("m") && !duration_text("10") && !duration_text("1d"));
        assert!(quantity("5Gi") && !quantity("Gi") && !quantity("5G"));
    }
}
