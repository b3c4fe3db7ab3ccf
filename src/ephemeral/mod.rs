//! The ephemeral store: short-lived state with a TTL (WebAuthn ceremonies, pending
//! authorization requests, SSO sessions, authorization codes and rate-limit counters).
//!
//! One trait, two implementations: [`memory::MemoryStore`] for the embedded default and
//! [`redis::RedisStore`] (fred) when replicas share state. Single-use values are read with
//! [`EphemeralStore::take`], which is atomic in both, so two racing requests can never both get
//! the same value. Callers namespace keys by prefix (`ceremony:`, `session:`), never by database.

pub mod memory;
pub mod redis;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};

/// Why the ephemeral store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    /// The backing service is down or timed out.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded (a bug or a version mismatch).
    #[error("corrupt entry: {0}")]
    Corrupt(String),
}

/// Short-lived key-value state shared by every replica.
#[async_trait]
pub trait EphemeralStore: Send + Sync {
    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), EphemeralError>;
    /// Stores `value` under `key` for `ttl` only if no live value is there; `true` when stored.
    /// Atomic: of several racing callers, exactly one stores.
    async fn put_new(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<bool, EphemeralError>;
    /// Replaces the value of a live `key`, keeping its expiry, and returns the old value; an
    /// absent or expired key stays absent (`None`). Atomic: of several racing callers, each gets
    /// the value the previous one left.
    async fn replace(&self, key: &str, value: Vec<u8>) -> Result<Option<Vec<u8>>, EphemeralError>;
    /// Reads the value under `key` without consuming it.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError>;
    /// Reads and removes the value under `key` in one atomic step.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError>;
    /// Removes `key` if present.
    async fn delete(&self, key: &str) -> Result<(), EphemeralError>;
    /// Adds one to the counter under `key` (created at 1 with a lifetime of `window`, which
    /// later increments do not extend) and returns the new count and its remaining lifetime.
    async fn increment(&self, key: &str, window: Duration) -> Result<(u64, Duration), EphemeralError>;
    /// Checks that the store answers (for readiness).
    async fn ping(&self) -> Result<(), EphemeralError>;
    /// How many entries this process holds, for a store kept in this process (`None` for a
    /// shared server, whose memory its own configuration bounds).
    fn entry_count(&self) -> Option<usize> {
        None
    }
    /// How many bytes those entries occupy (`None` for a shared server).
    fn footprint_bytes(&self) -> Option<usize> {
        None
    }
}

/// The store as the application holds it, with typed JSON helpers on top of the byte trait.
/// Every operation is counted in `latchkey_store_operations_total{store="ephemeral",operation}`
/// (one operation is one Redis round trip with the Redis store), so benchmarks can report the
/// cost of a login.
#[derive(Clone)]
pub struct Ephemeral(Arc<dyn EphemeralStore>);

impl Ephemeral {
    /// Wraps a store implementation.
    pub fn new(store: Arc<dyn EphemeralStore>) -> Self {
        Ephemeral(store)
    }

    /// Stores `value` as JSON.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) -> Result<(), EphemeralError> {
        let bytes = serde_json::to_vec(value).map_err(|e| EphemeralError::Corrupt(e.to_string()))?;
        counted("put");
        self.0.put(key, bytes, ttl).await
    }

    /// Stores `value` as JSON unless `key` holds a live value; `true` when stored (the first of
    /// racing callers).
    pub async fn put_new_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let bytes = serde_json::to_vec(value).map_err(|e| EphemeralError::Corrupt(e.to_string()))?;
        counted("put_new");
        self.0.put_new(key, bytes, ttl).await
    }

    /// Replaces a live JSON value (keeping its expiry) and returns the old one.
    pub async fn replace_json<T: Serialize, Old: DeserializeOwned>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<Option<Old>, EphemeralError> {
        let bytes = serde_json::to_vec(value).map_err(|e| EphemeralError::Corrupt(e.to_string()))?;
        counted("replace");
        decode(self.0.replace(key, bytes).await?)
    }

    /// Reads a JSON value without consuming it.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, EphemeralError> {
        counted("get");
        decode(self.0.get(key).await?)
    }

    /// Takes a JSON value atomically: the first caller gets it, every later one gets `None`.
    pub async fn take_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, EphemeralError> {
        counted("take");
        decode(self.0.take(key).await?)
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        counted("delete");
        self.0.delete(key).await
    }

    /// Checks that the store answers.
    pub async fn ping(&self) -> Result<(), EphemeralError> {
        self.0.ping().await
    }

    /// How many entries the in-process store holds (`None` with Redis).
    pub fn entry_count(&self) -> Option<usize> {
        self.0.entry_count()
    }

    /// How many bytes the in-process store's entries occupy (`None` with Redis).
    pub fn footprint_bytes(&self) -> Option<usize> {
        self.0.footprint_bytes()
    }

    /// Counts an event in a fixed window (rate limits).
    pub async fn increment(&self, key: &str, window: Duration) -> Result<(u64, Duration), EphemeralError> {
        counted("increment");
        self.0.increment(key, window).await
    }
}

