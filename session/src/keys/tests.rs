use std::collections::BTreeSet;

use super::*;

/// What Redis Cluster hashes: the part between the first `{` and the next `}`, when non-empty; else the key.
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// Every key of a tenant this module can name.
fn tenant_keys(tenant: &Tenant) -> Vec<String> {
    let session = tenant.session("sesn_1");
    let env = tenant.environment("env-1");
    let mem = tenant.memory_store("notes");
    let files = tenant.files();
    let skills = tenant.skills();
    let thread = session.thread("sthr_1");
    let mut keys = session.all();
    keys.extend([
        session.idempotency("retry-1"),
        session.deltas(),
        thread.events(),
        thread.lease(),
        thread.fence(),
        tenant.agent_spend("coder"),
        tenant.follow_doorbell("gw-1"),
        tenant.sandbox_token("sandbox-sesn_1"),
        tenant.replica("harness-0"),
        tenant.replica_sessions("harness-0", 3),
        tenant.replica_reaped("harness-0"),
        tenant.replica_reaped_in_shard("harness-0", 3),
        tenant.replicas(),
        tenant.reaping(),
        tenant.outbox(3),
        tenant.delivery(3, "dlv_1"),
        tenant.webhook_log("whk_1"),
        env.work(),
        env.work_item("work_1"),
        env.warm_pool(),
        tenant.memory_stores(),
        files.index(),
        files.scope("sesn_1"),
        files.expiring(),
        files.file("file_1"),
        skills.index(),
        skills.skill("skill_1"),
        skills.versions("skill_1"),
        skills.version("skill_1", "1759178010641129"),
    ]);
    keys.extend(tenant.wakeup_queues());
    keys.extend(memory_store_keys(&mem));
    keys
}

/// Every key of one memory store.
fn memory_store_keys(mem: &MemoryStoreKeys) -> Vec<String> {
    vec![
        mem.store(),
        mem.paths(),
        mem.tree(),
        mem.memory("mem_1"),
        mem.versions("mem_1"),
        mem.all_versions(),
        mem.version("memver_1"),
    ]
}

#[test]
fn a_sessions_keys_and_its_wakeup_shard_share_one_slot() {
    let keys = SessionKeys::new("team-a", "sesn_1");
    let tag = keys.tag();
    let thread = keys.thread("sthr_1");
    for key in keys.all().into_iter().chain([
        keys.wakeups(),
        keys.idempotency("k"),
        keys.deltas(),
        thread.events(),
        keys.tenant().replica_sessions("harness-0-00ff", keys.shard()),
    ]) {
        assert_eq!(format!("{{{}}}", hash_tag(&key)), tag, "{key}");
    }
    assert_eq!(tag, format!("{{team-a:{}}}", shard_of("sesn_1")));
    assert_eq!(keys.wakeups(), keys.tenant().wakeups(keys.shard()));
    assert_ne!(keys.events(), keys.lease());
}

#[test]
fn every_tenant_key_is_under_the_tenants_acl_prefix_and_no_other() {
    let a = Tenant::new("team-a");
    let longer = Tenant::new("team-ab");
    let keys = tenant_keys(&a);
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "two names for one key");
    assert_eq!(tenant_acl_keys("team-a"), "~corral:t:team-a:*");
    assert_eq!(tenant_acl_channels("team-a"), "&corral:t:team-a:*");
    for key in &keys {
        assert!(key.starts_with(a.prefix()), "{key}");
        assert!(!key.starts_with(longer.prefix()), "{key}");
        assert!(!key.starts_with(SYSTEM_PREFIX), "{key}");
    }
    for key in tenant_keys(&longer) {
        assert!(!key.starts_with(a.prefix()), "team-a's pattern reaches {key}");
    }
    assert!(system::layout().starts_with(SYSTEM_PREFIX));
    assert!(system::expiring_file_namespaces().starts_with(SYSTEM_PREFIX));
    assert_ne!(a.follow_doorbell("gw-1"), a.follow_doorbell("gw-2"));
}

#[test]
fn the_shard_of_a_session_is_pinned() {
    // These figures are part of the layout (also computed with Python's hashlib, so any language gets them): if
    // they change, every session moves to another tag.
    let pinned: Vec<u16> = ["sesn_1", "sesn_2", "s", "sesn_01jabcdefghjkmnpqrstvwxyz"]
        .iter()
        .map(|s| shard_of(s))
        .collect();
    assert_eq!(pinned, PINNED_SHARDS);
}

const PINNED_SHARDS: [u16; 4] = [12, 0, 13, 5];

