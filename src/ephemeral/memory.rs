//! The in-process ephemeral store of the embedded default: a mutex-guarded map with expiry
//! times. Expired entries are invisible at once and swept out as the map grows, so memory stays
//! proportional to live entries.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{EphemeralError, EphemeralStore};

/// Ephemeral state held in this process only (one replica).
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, (Vec<u8>, Instant)>,
    /// Map size after the last sweep; the next sweep runs when the map has doubled.
    swept_at_len: usize,
}

impl Entries {
    fn sweep_if_grown(&mut self, now: Instant) {
        if self.map.len() >= (self.swept_at_len * 2).max(1024) {
            self.map.retain(|_, (_, expires)| *expires > now);
            self.swept_at_len = self.map.len();
        }
    }

    fn live(&self, key: &str, now: Instant) -> Option<&Vec<u8>> {
        self.map.get(key).filter(|(_, expires)| *expires > now).map(|(v, _)| v)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map inconsistent (every operation is a
        // single map call), so a poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl EphemeralStore for MemoryStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), EphemeralError> {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.sweep_if_grown(now);
        entries.map.insert(key.to_owned(), (value, now + ttl));
        Ok(())
    }

    async fn put_new(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<bool, EphemeralError> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.live(key, now).is_some() {
            return Ok(false);
        }
        entries.sweep_if_grown(now);
        entries.map.insert(key.to_owned(), (value, now + ttl));
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        Ok(self.lock().live(key, Instant::now()).cloned())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = Instant::now();
        let taken = self.lock().map.remove(key);
        Ok(taken.filter(|(_, expires)| *expires > now).map(|(v, _)| v))
    }

    async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        self.lock().map.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        Ok(())
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<(u64, Duration), EphemeralError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let (count, expires) = match entries.map.get(key).filter(|(_, expires)| *expires > now) {
            Some((value, expires)) => (decode_count(value) + 1, *expires),
            None => (1, now + window),
        };
        entries.map.insert(key.to_owned(), (count.to_be_bytes().to_vec(), expires));
        Ok((count, expires - now))
    }
}

fn decode_count(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn honours_the_store_contract() {
        crate::ephemeral::contract::single_use_and_expiry(Arc::new(MemoryStore::new()), "").await;
    }

    #[tokio::test]
    async fn sweeps_expired_entries_as_it_grows() {
        let store = MemoryStore::new();
        for i in 0..2000 {
            store.put(&format!("k{i}"), vec![0], Duration::from_millis(1)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        for i in 0..2100 {
            store.put(&format!("n{i}"), vec![0], Duration::from_secs(60)).await.unwrap();
        }
        assert!(store.lock().map.len() < 3000, "expired entries were swept");
    }
}
