//! Authorization codes (RFC 6749 §4.1.2, §10.5): random, short-lived, single-use, bound to the
//! client, redirect URI, PKCE challenge and the sign-in they stand for. Kept in the ephemeral
//! store under a hash of the code.
//!
//! Redeeming a code claims it by storing its redemption marker if none exists yet (atomic), so
//! of any number of racing redemptions exactly one wins and every other is recognised as a
//! replay, which revokes the grant the first one created (RFC 6749 §4.1.2, RFC 9700 §4.5). A
//! replay may arrive before the winner has stored that grant; it therefore flags the marker
//! first, and the winner checks the flag once its grant is stored ([`was_replayed`]).

use std::{collections::BTreeSet, time::Duration};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::context::AuthContext;
use crate::{
    ephemeral::{Ephemeral, EphemeralError},
    random_token,
};

/// How long the replay marker outlives the code.
const REPLAY_MARKER_TTL: Duration = Duration::from_secs(15 * 60);

/// What the redemption marker records.
#[derive(Serialize, Deserialize)]
struct Redemption {
    /// The grant the first redemption creates.
    grant_id: Uuid,
    /// Whether a replay has been seen.
    replayed: bool,
}

/// What a code stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The id the grant gets when the code is redeemed (known now, so a replay can revoke it).
    pub grant_id: Uuid,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: BTreeSet<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub context: AuthContext,
}

/// The outcome of presenting a code.
pub enum Redeemed {
    /// First use: the grant it stands for.
    Fresh(Box<CodeGrant>),
    /// Already redeemed: the grant created then must be revoked.
    Replayed { grant_id: Uuid },
    /// Never issued or expired.
    Unknown,
}

fn hash(code: &str) -> String {
    Sha256::digest(code.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Issues a code for `grant`, valid for `ttl`.
pub async fn issue(store: &Ephemeral, grant: &CodeGrant, ttl: Duration) -> Result<String, EphemeralError> {
    let code = random_token();
    store.put_json(&code_key(&code), grant, ttl).await?;
    Ok(code)
}

fn code_key(code: &str) -> String {
    format!("code:{}", hash(code))
}

fn marker_key(code: &str) -> String {
    format!("code-used:{}", hash(code))
}

/// Redeems a code: the first redemption claims it by leaving the redemption marker.
pub async fn redeem(store: &Ephemeral, code: &str) -> Result<Redeemed, EphemeralError> {
    let marker = marker_key(code);
    if let Some(grant) = store.get_json::<CodeGrant>(&code_key(code)).await? {
        let first = Redemption { grant_id: grant.grant_id, replayed: false };
        if store.put_new_json(&marker, &first, REPLAY_MARKER_TTL).await? {
            return Ok(Redeemed::Fresh(Box::new(grant)));
        }
    }
    Ok(match store.get_json::<Redemption>(&marker).await? {
        Some(redemption) => Redeemed::Replayed { grant_id: redemption.grant_id },
        None => Redeemed::Unknown,
    })
}

/// Records that a redeemed code was presented again, before its grant is revoked.
pub async fn mark_replayed(store: &Ephemeral, code: &str, grant_id: Uuid) -> Result<(), EphemeralError> {
    store.put_json(&marker_key(code), &Redemption { grant_id, replayed: true }, REPLAY_MARKER_TTL).await
}

/// Whether the code was replayed since this redemption claimed it: the replay could not yet
/// revoke the grant this redemption has just stored, so the redemption must do it.
pub async fn was_replayed(store: &Ephemeral, code: &str) -> Result<bool, EphemeralError> {
    Ok(store.get_json::<Redemption>(&marker_key(code)).await?.is_some_and(|r| r.replayed))
}

/// Releases a claimed code when its tokens could not be stored, so the client may retry
/// within the code's lifetime: a code is either redeemed with its tokens stored, or still
/// redeemable.
pub async fn restore(store: &Ephemeral, code: &str) -> Result<(), EphemeralError> {
    store.delete(&marker_key(code)).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::{ephemeral::memory::MemoryStore, session::Session};

    fn grant() -> CodeGrant {
        CodeGrant {
            grant_id: Uuid::new_v4(),
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            scopes: BTreeSet::from(["openid".to_owned()]),
            nonce: None,
            code_challenge: None,
            context: AuthContext::of(&Session::passkey(Uuid::new_v4(), true, false, Utc::now())),
        }
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_then_recognised_as_replayed() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let grant = grant();
        let code = issue(&store, &grant, Duration::from_secs(60)).await.unwrap();
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Fresh(g) if g.grant_id == grant.grant_id));
        assert!(
            matches!(redeem(&store, &code).await.unwrap(), Redeemed::Replayed { grant_id } if grant_id == grant.grant_id)
        );
        assert!(matches!(redeem(&store, "made-up").await.unwrap(), Redeemed::Unknown));
    }

    #[tokio::test]
    async fn a_restored_code_is_redeemable_again() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let grant = grant();
        let code = issue(&store, &grant, Duration::from_secs(60)).await.unwrap();
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Fresh(_)));
        restore(&store, &code).await.unwrap();
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Fresh(_)));
    }

    #[tokio::test]
    async fn a_replay_is_flagged_for_the_first_redemption() {
        let store = Ephemeral::new(Arc::new(MemoryStore::new()));
        let grant = grant();
        let code = issue(&store, &grant, Duration::from_secs(60)).await.unwrap();
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Fresh(_)));
        assert!(!was_replayed(&store, &code).await.unwrap());
        let Redeemed::Replayed { grant_id } = redeem(&store, &code).await.unwrap() else { panic!("a replay") };
        mark_replayed(&store, &code, grant_id).await.unwrap();
        assert!(was_replayed(&store, &code).await.unwrap());
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Replayed { .. }), "still a replay");
    }
}
