//! How many uploads one gateway streams at once: each holds up to three 8 MiB parts in memory, so a bound on
//! uploads is a bound on memory. One namespace may not take every slot.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Upload slots: a total for the gateway and a share per namespace.
#[derive(Debug, Clone)]
pub struct UploadSlots {
    total: usize,
    per_namespace: usize,
    in_use: Arc<Mutex<HashMap<String, usize>>>,
}

/// Why no slot was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The namespace has `per_namespace` uploads in progress.
    Namespace(usize),
    /// The gateway has `total` uploads in progress.
    Gateway(usize),
}

/// A slot held for one upload; dropping it frees the slot.
#[derive(Debug)]
pub struct UploadSlot {
    namespace: String,
    in_use: Arc<Mutex<HashMap<String, usize>>>,
}

impl UploadSlots {
    /// At most `total` uploads at once, `per_namespace` of them from one namespace.
    pub fn new(total: usize, per_namespace: usize) -> Self {
        Self {
            total,
            per_namespace,
            in_use: Arc::default(),
        }
    }

    /// A slot for an upload from `namespace`, unless the namespace's share or the gateway's total is taken.
    pub fn acquire(&self, namespace: &str) -> Result<UploadSlot, Busy> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if in_use.get(namespace).copied().unwrap_or(0) >= self.per_namespace {
            return Err(Busy::Namespace(self.per_namespace));
        }
        if in_use.values().sum::<usize>() >= self.total {
            return Err(Busy::Gateway(self.total));
        }
        *in_use.entry(namespace.to_owned()).or_default() += 1;
        Ok(UploadSlot {
            namespace: namespace.to_owned(),
            in_use: self.in_use.clone(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = in_use.get_mut(&self.namespace) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(&self.namespace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_gets_its_share_and_the_gateway_its_total_and_dropping_frees_a_slot() {
        let slots = UploadSlots::new(3, 2);
        let a1 = slots.acquire("a").unwrap();
        let _a2 = slots.acquire("a").unwrap();
        assert_eq!(slots.acquire("a").unwrap_err(), Busy::Namespace(2));
        let _b1 = slots.acquire("b").unwrap();
        assert_eq!(slots.acquire("c").unwrap_err(), Busy::Gateway(3));
        drop(a1);
        let _c1 = slots.acquire("c").expect("a freed slot is free again");
        assert_eq!(slots.acquire("b").unwrap_err(), Busy::Gateway(3));
    }
}
