//! Finding sessions whose client event went unanswered and nothing is on its way to answer it: the newest events
//! are client events, one of them wakes the harness, no harness holds the session's lease and no wake-up of the
//! session waits in the queue. Each check reads a bounded tail of the log, never the whole log.

use std::collections::BTreeSet;

use corral_api::events::{EventType, Sender};
use redis::streams::StreamRangeReply;

use crate::{Cursor, Result, SessionLog, Store, keys::Tenant};

/// How many of the newest entries [`SessionLog::unanswered`] reads: client events after the last harness event
/// beyond this many are not looked at (a client that sends so many in a row without a wake-up is rare, and any
/// later client event that wakes the harness is found again).
pub const TAIL: usize = 16;

impl Store {
    /// The sessions of `namespace` with a wake-up in the queue (waiting, or taken by a harness that has not
    /// acknowledged it yet). Reads every shard whole: the queue holds only unfinished wake-ups.
    pub async fn sessions_with_wakeups(&self, namespace: &str) -> Result<BTreeSet<String>> {
        let mut pipe = redis::pipe();
        for key in Tenant::new(namespace).wakeup_queues() {
            pipe.cmd("XRANGE").arg(key).arg("-").arg("+");
        }
        let mut conn = self.connection();
        let shards: Vec<StreamRangeReply> = self
            .run("read the wake-up queue", async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        Ok(shards
            .iter()
            .flat_map(|shard| &shard.ids)
            .filter_map(|entry| entry.get::<String>("session"))
            .collect())
    }

    /// Redis's clock, in Unix milliseconds (the clock of every cursor).
    pub async fn now_ms(&self) -> Result<u64> {
        let mut conn = self.connection();
        let (secs, micros): (u64, u64) = self
            .run("read the time", async move {
                redis::cmd("TIME").query_async(&mut conn).await
            })
            .await?;
        Ok(secs * 1000 + micros / 1000)
    }
}

/// What the newest entries of a log say, newest first: the cursor of the newest client event that wakes the harness
/// with no harness event after it, if any.
pub fn unanswered_in<'a>(newest_first: impl IntoIterator<Item = (Cursor, &'a str)>) -> Option<Cursor> {
    for (cursor, kind) in newest_first {
        match EventType::from_name(kind).map(|t| t.props()) {
            Some(props) if props.sender == Sender::Harness => return None,
            Some(props) if props.wakes_harness => return Some(cursor),
            // Client events that wait for the next turn, the gateway's own, and types this version does not know.
            _ => {}
        }
    }
    None
}

impl SessionLog {
    /// The newest client event that should have woken the harness but has no answer, when nothing is on its way to
    /// answer it: no harness event after it and no harness holding the lease. Whether a wake-up waits in the queue
    /// is for the caller to check ([`Store::sessions_with_wakeups`]) *before* this, so that a turn that started and
    /// ended in between is seen here.
    pub async fn unanswered(&self) -> Result<Option<Cursor>> {
        Ok(match self.unanswered_or_held().await? {
            Some((cursor, None)) => Some(cursor),
            _ => None,
        })
    }

    /// Like [`SessionLog::unanswered`], but a session held by a harness replica's lease (which never expires) still
    /// answers its unanswered event, with the replica: the caller checks whether that replica still lives
    /// ([`crate::liveness::Replicas::reclaim_orphaned`]). An expiring lease still answers `None`.
    pub async fn unanswered_or_held(&self) -> Result<Option<(Cursor, Option<String>)>> {
        let mut pipe = redis::pipe();
        pipe.cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(TAIL)
            .cmd("HMGET")
            .arg(self.keys.lease())
            .arg("holder")
            .arg("mode");
        let mut conn = self.store.connection();
        let (tail, (holder, mode)): (StreamRangeReply, (Option<String>, Option<String>)) = self
            .store
            .run(
                "read the log's tail",
                async move { pipe.query_async(&mut conn).await },
            )
            .await?;
        let replica = match (holder, mode.as_deref()) {
            (None, _) => None,
            (Some(replica), Some("r")) => Some(replica),
            (Some(_), _) => return Ok(None),
        };
        let entries: Vec<(Cursor, String)> = tail
            .ids
            .iter()
            .filter_map(|e| Some((e.id.parse().ok()?, e.get::<String>("type")?)))
            .collect();
        Ok(unanswered_in(entries.iter().map(|(c, t)| (*c, t.as_str()))).map(|cursor| (cursor, replica)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Cursor {
        Cursor::new(ms, 0)
    }

    #[test]
    fn a_waking_client_event_after_the_last_harness_event_is_unanswered() {
        assert_eq!(unanswered_in([]), None);
        assert_eq!(unanswered_in([(at(3), "user.message")]), Some(at(3)));
        assert_eq!(
            unanswered_in([
                (at(4), "system.message"),
                (at(3), "session.updated"),
                (at(2), "user.tool_confirmation"),
                (at(1), "session.status_idle")
            ]),
            Some(at(2))
        );
        assert_eq!(
            unanswered_in([(at(2), "session.status_running"), (at(1), "user.message")]),
            None
        );
        assert_eq!(
            unanswered_in([(at(2), "system.message"), (at(1), "agent.message")]),
            None
        );
        assert_eq!(unanswered_in([(at(1), "user.tool_result")]), None);
    }
}