#[test]
fn sessions_spread_over_every_shard() {
    let shards: BTreeSet<u16> = (0..2000).map(|i| shard_of(&format!("sesn_{i}"))).collect();
    assert_eq!(shards.len(), usize::from(WAKEUP_SHARDS));
    assert!(shards.iter().all(|s| *s < WAKEUP_SHARDS));
}

#[test]
fn a_client_chosen_idempotency_key_cannot_break_the_tag_or_prefix() {
    let keys = SessionKeys::new("ns", "sesn_1");
    let key = keys.idempotency("}{corral:t:other:*");
    assert_eq!(format!("{{{}}}", hash_tag(&key)), keys.tag());
    assert!(!key.contains("other"));
    assert_ne!(key, keys.idempotency("another"));
    assert_eq!(key, keys.idempotency("}{corral:t:other:*"));
}

#[test]
fn a_sandbox_token_is_a_tenant_key_named_after_its_pod() {
    let key = Tenant::new("team-a").sandbox_token("sandbox-s1");
    assert_eq!(key, "corral:t:team-a:sandbox:sandbox-s1:token");
    assert_ne!(key, Tenant::new("team-b").sandbox_token("sandbox-s1"));
}

#[test]
fn sandbox_token_keys_are_parsed_back_and_nothing_else_is() {
    let key = Tenant::new("team-a").sandbox_token("warm-py-1a2b3c4d");
    assert_eq!(parse_sandbox_token(&key), Some(("team-a", "warm-py-1a2b3c4d")));
    // The pattern's literal parts, in order, are the key's.
    let mut rest = key.as_str();
    for (i, part) in SANDBOX_TOKENS_PATTERN.split('*').enumerate() {
        let at = if i == 0 {
            rest.strip_prefix(part).map(|_| 0)
        } else {
            rest.find(part)
        };
        let at = at.unwrap_or_else(|| panic!("the SCAN pattern misses {key} at {part:?}"));
        rest = &rest[at + part.len()..];
    }
    assert!(rest.is_empty(), "the SCAN pattern matches all of {key}");
    let tenant = Tenant::new("team-a");
    for other in tenant_keys(&tenant) {
        let expected =
            (other == tenant.sandbox_token("sandbox-sesn_1")).then_some(("team-a", "sandbox-sesn_1"));
        assert_eq!(parse_sandbox_token(&other), expected, "{other}");
    }
    for other in [
        "corral:t:team-a:sandbox:a:b:token",
        "corral:t:team-a:sandbox::token",
        "corral:t:{team-a:1}:sandbox:p:token",
        "corral:sys:sandbox:p:token",
    ] {
        assert_eq!(parse_sandbox_token(other), None, "{other}");
    }
}

#[test]
fn a_tenants_skill_keys_share_one_slot_under_its_prefix() {
    let skills = Tenant::new("team-a").skills();
    for key in [
        skills.index(),
        skills.skill("skill_1"),
        skills.versions("skill_1"),
        skills.version("skill_1", "1759178010641129"),
    ] {
        assert_eq!(hash_tag(&key), "team-a:skills", "{key}");
        assert!(key.starts_with("corral:t:team-a:"), "{key}");
    }
}

#[test]
fn a_memory_stores_keys_share_one_slot_under_its_tenants_prefix() {
    let tenant = Tenant::new("team-a");
    let mem = tenant.memory_store("memstore_1");
    for key in memory_store_keys(&mem) {
        assert_eq!(hash_tag(&key), "team-a:mem:memstore_1", "{key}");
        assert!(key.starts_with(mem.base()), "{key}");
    }
    assert_eq!(hash_tag(&tenant.memory_stores()), "team-a:memstores");
    assert!(tenant.memory_stores().starts_with("corral:t:team-a:"));
}

#[test]
fn a_tenants_file_keys_share_one_slot() {
    let files = Tenant::new("team-a").files();
    for key in [
        files.index(),
        files.scope("sesn_1"),
        files.expiring(),
        files.file("file_1"),
    ] {
        assert_eq!(hash_tag(&key), "team-a:files", "{key}");
        assert!(key.starts_with("corral:t:team-a:"), "{key}");
    }
    // The quota's keys share the slot (one script charges and indexes a file) but the tenant's user cannot write
    // them: a tenant that could lower its own usage would have no quota.
    for key in [files.usage(), files.charged()] {
        assert_eq!(hash_tag(&key), "team-a:files", "{key}");
        assert!(key.starts_with(SYSTEM_PREFIX), "{key}");
        assert!(!key.starts_with(&tenant_prefix("team-a")), "{key}");
    }
}
