//! Reads of followers behind the hub's window, limited per tenant.
//!
//! A follower whose cursor lies before its log's window (a resume from an old cursor, a slow reader, a window the
//! hub trimmed) reads the log itself. Each tenant (namespace) may have at most
//! [`crate::Config::follow_catch_up_reads`] such reads in flight at once; its other followers wait for a permit of
//! its own, so a tenant with a thousand lagging streams queues behind itself, never in front of another tenant's.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One tenant's catch-up permits and how many of them are taken.
#[derive(Debug)]
pub(super) struct TenantReads {
    permits: Arc<Semaphore>,
    in_flight: AtomicUsize,
}

/// Every followed tenant's catch-up reads, and counts over all of them.
#[derive(Debug, Default)]
pub(super) struct CatchUps {
    /// The tenants with followers, and how many followers each has.
    tenants: Mutex<HashMap<String, (Arc<TenantReads>, usize)>>,
    /// Reads made since the hub started.
    pub reads: AtomicU64,
    /// Reads in flight now, all tenants together.
    pub in_flight: AtomicUsize,
    /// The most reads one tenant had in flight at once since the hub started.
    pub peak: AtomicUsize,
}

/// A catch-up read's permit: while it lives, the read counts against its tenant's cap.
pub(super) struct Permit<'a> {
    catch_ups: &'a CatchUps,
    tenant: &'a TenantReads,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.tenant.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.catch_ups.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CatchUps {
    /// The reads of `namespace`, counting one more follower of it; `per_tenant` (0: no cap) sizes a new tenant's
    /// permits.
    pub fn join(&self, namespace: &str, per_tenant: usize) -> Arc<TenantReads> {
        let mut tenants = self.tenants();
        let (reads, followers) = tenants.entry(namespace.to_owned()).or_insert_with(|| {
            let permits = if per_tenant == 0 {
                Semaphore::MAX_PERMITS
            } else {
                per_tenant
            };
            let reads = TenantReads {
                permits: Arc::new(Semaphore::new(permits)),
                in_flight: AtomicUsize::new(0),
            };
            (Arc::new(reads), 0)
        });
        *followers += 1;
        reads.clone()
    }

    /// Counts one follower of `namespace` less, forgetting the tenant after its last.
    pub fn leave(&self, namespace: &str) {
        let mut tenants = self.tenants();
        if let Some((_, followers)) = tenants.get_mut(namespace) {
            *followers = followers.saturating_sub(1);
            if *followers == 0 {
                tenants.remove(namespace);
            }
        }
    }

    /// Waits for one of `tenant`'s permits (cancel-safe: a dropped wait takes none).
    pub async fn permit<'a>(&'a self, tenant: &'a TenantReads) -> Permit<'a> {
        let permit = tenant
            .permits
            .clone()
            .acquire_owned()
            .await
            // The semaphore is never closed.
            .unwrap_or_else(|_| unreachable!("catch-up permits are never closed"));
        let now = tenant.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        Permit {
            catch_ups: self,
            tenant,
            _permit: permit,
        }
    }

    fn tenants(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<TenantReads>, usize)>> {
        self.tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
