//! Where the time to first token goes: a turn's hops, from the client's wall clock and the log's own clock (each
//! event's cursor, `<ms>-<seq>`, is the Redis server's time when it was appended; Redis runs on the same host, so
//! both clocks are one). The log's clock counts whole milliseconds, so each hop is known to about a millisecond.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now on the wall clock, in milliseconds since the Unix epoch.
pub fn wall_millis() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The log's clock of an event: the milliseconds of its cursor (`<ms>-<seq>`, the SSE `id`).
pub fn cursor_millis(id: &str) -> Option<f64> {
    let (ms, seq) = id.split_once('-')?;
    seq.parse::<u64>().ok()?;
    ms.parse::<u64>().ok().map(|ms| ms as f64)
}

/// What a client saw of one turn, up to its first `agent.*` event.
#[derive(Clone, Debug, Default)]
pub struct TurnStamps {
    /// When the client began to send the `user.message` (wall clock, ms).
    pub sent: f64,
    /// When the send's answer arrived (wall clock, ms).
    pub answered: f64,
    /// Each SSE event of the turn in order: its type, its log time (ms) and when it arrived (wall clock, ms).
    pub events: Vec<(String, f64, f64)>,
}

/// One turn's time to first token, hop by hop, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hops {
    /// Client → the `user.message` in the log (HTTP, authentication, session check, append and wake-up).
    pub gateway: f64,
    /// The `user.message` → the harness's first event of the turn (wake-up taken, lease, agent load, log read,
    /// append).
    pub wake: f64,
    /// The harness's first event → `span.model_request_start` appended.
    pub before_model: f64,
    /// `span.model_request_start` → the first `agent.*` event appended (context, the model's answer, append).
    pub model: f64,
    /// The first `agent.*` event appended → at the client, through the gateway's follower and SSE.
    pub sse: f64,
    /// The send's round trip, as the client saw it.
    pub send: f64,
}

impl TurnStamps {
    /// The turn's hops, or `None` when an event of the path is missing (the harness appended none between the
    /// `user.message` and the agent's answer, or no model span opened).
    pub fn hops(&self) -> Option<Hops> {
        let at = |kind: &str| self.events.iter().position(|(t, _, _)| t == kind);
        let user = at("user.message")?;
        let span = at("span.model_request_start")?;
        let agent = self.events.iter().position(|(t, _, _)| t.starts_with("agent."))?;
        let first = user + 1;
        if !(first <= span && span < agent) {
            return None;
        }
        let log = |i: usize| self.events[i].1;
        Some(Hops {
            gateway: log(user) - self.sent,
            wake: log(first) - log(user),
            before_model: log(span) - log(first),
            model: log(agent) - log(span),
            sse: self.events[agent].2 - log(agent),
            send: self.answered - self.sent,
        })
    }
}

/// Prints the median and 95th percentile of each hop over `samples`.
pub fn report(samples: &[Hops]) {
    let hop = |name: &str, of: fn(&Hops) -> f64| {
        let mut values: Vec<f64> = samples.iter().map(of).collect();
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        println!("  {name}: p50 {:.1}ms, p95 {:.1}ms", rank(0.5), rank(0.95));
    };
    if samples.is_empty() {
        return;
    }
    println!(
        "where the time goes over {} turns (log clock in whole ms):",
        samples.len()
    );
    hop("gateway: send → user.message in the log", |h| h.gateway);
    hop(
        "harness: user.message → its first event (wake-up, lease, agent, log read)",
        |h| h.wake,
    );
    hop("harness: → span.model_request_start", |h| h.before_model);
    hop("harness + provider: → first agent.* in the log", |h| h.model);
    hop("SSE: first agent.* in the log → at the client", |h| h.sse);
    hop("the send's round trip", |h| h.send);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(events: &[(&str, f64, f64)]) -> TurnStamps {
        TurnStamps {
            sent: 1000.2,
            answered: 1003.0,
            events: events
                .iter()
                .map(|(t, log, at)| ((*t).to_owned(), *log, *at))
                .collect(),
        }
    }

    #[test]
    fn cursors_give_the_log_clock() {
        assert_eq!(cursor_millis("1700000000123-4"), Some(1_700_000_000_123.0));
        assert_eq!(cursor_millis("1700000000123"), None);
        assert_eq!(cursor_millis("x-1"), None);
    }

    #[test]
    fn hops_split_the_time_to_first_token() {
        let hops = stamps(&[
            ("user.message", 1002.0, 1004.0),
            ("session.status_running", 1010.0, 1011.0),
            ("span.model_request_start", 1012.0, 1013.0),
            ("agent.message", 1015.0, 1016.5),
        ])
        .hops()
        .unwrap();
        assert_eq!(
            hops,
            Hops {
                gateway: 1002.0 - 1000.2,
                wake: 8.0,
                before_model: 2.0,
                model: 3.0,
                sse: 1.5,
                send: 1003.0 - 1000.2,
            }
        );
        let sum = hops.gateway + hops.wake + hops.before_model + hops.model + hops.sse;
        assert!(
            (sum - (1016.5 - 1000.2)).abs() < 1e-9,
            "the hops add up to the whole"
        );
    }

    #[test]
    fn a_turn_without_the_paths_events_has_no_hops() {
        assert!(
            stamps(&[("user.message", 1.0, 1.0), ("agent.message", 2.0, 2.0)])
                .hops()
                .is_none()
        );
        assert!(
            stamps(&[
                ("user.message", 1.0, 1.0),
                ("agent.message", 2.0, 2.0),
                ("span.model_request_start", 3.0, 3.0),
            ])
            .hops()
            .is_none()
        );
    }
}
