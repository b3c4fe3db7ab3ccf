//! Registered clients kept in memory: every sign-in looks its client up three times
//! (`/authorize`, `/authorize/resume`, `/token`), and each lookup was a database query plus
//! parsing the row. A cached client is reused for [`CLIENT_CACHE_TTL`], then read again.
//!
//! Decision: a change made through this replica (admin API) is seen at once, because the admin
//! handlers [`forget`](ClientCache::forget) the client; other replicas see it within
//! [`CLIENT_CACHE_TTL`]. A deleted client's tokens stop working at once everywhere regardless
//! (its grants are deleted); only new authorizations on other replicas may still start for
//! that short while. Unknown client ids are never cached, so lookups of made-up ids cannot
//! grow the cache and a client created anywhere is usable at once.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::DatabaseConnection;

use super::Client;
use crate::{error::AppError, store::clients as rows};

/// How long a cached client is trusted before it is read again.
pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(2);

/// Clients by id, each with the instant it was read.
#[derive(Default)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, (Arc<Client>, Instant)>>,
    /// Bumped by every [`forget`](ClientCache::forget): a row read before a change is not
    /// cached after it.
    changes: AtomicU64,
}

impl ClientCache {
    /// The client `client_id`, from memory when read less than [`CLIENT_CACHE_TTL`] ago.
    pub async fn find(&self, db: &DatabaseConnection, client_id: &str) -> Result<Option<Arc<Client>>, AppError> {
        if let Some(client) = self.fresh(client_id, Instant::now()) {
            return Ok(Some(client));
        }
        let changes_before = self.changes.load(Ordering::SeqCst);
        let Some(row) = rows::find(db, client_id).await? else {
            // Deleted on another replica: drop the expired entry, if any.
            self.entries.write().unwrap_or_else(PoisonError::into_inner).remove(client_id);
            return Ok(None);
        };
        let client = Arc::new(Client::from_model(row)?);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.changes.load(Ordering::SeqCst) == changes_before {
            entries.insert(client_id.to_owned(), (client.clone(), Instant::now()));
        }
        Ok(Some(client))
    }

    /// Drops `client_id` after this replica changed or deleted it.
    pub fn forget(&self, client_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.changes.fetch_add(1, Ordering::SeqCst);
        entries.remove(client_id);
    }

    fn fresh(&self, client_id: &str, now: Instant) -> Option<Arc<Client>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let (client, read_at) = entries.get(client_id)?;
        (now.duration_since(*read_at) < CLIENT_CACHE_TTL).then(|| client.clone())
    }
}
