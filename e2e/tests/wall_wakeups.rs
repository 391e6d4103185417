//! Lost wake-ups on the real cluster: a user message whose wake-up never reached the queue (lost with a Redis
//! failover, deleted by hand) is still answered, because the leading operator's sweeper finds the idle session with
//! an unanswered message, no wake-up pending and no harness at work, and enqueues its wake-up again. The test plays
//! the loss: it appends the message through the session library without a wake-up.
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_api::{Session, events::EventBody};
use corral_e2e::{Cluster, TestNamespace, wait};
use corral_session::{Config, Order, Store};

/// The sweep interval (30 s by default) twice (an event must be a sweep interval old before it counts), and a turn.
const TIMEOUT: Duration = Duration::from_secs(180);

/// An agent that only answers.
const TALKER: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: talk-script}
data:
  script.yaml: |
    turns:
      - content:
          - text: ["Answered after all."]
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: talker}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: talk-script, key: script.yaml}}
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: box}
---
apiVersion: corral.dev/v1alpha1
kind: Session
metadata: {name: s1}
spec:
  agent: {name: talker}
  environmentRef: {name: box}
"#;

#[tokio::test]
async fn a_message_whose_wakeup_was_lost_is_answered_after_a_sweep() -> anyhow::Result<()> {
    let url = corral_e2e::installed_redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "lost-wakeup", |ns| async move {
        ns.apply(TALKER)?;
        let sessions = ns.api::<Session>();
        wait::object(&sessions, "s1", TIMEOUT, "session Ready", |s: &Session| {
            s.status
                .as_ref()
                .is_some_and(|s| corral_api::conditions::is_true(&s.conditions, "Ready"))
        })
        .await?;
        let store = Store::connect(&url, Config::default()).await?;
        let log = store.session(&ns.name, "s1");
        let message: EventBody = serde_json::from_value(serde_json::json!({
            "type": "user.message", "content": [{"type": "text", "text": "anyone there?"}]
        }))?;
        // The message lands; its wake-up does not.
        log.append_user([message]).await?;
        assert_eq!(store.wakeup_queue(&ns.name).await?.depth, 0, "no wake-up queued");

        let events = wait::until("the lost message to be answered", TIMEOUT, || async {
            let page = log.range(None, 100, Order::Asc).await?;
            let answered = page
                .events
                .iter()
                .any(|e| e.event.body.type_name() == "agent.message");
            Ok(answered.then_some(page.events))
        })
        .await?;
        let answer = events
            .iter()
            .find(|e| e.event.body.type_name() == "agent.message")
            .map(|e| serde_json::to_string(&e.event))
            .transpose()?
            .unwrap_or_default();
        assert!(answer.contains("Answered after all."), "{answer}");

        // The sweeper said what it did.
        let cluster = ns.cluster();
        let logs =
            cluster.running_pod_logs(&cluster.corral_namespace, "app.kubernetes.io/component=operator")?;
        assert!(
            logs.lines()
                .any(|l| l.contains("re-enqueued the wake-up") && l.contains(&ns.name)),
            "an operator log line names the session's namespace"
        );
        Ok(())
    })
    .await
}