fn counted(operation: &'static str) {
    metrics::counter!(crate::observe::STORE_OPERATIONS, "store" => "ephemeral", "operation" => operation).increment(1);
}

fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>, EphemeralError> {
    bytes.map(|b| serde_json::from_slice(&b).map_err(|e| EphemeralError::Corrupt(e.to_string()))).transpose()
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every implementation must show, run against each of them.
    use super::*;

    pub async fn single_use_and_expiry(store: Arc<dyn EphemeralStore>, prefix: &str) {
        let key = format!("{prefix}contract:a");
        store.put(&key, b"one".to_vec(), Duration::from_secs(60)).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(store.take(&key).await.unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(store.take(&key).await.unwrap(), None, "a value is taken once");

        let short = format!("{prefix}contract:short");
        store.put(&short, b"x".to_vec(), Duration::from_millis(1100)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(store.get(&short).await.unwrap(), None, "entries expire");

        let raced = format!("{prefix}contract:raced");
        store.put(&raced, b"prize".to_vec(), Duration::from_secs(60)).await.unwrap();
        let takers = (0..20).map(|_| {
            let store = store.clone();
            let key = raced.clone();
            tokio::spawn(async move { store.take(&key).await.unwrap() })
        });
        let winners = futures_join(takers).await.into_iter().filter(Option::is_some).count();
        assert_eq!(winners, 1, "exactly one racer takes the value");

        let claimed = format!("{prefix}contract:claimed");
        let claimers = (0..20).map(|i| {
            let store = store.clone();
            let key = claimed.clone();
            tokio::spawn(async move { store.put_new(&key, vec![i], Duration::from_secs(60)).await.unwrap() })
        });
        let winners = futures_join(claimers).await.into_iter().filter(|stored| *stored).count();
        assert_eq!(winners, 1, "exactly one racer stores a new value");
        store.put(&short, b"x".to_vec(), Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            store.put_new(&short, b"y".to_vec(), Duration::from_secs(60)).await.unwrap(),
            "an expired value is no obstacle"
        );

        let swapped = format!("{prefix}contract:swapped");
        assert_eq!(store.replace(&swapped, b"new".to_vec()).await.unwrap(), None, "nothing to replace");
        assert_eq!(store.get(&swapped).await.unwrap(), None, "an absent key stays absent");
        store.put(&swapped, b"first".to_vec(), Duration::from_millis(1500)).await.unwrap();
        assert_eq!(store.replace(&swapped, b"second".to_vec()).await.unwrap().as_deref(), Some(&b"first"[..]));
        let swappers = (0..20u8).map(|i| {
            let store = store.clone();
            let key = swapped.clone();
            tokio::spawn(async move { store.replace(&key, vec![i]).await.unwrap() })
        });
        let mut seen = futures_join(swappers).await.into_iter().map(Option::unwrap).collect::<Vec<_>>();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 20, "each racer gets the value the previous one left");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(store.get(&swapped).await.unwrap(), None, "replacing keeps the expiry");

        let counter = format!("{prefix}contract:counter");
        assert_eq!(store.increment(&counter, Duration::from_secs(60)).await.unwrap().0, 1);
        let (count, left) = store.increment(&counter, Duration::from_secs(60)).await.unwrap();
        assert_eq!(count, 2);
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));

        store.put(&key, b"two".to_vec(), Duration::from_secs(60)).await.unwrap();
        store.delete(&key).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
        store.ping().await.unwrap();
    }

    async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    }
}
