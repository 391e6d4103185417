//! What the sessions of one agent have spent, for an agent-wide budget: one hash per agent holding each session's
//! running total. A session's entry is overwritten with its total as its log shows it, so recording is idempotent
//! (a harness that replays a turn after a crash writes the same figures again) and the agent's spend is the sum of
//! the entries. Entries outlive their sessions: spend stays spent.

use std::collections::HashMap;

use redis::AsyncCommands as _;

use crate::{Result, Store, keys::Tenant};

/// One session's running total.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SessionSpend {
    /// Tokens of every kind.
    pub tokens: u64,
    /// Estimated list-price cost in cents; `None` when some of it could not be priced.
    pub cents: Option<f64>,
}

impl SessionSpend {
    fn encode(self) -> String {
        match self.cents {
            Some(cents) => format!("{} {cents}", self.tokens),
            None => format!("{} -", self.tokens),
        }
    }

    fn decode(value: &str) -> Option<Self> {
        let (tokens, cents) = value.split_once(' ')?;
        Some(Self {
            tokens: tokens.parse().ok()?,
            cents: match cents {
                "-" => None,
                cents => Some(cents.parse().ok().filter(|c: &f64| c.is_finite() && *c >= 0.0)?),
            },
        })
    }
}

impl Store {
    /// Records `spend` as the running total of `session` of `agent`.
    pub async fn record_spend(
        &self,
        namespace: &str,
        agent: &str,
        session: &str,
        spend: SessionSpend,
    ) -> Result<()> {
        let mut conn = self.connection();
        let key = Tenant::new(namespace).agent_spend(agent);
        self.run(
            "record spend",
            conn.hset::<_, _, _, ()>(&key, session, spend.encode()),
        )
        .await
    }

    /// The running total of every session of `agent` that has spent anything, by session. Entries that do not
    /// parse (written by something else) are left out.
    pub async fn spend_by_session(
        &self,
        namespace: &str,
        agent: &str,
    ) -> Result<HashMap<String, SessionSpend>> {
        let mut conn = self.connection();
        let key = Tenant::new(namespace).agent_spend(agent);
        let entries: HashMap<String, String> = self.run("read spend", conn.hgetall(&key)).await?;
        Ok(entries
            .into_iter()
            .filter_map(|(session, value)| Some((session, SessionSpend::decode(&value)?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spend_reads_back_as_written() {
        for spend in [
            SessionSpend {
                tokens: 1200,
                cents: Some(2.04),
            },
            SessionSpend {
                tokens: 7,
                cents: None,
            },
            SessionSpend::default(),
        ] {
            assert_eq!(SessionSpend::decode(&spend.encode()), Some(spend));
        }
        assert_eq!(SessionSpend::decode("x 1"), None);
        assert_eq!(SessionSpend::decode("1 -3"), None);
    }
}
