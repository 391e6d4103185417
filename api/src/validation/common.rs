//! Rules of the parts several resources share: `metadata`, Secret and ConfigMap references, budgets, URLs.

use super::{SpecError, rule};
use crate::{
    budget::{Budget, USD},
    common::{ConfigMapKeyRef, LocalObjectRef, METADATA_RULE_MESSAGE, Metadata, SecretKeyRef},
};

/// The string is 1 to `max` characters.
pub(super) fn between(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

/// The string starts with `http://` or `https://`.
pub(super) fn http_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// `metadata` (at `field`): at most 16 pairs, keys of 1 to 64 characters, values of at most 512.
pub fn validate_metadata(field: &str, metadata: &Metadata) -> Result<(), SpecError> {
    let ok = metadata.len() <= 16
        && metadata
            .iter()
            .all(|(k, v)| between(k, 1, 64) && v.chars().count() <= 512);
    rule(ok, || field.to_owned(), METADATA_RULE_MESSAGE)
}

/// A Secret key reference at `field`.
pub(super) fn secret_ref(field: &str, r: &SecretKeyRef) -> Result<(), SpecError> {
    rule(
        !r.name.is_empty(),
        || format!("{field}.name"),
        "secret name must not be empty",
    )?;
    rule(
        !r.key.is_empty(),
        || format!("{field}.key"),
        "secret key must not be empty",
    )
}

/// A ConfigMap key reference at `field`.
pub(super) fn config_map_ref(field: &str, r: &ConfigMapKeyRef) -> Result<(), SpecError> {
    rule(
        !r.name.is_empty(),
        || format!("{field}.name"),
        "configmap name must not be empty",
    )?;
    rule(
        !r.key.is_empty(),
        || format!("{field}.key"),
        "configmap key must not be empty",
    )
}

/// A reference by name at `field`.
pub(super) fn local_ref(field: &str, r: &LocalObjectRef) -> Result<(), SpecError> {
    rule(
        !r.name.is_empty(),
        || format!("{field}.name"),
        "name must not be empty",
    )
}

/// A budget at `field`: `maxCost` (a decimal string of cents, in USD) or `maxTokens` (at least 1), or both.
pub fn validate_budget(field: &str, budget: &Budget) -> Result<(), SpecError> {
    rule(
        budget.max_cost.is_some() || budget.max_tokens.is_some(),
        || field.to_owned(),
        "a budget needs maxCost or maxTokens",
    )?;
    if let Some(cost) = &budget.max_cost {
        rule(
            decimal_cents(&cost.amount),
            || format!("{field}.maxCost.amount"),
            "amount must be a non-negative decimal number of cents, such as \"2500\" or \"0.42\"",
        )?;
        rule(
            cost.currency == USD,
            || format!("{field}.maxCost.currency"),
            "currency must be USD",
        )?;
    }
    rule(
        budget.max_tokens.is_none_or(|t| t >= 1),
        || format!("{field}.maxTokens"),
        "maxTokens must be at least 1",
    )
}

/// `^[0-9]{1,15}(\.[0-9]{1,9})?$`.
fn decimal_cents(amount: &str) -> bool {
    let digits = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    match amount.split_once('.') {
        Some((whole, fraction)) => digits(whole, 15) && digits(fraction, 9),
        None => digits(amount, 15),
    }
}
