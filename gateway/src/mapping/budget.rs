//! The API's session `budget` (`{type:"limit", max_list_cost:{amount, currency}}`) and Corral's `max_tokens`
//! extension, to and from the Session's `spec.budget`.

use corral_api::{
    budget::{Budget, Money, USD},
    validation::validate_budget,
};
use serde_json::Value;
#[cfg(test)]
use serde_json::json;

use super::common::spec_error;
use crate::error::ApiError;

/// Parses a budget object of a create or update request.
pub fn parse(value: &Value) -> Result<Budget, ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::field("budget", "must be an object or null"));
    };
    match object.get("type").and_then(Value::as_str) {
        Some("limit") => {}
        _ => return Err(ApiError::field("budget.type", "must be \"limit\"")),
    }
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "max_list_cost" | "max_tokens"))
    {
        return Err(ApiError::field(&format!("budget.{key}"), "is not a budget field"));
    }
    let max_cost = match object.get("max_list_cost") {
        None | Some(Value::Null) => None,
        Some(cost) => Some(money(cost)?),
    };
    let max_tokens = match object.get("max_tokens") {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_i64()
                .ok_or_else(|| ApiError::field("budget.max_tokens", "must be an integer"))?,
        ),
    };
    let budget = Budget { max_cost, max_tokens };
    validate_budget("spec.budget", &budget).map_err(spec_error)?;
    Ok(budget)
}

fn money(value: &Value) -> Result<Money, ApiError> {
    let amount = value
        .get("amount")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::field("budget.max_list_cost.amount", "must be a decimal string of cents"))?;
    let currency = match value.get("currency") {
        None | Some(Value::Null) => USD,
        Some(c) => c
            .as_str()
            .ok_or_else(|| ApiError::field("budget.max_list_cost.currency", "must be USD"))?,
    };
    Ok(Money {
        amount: amount.to_owned(),
        currency: currency.to_owned(),
    })
}

/// The API's budget object of `budget`.
pub fn object(budget: &Budget) -> Value {
    budget.to_api()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_shape_round_trips() {
        let value = json!({ "type": "limit", "max_list_cost": { "amount": "2500", "currency": "USD" } });
        let budget = parse(&value).unwrap();
        assert_eq!(budget.max_cost.as_ref().unwrap().cents(), Some(2500.0));
        assert_eq!(object(&budget), value);
        let tokens = parse(&json!({ "type": "limit", "max_tokens": 1000 })).unwrap();
        assert_eq!(tokens.max_tokens, Some(1000));
    }

    #[test]
    fn bad_budgets_name_the_field() {
        for (bad, field) in [
            (json!("x"), "budget:"),
            (json!({ "type": "cap" }), "budget.type"),
            (json!({ "type": "limit" }), "budget:"),
            (
                json!({ "type": "limit", "max_list_cost": { "amount": "-1" } }),
                "budget.max_list_cost.amount",
            ),
            (
                json!({ "type": "limit", "max_list_cost": { "amount": 25 } }),
                "budget.max_list_cost.amount",
            ),
            (
                json!({ "type": "limit", "max_list_cost": { "amount": "1", "currency": "EUR" } }),
                "budget.max_list_cost.currency",
            ),
            (json!({ "type": "limit", "max_tokens": 0 }), "budget.max_tokens"),
            (
                json!({ "type": "limit", "max_tokens": 5, "extra": 1 }),
                "budget.extra",
            ),
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(err.message.starts_with(field), "{bad}: {}", err.message);
        }
    }
}
