//! The follow hub's memory budget, split fairly between tenants.
//!
//! Each tenant (namespace) may hold at most its own cap ([`crate::Config::follow_hub_tenant_bytes`], when set), and
//! all tenants together at most the process's budget ([`crate::Config::follow_hub_bytes`]). Past the process's
//! budget the hub takes from the tenant that holds the most, so every tenant keeps at least
//! `min(what it holds, budget / tenants holding events)`: a tenant following a thousand logs of large events trims
//! only its own windows, and another tenant's stay whole. Within a tenant the largest window gives first, so a log of
//! small events keeps its window while another log's large events fill the tenant's share.

use std::collections::{BinaryHeap, HashMap};

use super::{Followed, HELD_PER_ENTRY_BYTE};

/// The hub's two budgets, in bytes of memory (counted as [`HELD_PER_ENTRY_BYTE`] per byte of entry).
#[derive(Clone, Copy, Debug)]
pub(super) struct Budget {
    /// All tenants together.
    pub process: usize,
    /// One tenant (`usize::MAX`: no cap of its own, only its fair share of `process`).
    pub tenant: usize,
}

/// Bytes of entries the hub forgot to keep within its budgets, by the budget that made it forget them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Forgotten {
    /// Forgotten because their tenant was over its own cap.
    pub tenant_cap: usize,
    /// Forgotten because all tenants together were over the process's budget (from the tenant holding the most).
    pub process_budget: usize,
}

/// One tenant's windows: what they hold, and the logs with events, largest window on top.
#[derive(Default)]
struct TenantWindows {
    held: usize,
    largest: BinaryHeap<(usize, String)>,
}

impl TenantWindows {
    /// Forgets the oldest event of this tenant's largest window; answers its size (none when nothing is left).
    fn forget_one(&mut self, logs: &mut HashMap<String, Followed>) -> Option<usize> {
        loop {
            let (_, key) = self.largest.pop()?;
            let Some(window) = logs.get_mut(&key).map(|f| &mut f.window) else {
                continue;
            };
            let Some(size) = window.forget_oldest() else {
                continue;
            };
            if !window.events.is_empty() {
                self.largest.push((window.bytes, key));
            }
            self.held = self.held.saturating_sub(size * HELD_PER_ENTRY_BYTE);
            return Some(size);
        }
    }
}

/// Forgets the oldest events of the windows until every tenant holds at most `budget.tenant` and all of them at
/// most `budget.process`; answers what the windows hold then, and what was forgotten.
pub(super) fn keep_within(logs: &mut HashMap<String, Followed>, budget: Budget) -> (usize, Forgotten) {
    let mut tenants: HashMap<&str, TenantWindows> = HashMap::new();
    for (key, followed) in logs.iter() {
        let tenant = tenants.entry(followed.tenant.as_str()).or_default();
        tenant.held += followed.window.bytes * HELD_PER_ENTRY_BYTE;
        if !followed.window.events.is_empty() {
            tenant.largest.push((followed.window.bytes, key.clone()));
        }
    }
    let mut held: usize = tenants.values().map(|t| t.held).sum();
    let mut forgotten = Forgotten::default();
    if held <= budget.process && tenants.values().all(|t| t.held <= budget.tenant) {
        return (held, forgotten);
    }
    let mut tenants: Vec<TenantWindows> = tenants.into_values().collect();
    for tenant in &mut tenants {
        while tenant.held > budget.tenant {
            let Some(size) = tenant.forget_one(logs) else {
                break;
            };
            held = held.saturating_sub(size * HELD_PER_ENTRY_BYTE);
            forgotten.tenant_cap += size;
        }
    }
    let mut most: BinaryHeap<(usize, usize)> = tenants.iter().enumerate().map(|(i, t)| (t.held, i)).collect();
    while held > budget.process {
        let Some((_, i)) = most.pop() else { break };
        let tenant = &mut tenants[i];
        let Some(size) = tenant.forget_one(logs) else {
            continue;
        };
        held = held.saturating_sub(size * HELD_PER_ENTRY_BYTE);
        forgotten.process_budget += size;
        most.push((tenant.held, i));
    }
    (held, forgotten)
}
