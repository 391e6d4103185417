//! A skill's `SKILL.md`: its YAML frontmatter's `name` and `description`, and the rules they follow. One reading
//! for every source of skills (uploads through the API, ConfigMaps named in an Agent).

/// Longest skill name (slug).
pub const MAX_NAME_CHARS: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// What a `SKILL.md` says of its skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillHeader {
    /// The frontmatter's `name`, if it has one (the skill's directory names it otherwise).
    pub name: Option<String>,
    /// The frontmatter's `description`, trimmed: 1 to [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Frontmatter {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Reads `SKILL.md`'s frontmatter (YAML between `---` lines at its start); an error says what is wrong.
pub fn parse(text: &str) -> Result<SkillHeader, String> {
    let missing =
        || "SKILL.md must start with YAML frontmatter between --- lines, with a description".to_owned();
    let body = text.trim_start_matches('\u{feff}');
    let rest = body
        .strip_prefix("---\n")
        .or_else(|| body.strip_prefix("---\r\n"))
        .ok_or_else(missing)?;
    let end = rest
        .match_indices("\n---")
        .map(|(i, _)| i)
        .next()
        .or_else(|| rest.starts_with("---").then_some(0))
        .ok_or_else(missing)?;
    let front = serde_yaml::from_str::<Option<Frontmatter>>(&rest[..end])
        .map(Option::unwrap_or_default)
        .map_err(|e| format!("SKILL.md's frontmatter is not valid YAML: {e}"))?;
    let description = front.description.map(|d| d.trim().to_owned()).unwrap_or_default();
    if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "SKILL.md's frontmatter needs a description of 1 to {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    Ok(SkillHeader {
        name: front.name,
        description,
    })
}

/// Whether `name` may name a skill: 1 to [`MAX_NAME_CHARS`] lowercase letters, digits and single hyphens
/// (kebab-case); it is the skill's directory in the sandbox.
pub fn slug_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The error for a name [`slug_ok`] refuses.
pub fn bad_slug(name: &str) -> String {
    format!(
        "SKILL.md's name {name:?} must be 1 to {MAX_NAME_CHARS} lowercase letters, digits and single hyphens \
         (kebab-case)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontmatter_gives_name_and_description() {
        let header =
            parse("---\nname: csv-report\ndescription: \" Turns CSV into reports. \"\n---\n# Use\n").unwrap();
        assert_eq!(header.name.as_deref(), Some("csv-report"));
        assert_eq!(header.description, "Turns CSV into reports.");
        assert_eq!(parse("---\ndescription: d\n---").unwrap().name, None);
    }

    #[test]
    fn a_skill_md_without_frontmatter_or_description_is_refused() {
        for bad in [
            "# no frontmatter",
            "---\nname: x\n---\n",
            "---\nname: [\n---\n",
            "---\ndescription: d\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let long = format!(
            "---\ndescription: {}\n---\n",
            "d".repeat(MAX_DESCRIPTION_CHARS + 1)
        );
        assert!(parse(&long).is_err());
    }

    #[test]
    fn names_are_kebab_case_slugs() {
        assert!(slug_ok("csv-report") && slug_ok("a1"));
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "A",
            "a_b",
            &"a".repeat(MAX_NAME_CHARS + 1),
        ] {
            assert!(!slug_ok(bad), "{bad:?}");
        }
    }
}
