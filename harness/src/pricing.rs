//! The price table: list prices per provider and model, in US dollars per million tokens of each kind, and the
//! estimated cost of a model request.
//!
//! The table is configuration (`--price-table` / `CORRAL_PRICE_TABLE`, YAML or JSON; the chart's `pricing` value):
//!
//! ```yaml
//! - model: claude-sonnet-4-5      # the Agent's spec.model.id
//!   provider: anthropic           # optional: anthropic, openai or scripted; any provider when omitted
//!   input: 3                      # USD per million uncached input tokens
//!   output: 15                    # USD per million output tokens
//!   cacheRead: 0.3                # optional; the input price when omitted
//!   cacheWrite: 3.75              # optional; the input price when omitted
//! ```
//!
//! A model the table does not list has no cost: its requests are recorded without one and the session's cost is
//! omitted (never shown as zero), so a cost budget cannot trip on it (token budgets still do).

use corral_api::budget::{Money, Spent};
use corral_api::events::ModelUsage;
use serde::Deserialize;

/// One model's list prices, in US dollars per million tokens.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPrice {
    /// The model id, as in the Agent's `spec.model.id`.
    pub model: String,
    /// The provider (`anthropic`, `openai`, `scripted`); any when absent.
    #[serde(default)]
    pub provider: Option<String>,
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens read from the prompt cache; the input price when absent.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Input tokens written to the prompt cache; the input price when absent.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

impl ModelPrice {
    /// The estimated list cost of `usage`, in US cents.
    pub fn cents(&self, usage: &ModelUsage) -> f64 {
        let per_million = usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + usage.cache_read_input_tokens as f64 * self.cache_read.unwrap_or(self.input)
            + usage.cache_creation_input_tokens as f64 * self.cache_write.unwrap_or(self.input);
        // USD per million tokens → cents: × 100 / 1,000,000.
        per_million / 10_000.0
    }
}

/// Why a price table does not load.
#[derive(Debug, thiserror::Error)]
pub enum PriceTableError {
    /// Not YAML/JSON of the expected shape.
    #[error("the price table does not parse: {0}")]
    Parse(#[from] serde_yaml::Error),
    /// A price is negative or not a number.
    #[error("the price table's entry for {0} has a negative or non-finite price")]
    BadPrice(String),
}

/// List prices by provider and model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    entries: Vec<ModelPrice>,
}

impl PriceTable {
    /// Parses a table (a YAML or JSON list of [`ModelPrice`]); an empty text is an empty table.
    pub fn parse(text: &str) -> Result<Self, PriceTableError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let entries: Vec<ModelPrice> = serde_yaml::from_str(text)?;
        for e in &entries {
            let prices = [Some(e.input), Some(e.output), e.cache_read, e.cache_write];
            if prices.into_iter().flatten().any(|p| !p.is_finite() || p < 0.0) {
                return Err(PriceTableError::BadPrice(e.model.clone()));
            }
        }
        Ok(Self { entries })
    }

    /// The prices of `model` served by `provider`: an entry naming the provider wins over one that does not.
    pub fn price(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        let mut fallback = None;
        for entry in self.entries.iter().filter(|e| e.model == model) {
            match entry.provider.as_deref() {
                Some(p) if p == provider => return Some(entry),
                None => {
                    fallback.get_or_insert(entry);
                }
                Some(_) => {}
            }
        }
        fallback
    }

    /// How many models the table prices.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Adds one model request (its token counts and its cost, `None` when unpriced) to `spent`. A request that used
/// tokens without a price makes the total cost unknown.
pub fn add_request(spent: &mut Spent, usage: &ModelUsage, cost_cents: Option<f64>) {
    let tokens = usage.input_tokens
        + usage.output_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_input_tokens;
    spent.tokens = spent.tokens.saturating_add(tokens);
    spent.cents = match (spent.cents, cost_cents) {
        (Some(total), Some(cost)) => Some(total + cost),
        (total, None) if tokens == 0 => total,
        _ => None,
    };
}

/// The sum of sessions' spends (an agent's, from its ledger).
pub fn sum_of(spends: impl IntoIterator<Item = corral_session::SessionSpend>) -> Spent {
    spends.into_iter().fold(nothing_spent(), |sum, s| {
        sum.plus(Spent {
            tokens: s.tokens,
            cents: s.cents,
        })
    })
}

/// Nothing spent yet: no tokens, and a known cost of zero.
pub fn nothing_spent() -> Spent {
    Spent {
        tokens: 0,
        cents: Some(0.0),
    }
}

/// The session's list cost to show: known, and for at least one token.
pub fn list_cost(spent: Spent) -> Option<Money> {
    spent.cents.filter(|_| spent.tokens > 0).map(Money::from_cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "
- {model: claude-sonnet-4-5, provider: anthropic, input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75}
- {model: claude-sonnet-4-5, input: 99, output: 99}
- {model: llama, input: 0.2, output: 0.6}
";

    #[test]
    fn each_kind_of_token_has_its_price() {
        let table = PriceTable::parse(TABLE).unwrap();
        let usage = ModelUsage {
            input_tokens: 1_000,
            output_tokens: 2_000,
            cache_read_input_tokens: 10_000,
            cache_creation_input_tokens: 4_000,
            speed: None,
        };
        // 1000×3 + 2000×15 + 10000×0.3 + 4000×3.75 = 51,000 USD per million = 0.051 USD = 5.1 cents.
        let price = table.price("anthropic", "claude-sonnet-4-5").unwrap();
        assert!(
            (price.cents(&usage) - 5.1).abs() < 1e-9,
            "{}",
            price.cents(&usage)
        );
        // The provider-less entry serves other providers; cache prices default to the input price.
        let llama = table.price("openai", "llama").unwrap();
        assert!((llama.cents(&usage) - (15_000.0 * 0.2 + 2_000.0 * 0.6) / 10_000.0).abs() < 1e-9);
        assert_eq!(table.price("openai", "claude-sonnet-4-5").unwrap().input, 99.0);
        assert!(table.price("anthropic", "unknown").is_none());
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(PriceTable::parse("- {model: m, input: -1, output: 1}").is_err());
        assert!(PriceTable::parse("- {model: m, input: 1}").is_err());
        assert!(PriceTable::parse("- {model: m, input: 1, output: 1, typo: 2}").is_err());
        assert!(PriceTable::parse("").unwrap().is_empty());
        assert_eq!(
            PriceTable::parse("[{\"model\": \"m\", \"input\": 1, \"output\": 2}]")
                .unwrap()
                .len(),
            1
        );
    }
}
