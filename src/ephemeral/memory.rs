//! The in-process ephemeral store of the embedded default: a mutex-guarded map with expiry
//! times. Expired entries are invisible at once and swept out as the map grows, so memory stays
//! proportional to live entries.
//!
//! The map is also capped (`LATCHKEY_MEMORY_STORE_MAX_ENTRIES`), so a flood of half-finished
//! sign-ins from many addresses cannot exhaust memory: a new key arriving at the cap first
//! sweeps out expired entries and, if that is not enough, evicts the tenth of the entries
//! closest to expiry (the policy Redis calls `volatile-ttl`). Short-lived state goes first —
//! rate-limit counters, codes, ceremonies, pending requests — and sessions, which live longest,
//! last. Evicting a tenth at a time keeps the cost of a full store at a few comparisons per
//! insert, amortised.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{EphemeralError, EphemeralStore};

/// How many entries the store holds at most unless configured otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Ephemeral state held in this process only (one replica).
pub struct MemoryStore {
    inner: Mutex<Entries>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_max_entries(DEFAULT_MAX_ENTRIES)
    }
}

/// A stored value: its bytes, exactly as long as they are (a `Vec` from a serialiser keeps up to
/// twice that in spare capacity, for as long as the entry lives), and its expiry.
type Entry = (Box<[u8]>, Instant);

struct Entries {
    map: HashMap<Box<str>, Entry>,
    /// Map size after the last sweep; the next sweep runs when the map has doubled.
    swept_at_len: usize,
    /// The cap on the number of entries.
    max_entries: usize,
}

impl Entries {
    /// Makes room for one more key: sweeps expired entries once the map has doubled or
    /// reached the cap, then evicts the entries closest to expiry while still at the cap.
    fn make_room(&mut self, key: &str, now: Instant) {
        if self.map.contains_key(key) {
            return;
        }
        let len = self.map.len();
        if len >= (self.swept_at_len * 2).max(1024) || len >= self.max_entries {
            self.map.retain(|_, (_, expires)| *expires > now);
            self.swept_at_len = self.map.len();
        }
        if self.map.len() >= self.max_entries {
            let evict = self.max_entries.div_ceil(10);
            let mut expiries: Vec<Instant> = self.map.values().map(|(_, expires)| *expires).collect();
            let cutoff = *expiries.select_nth_unstable(evict - 1).1;
            self.map.retain(|_, (_, expires)| *expires > cutoff);
            self.swept_at_len = self.map.len();
            tracing::warn!(
                max_entries = self.max_entries,
                "in-process store full: evicted the entries closest to expiry"
            );
        }
    }

    fn live(&self, key: &str, now: Instant) -> Option<&[u8]> {
        self.map.get(key).filter(|(_, expires)| *expires > now).map(|(v, _)| &**v)
    }
}

impl MemoryStore {
    /// An empty store with the default cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding at most `max_entries` (at least one) entries.
    pub fn with_max_entries(max_entries: usize) -> Self {
        let entries = Entries { map: HashMap::new(), swept_at_len: 0, max_entries: max_entries.max(1) };
        MemoryStore { inner: Mutex::new(entries) }
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
        entries.make_room(key, now);
        entries.map.insert(key.into(), (value.into_boxed_slice(), now + ttl));
        Ok(())
    }

    async fn put_new(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<bool, EphemeralError> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.live(key, now).is_some() {
            return Ok(false);
        }
        entries.make_room(key, now);
        entries.map.insert(key.into(), (value.into_boxed_slice(), now + ttl));
        Ok(true)
    }

    async fn replace(&self, key: &str, value: Vec<u8>) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let live = entries.map.get_mut(key).filter(|(_, expires)| *expires > now);
        Ok(live.map(|(old, _)| std::mem::replace(old, value.into_boxed_slice()).into_vec()))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        Ok(self.lock().live(key, Instant::now()).map(<[u8]>::to_vec))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = Instant::now();
        let taken = self.lock().map.remove(key);
        Ok(taken.filter(|(_, expires)| *expires > now).map(|(v, _)| v.into_vec()))
    }

    async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        self.lock().map.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        Ok(())
    }

    fn entry_count(&self) -> Option<usize> {
        Some(self.lock().map.len())
    }

    fn footprint_bytes(&self) -> Option<usize> {
        // The table's slots (key, value and expiry headers, one control byte each), whether in
        // use or not, and every key's and value's buffer; the allocator's rounding aside.
        let entries = self.lock();
        let slots = entries.map.capacity() * (std::mem::size_of::<(Box<str>, Entry)>() + 1);
        Some(slots + entries.map.iter().map(|(key, (value, _))| key.len() + value.len()).sum::<usize>())
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<(u64, Duration), EphemeralError> {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.make_room(key, now);
        let (count, expires) = match entries.map.get(key).filter(|(_, expires)| *expires > now) {
            Some((value, expires)) => (decode_count(value) + 1, *expires),
            None => (1, now + window),
        };
        entries.map.insert(key.into(), (Box::new(count.to_be_bytes()), expires));
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
    async fn counts_the_bytes_its_entries_occupy() {
        let store = MemoryStore::new();
        let empty = store.footprint_bytes().unwrap();
        store.put("session:1", vec![0; 300], Duration::from_secs(60)).await.unwrap();
        let one = store.footprint_bytes().unwrap();
        assert!(one - empty >= 300 + "session:1".len(), "{empty} → {one}");
        store.delete("session:1").await.unwrap();
        assert!(store.footprint_bytes().unwrap() < one);
    }

    #[tokio::test]
    async fn keeps_no_spare_capacity_of_the_values_it_is_given() {
        let store = MemoryStore::new();
        store.put("warm-up", vec![0], Duration::from_secs(60)).await.unwrap();
        let before = store.footprint_bytes().unwrap();
        let mut value = Vec::with_capacity(4096);
        value.extend_from_slice(&[7; 300]);
        store.put("session:1", value, Duration::from_secs(60)).await.unwrap();
        let grown = store.footprint_bytes().unwrap() - before;
        assert_eq!(grown, 300 + "session:1".len(), "the table had room: only the key and the 300 bytes");
        assert_eq!(store.get("session:1").await.unwrap(), Some(vec![7; 300]));
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

    #[tokio::test]
    async fn stays_under_its_cap_and_evicts_what_expires_soonest() {
        let store = MemoryStore::with_max_entries(100);
        store.put("session", vec![1], Duration::from_secs(3600)).await.unwrap();
        for i in 0..1000 {
            store.put(&format!("ceremony{i}"), vec![0], Duration::from_secs(60 + i)).await.unwrap();
            store.increment(&format!("rate{i}"), Duration::from_secs(60)).await.unwrap();
            assert!(store.entry_count().unwrap() <= 100);
        }
        assert_eq!(store.get("session").await.unwrap(), Some(vec![1]), "the longest-lived entry stays");
        assert!(store.get("ceremony999").await.unwrap().is_some(), "the newest entry stays");
        assert_eq!(store.get("ceremony0").await.unwrap(), None, "the entry closest to expiry went first");
        store.put("session", vec![2], Duration::from_secs(3600)).await.unwrap();
        assert_eq!(store.get("session").await.unwrap(), Some(vec![2]), "replacing a key needs no room");
    }
}
