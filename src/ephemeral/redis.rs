//! The Redis ephemeral store (fred), for replicas that share state. Keys carry the configured
//! prefix (`LATCHKEY_REDIS_PREFIX`), never a database number, so Redis Cluster works and several
//! deployments or test runs can share one server. `take` is `GETDEL` (Redis ≥ 6.2), `put_new`
//! is `SET … NX` and `replace` is `SET … XX KEEPTTL GET`: all atomic.

use std::time::Duration;

use async_trait::async_trait;
use fred::{
    prelude::{Builder, Client, ClientLike, Config, Expiration, KeysInterface, LuaInterface, SetOptions},
    types::config::{ConnectionConfig, PerformanceConfig},
};

use super::{EphemeralError, EphemeralStore};

/// Ephemeral state in Redis.
pub struct RedisStore {
    client: Client,
    prefix: String,
}

/// How long one Redis command may take before the request fails with 503. fred counts it from
/// the moment the command is queued, so it also bounds the wait for a (re)connection to a slow
/// or absent Redis (`tests/api/faults/slow_redis.rs`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisStore {
    /// Connects to `url` and checks the connection; fails fast when Redis is down.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, EphemeralError> {
        let config = Config::from_url(url).map_err(unavailable)?;
        let client = Builder::from_config(config)
            .with_connection_config(|c: &mut ConnectionConfig| {
                c.connection_timeout = Duration::from_secs(5);
            })
            .with_performance_config(|p: &mut PerformanceConfig| {
                p.default_command_timeout = COMMAND_TIMEOUT;
            })
            .set_policy(fred::types::config::ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(unavailable)?;
        client.init().await.map_err(unavailable)?;
        Ok(RedisStore { client, prefix: prefix.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn unavailable(err: fred::error::Error) -> EphemeralError {
    EphemeralError::Unavailable(format!("redis: {err}"))
}

#[async_trait]
impl EphemeralStore for RedisStore {
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), EphemeralError> {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.client
            .set::<(), _, _>(self.key(key), value, Some(Expiration::PX(millis)), None, false)
            .await
            .map_err(unavailable)
    }

    async fn put_new(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<bool, EphemeralError> {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let stored: Option<String> = self
            .client
            .set(self.key(key), value, Some(Expiration::PX(millis)), Some(SetOptions::NX), false)
            .await
            .map_err(unavailable)?;
        Ok(stored.is_some())
    }

    async fn replace(&self, key: &str, value: Vec<u8>) -> Result<Option<Vec<u8>>, EphemeralError> {
        // SET … XX KEEPTTL GET: only an existing key, its expiry kept, the old value returned.
        self.client
            .set(self.key(key), value, Some(Expiration::KEEPTTL), Some(SetOptions::XX), true)
            .await
            .map_err(unavailable)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        self.client.get(self.key(key)).await.map_err(unavailable)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        self.client.getdel(self.key(key)).await.map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        self.client.del::<(), _>(self.key(key)).await.map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        self.client.ping::<()>(None).await.map_err(unavailable)
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<(u64, Duration), EphemeralError> {
        // One round trip, atomic: INCR, start the window on the first count, report what is left.
        let millis = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
        let (count, left): (u64, i64) =
            self.client.eval(INCREMENT_SCRIPT, vec![self.key(key)], vec![millis]).await.map_err(unavailable)?;
        Ok((count, Duration::from_millis(u64::try_from(left).unwrap_or(0))))
    }
}

const INCREMENT_SCRIPT: &str = r#"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
"#;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn honours_the_store_contract() {
        let Ok(url) = std::env::var("LATCHKEY_TEST_REDIS_URL") else {
            eprintln!("notice: LATCHKEY_TEST_REDIS_URL is not set; skipping the Redis store contract test");
            return;
        };
        let prefix = format!("latchkey-test:{}:", uuid::Uuid::new_v4());
        let store = RedisStore::connect(&url, &prefix).await.expect("redis reachable");
        crate::ephemeral::contract::single_use_and_expiry(Arc::new(store), "").await;
    }
}
