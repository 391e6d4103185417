//! Spending limits and list-price costs: a session's or an agent's `budget`, and the cost a session reports.
//!
//! A budget caps a session's spend by estimated list-price cost (`maxCost`, the API's `budget.max_list_cost`) and/or
//! by tokens (`maxTokens`, Corral's extension, counting input, output, cache-read and cache-write tokens alike).
//! When a session reaches either, the harness ends the turn with `session.status_idle{stop_reason: budget_reached}`
//! and makes no further model request. An Agent's `budget` applies to each of its sessions separately; a Session's
//! own budget takes precedence over its agent's. An Agent's `totalBudget` caps all of its sessions together.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The only currency.
pub const USD: &str = "USD";

/// An amount of money: `amount` in minor units (cents) as a decimal string, as the API writes it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// Minor units (cents) as a decimal string, for example `"2500"` for 25 dollars; fractions allowed (`"0.42"`).
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,15}(\\\\.[0-9]{1,9})?$')").message("amount must be a non-negative decimal number of cents, such as \"2500\" or \"0.42\""))]
    pub amount: String,
    /// `USD`, the only currency.
    #[serde(default = "usd")]
    #[x_kube(validation = Rule::new("self == 'USD'").message("currency must be USD"))]
    pub currency: String,
}

fn usd() -> String {
    USD.to_owned()
}

impl Money {
    /// `cents` US cents, written with at most six decimals and no trailing zeros.
    pub fn from_cents(cents: f64) -> Self {
        let mut amount = format!("{:.6}", cents.max(0.0));
        if amount.contains('.') {
            amount = amount.trim_end_matches('0').trim_end_matches('.').to_owned();
        }
        Self {
            amount,
            currency: usd(),
        }
    }

    /// The amount in cents, when it parses.
    pub fn cents(&self) -> Option<f64> {
        self.amount
            .parse::<f64>()
            .ok()
            .filter(|c| c.is_finite() && *c >= 0.0)
    }
}

/// A spending limit. At least one of `maxCost` and `maxTokens` is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.maxCost) || has(self.maxTokens)").message("a budget needs maxCost or maxTokens"))]
pub struct Budget {
    /// The most estimated list-price cost the session may reach (the API's `budget.max_list_cost`). Enforced only
    /// when the harness's price table knows the agent's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<Money>,
    /// The most tokens the session may use, all kinds counted (input, output, cache read, cache write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("maxTokens must be at least 1"))]
    pub max_tokens: Option<i64>,
}

/// How much a session has spent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spent {
    /// Tokens of every kind.
    pub tokens: u64,
    /// Estimated list-price cost in cents; `None` when some of it could not be priced.
    pub cents: Option<f64>,
}

impl Spent {
    /// The sum of two spends; the cost is unknown when either is.
    pub fn plus(self, other: Spent) -> Spent {
        Spent {
            tokens: self.tokens.saturating_add(other.tokens),
            cents: self.cents.zip(other.cents).map(|(a, b)| a + b),
        }
    }
}

impl Budget {
    /// The API's budget object: `{type:"limit", max_list_cost?:{amount, currency}, max_tokens?}` (`max_tokens` is
    /// Corral's extension).
    pub fn to_api(&self) -> serde_json::Value {
        let mut out = serde_json::json!({ "type": "limit" });
        if let Some(cost) = &self.max_cost {
            out["max_list_cost"] = serde_json::json!({ "amount": cost.amount, "currency": cost.currency });
        }
        if let Some(tokens) = self.max_tokens {
            out["max_tokens"] = serde_json::json!(tokens);
        }
        out
    }

    /// Whether `spent` reaches the budget. An unknown cost never reaches `maxCost`.
    pub fn reached(&self, spent: Spent) -> bool {
        let tokens = self
            .max_tokens
            .is_some_and(|max| i64::try_from(spent.tokens).unwrap_or(i64::MAX) >= max);
        let cost = match (self.max_cost.as_ref().and_then(Money::cents), spent.cents) {
            (Some(max), Some(cents)) => cents >= max,
            _ => false,
        };
        tokens || cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_in_cents_without_trailing_zeros() {
        assert_eq!(Money::from_cents(2500.0).amount, "2500");
        assert_eq!(Money::from_cents(0.4215).amount, "0.4215");
        assert_eq!(Money::from_cents(0.0).amount, "0");
        assert_eq!(Money::from_cents(1.5).cents(), Some(1.5));
    }

    #[test]
    fn a_budget_is_reached_at_its_limit_not_before() {
        let b = Budget {
            max_tokens: Some(100),
            max_cost: Some(Money::from_cents(10.0)),
        };
        assert!(!b.reached(Spent {
            tokens: 99,
            cents: Some(9.99)
        }));
        assert!(b.reached(Spent {
            tokens: 100,
            cents: Some(0.0)
        }));
        assert!(b.reached(Spent {
            tokens: 0,
            cents: Some(10.0)
        }));
        // A cost that could not be priced never trips maxCost.
        assert!(!b.reached(Spent {
            tokens: 0,
            cents: None
        }));
    }
}
