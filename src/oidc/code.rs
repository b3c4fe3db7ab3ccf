//! Authorization codes (RFC 6749 §4.1.2, §10.5): random, short-lived, single-use, bound to the
//! client, redirect URI, PKCE challenge and the sign-in they stand for. Kept in the ephemeral
//! store under a hash of the code. Redeeming takes the code atomically and leaves a marker, so
//! a second redemption is recognised as a replay and revokes the grant the first one created
//! (RFC 6749 §4.1.2, RFC 9700 §4.5).

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
    store.put_json(&format!("code:{}", hash(&code)), grant, ttl).await?;
    Ok(code)
}

/// Redeems a code: atomically takes it, leaving a replay marker.
pub async fn redeem(store: &Ephemeral, code: &str) -> Result<Redeemed, EphemeralError> {
    let hashed = hash(code);
    if let Some(grant) = store.take_json::<CodeGrant>(&format!("code:{hashed}")).await? {
        store.put_json(&format!("code-used:{hashed}"), &grant.grant_id, REPLAY_MARKER_TTL).await?;
        return Ok(Redeemed::Fresh(Box::new(grant)));
    }
    Ok(match store.get_json::<Uuid>(&format!("code-used:{hashed}")).await? {
        Some(grant_id) => Redeemed::Replayed { grant_id },
        None => Redeemed::Unknown,
    })
}

/// Puts a redeemed code back when its tokens could not be stored, so the client may retry:
/// a code is either redeemed with its tokens stored, or still redeemable.
pub async fn restore(store: &Ephemeral, code: &str, grant: &CodeGrant, ttl: Duration) -> Result<(), EphemeralError> {
    let hashed = hash(code);
    store.delete(&format!("code-used:{hashed}")).await?;
    store.put_json(&format!("code:{hashed}"), grant, ttl).await
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
        let Redeemed::Fresh(taken) = redeem(&store, &code).await.unwrap() else { panic!("fresh") };
        restore(&store, &code, &taken, Duration::from_secs(60)).await.unwrap();
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Fresh(_)));
    }
}
