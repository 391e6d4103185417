//! Shared setup: a real redis-server per test and a store connected to it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use corral_api::events::{AgentMessage, ContentBlock, EventBody, UserMessage};
use corral_session::{Config, Store, testing::RedisServer};

/// Settings with short blocking reads, so tests that wait for nothing finish quickly.
pub fn config() -> Config {
    Config {
        block: Duration::from_millis(200),
        ..Config::default()
    }
}

/// Starts a redis-server and connects a store to it.
pub async fn start() -> (RedisServer, Store) {
    start_with(config()).await
}

/// Starts a redis-server and connects a store with `config` to it.
pub async fn start_with(config: Config) -> (RedisServer, Store) {
    let server = RedisServer::start().expect("redis-server starts (run hack/tools.sh)");
    let store = Store::connect(&server.url(), config).await.expect("connects");
    (server, store)
}

/// A `user.message` with one text block.
pub fn user(text: &str) -> EventBody {
    EventBody::UserMessage(UserMessage {
        content: vec![ContentBlock::text(text)],
    })
}

/// An `agent.message` with one text block.
pub fn agent(text: &str) -> EventBody {
    EventBody::AgentMessage(AgentMessage {
        content: vec![ContentBlock::text(text)],
        session_thread_id: None,
    })
}

/// The text of a message event.
pub fn text_of(body: &EventBody) -> String {
    match body {
        EventBody::UserMessage(m) => m.content[0].as_text().unwrap().to_owned(),
        EventBody::AgentMessage(m) => m.content[0].as_text().unwrap().to_owned(),
        other => panic!("not a message: {other:?}"),
    }
}
