//! Authorization codes (RFC 6749 §4.1.2, §10.5): random, short-lived, single-use, bound to the
//! client, redirect URI, PKCE challenge and the sign-in they stand for. Kept in the ephemeral
//! store under a hash of the code.
//!
//! Redeeming a code swaps its entry for a redemption record in one atomic step (`replace`), so
//! of any number of racing redemptions exactly one gets the grant back and every other gets a
//! record: a replay, which revokes the grant the first one created (RFC 6749 §4.1.2, RFC 9700
//! §4.5). The code carries the id of the grant it creates, so a replay knows which grant to
//! revoke without reading anything. A replay may arrive before the winner has stored that grant; its
//! swap leaves a record with another redeemer's mark, which the winner checks once its grant is
//! stored ([`was_replayed`]). The record keeps the code's expiry: one entry per code, gone when
//! the code would have expired.

use std::{collections::BTreeSet, time::Duration};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{context::AuthContext, tokens::Person};
use crate::{
    ephemeral::{Ephemeral, EphemeralError},
    random_token,
};

/// What a code stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: BTreeSet<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub context: AuthContext,
    /// What the tokens may say about the person, as of the sign-in (`None` only in codes
    /// issued by earlier versions).
    #[serde(default)]
    pub person: Option<Person>,
}

/// A code's entry: the grant until the first redemption, then the latest redeemer's mark.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Redeemed(Redemption),
    Issued(Box<CodeGrant>),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Redemption {
    /// A random mark of the redemption that left this record.
    by: String,
}

/// The outcome of presenting a code.
pub enum Redeemed {
    /// First use: the grant it stands for, the id the grant gets, and this redemption's mark
    /// (for [`was_replayed`]).
    Fresh { grant: Box<CodeGrant>, grant_id: Uuid, mark: String },
    /// Already redeemed: the grant created then must be revoked.
    Replayed { grant_id: Uuid },
    /// Never issued or expired.
    Unknown,
}

fn code_key(code: &str) -> String {
    format!("code:{}", crate::token_hash(code))
}

/// The id of the grant `code` creates: the one it carries, or for a code issued by an earlier
/// version (still redeemable during a rolling upgrade), a hash of the code under its own label.
pub fn grant_id(code: &str) -> Uuid {
    crate::token_id(code).unwrap_or_else(|| {
        let hash = Sha256::new().chain_update(b"latchkey grant id\0").chain_update(code.as_bytes()).finalize();
        uuid::Builder::from_random_bytes(hash[..16].try_into().expect("SHA-256 is longer than 16 bytes")).into_uuid()
    })
}

/// Issues a code for `grant`, valid for `ttl`. Its grant's id is time-ordered (UUIDv7), so
/// grants are appended to the database's indexes rather than scattered through them.
pub async fn issue(store: &Ephemeral, grant: &CodeGrant, ttl: Duration) -> Result<String, EphemeralError> {
    let code = crate::token_with_id(Uuid::now_v7());
    store.put_json(&code_key(&code), grant, ttl).await?;
    Ok(code)
}

/// Redeems a code: swaps its entry for this redemption's mark.
pub async fn redeem(store: &Ephemeral, code: &str) -> Result<Redeemed, EphemeralError> {
    let mark = random_token();
    let record = Entry::Redeemed(Redemption { by: mark.clone() });
    Ok(match store.replace_json(&code_key(code), &record).await? {
        Some(Entry::Issued(grant)) => Redeemed::Fresh { grant, grant_id: grant_id(code), mark },
        Some(Entry::Redeemed(_)) => Redeemed::Replayed { grant_id: grant_id(code) },
        None => Redeemed::Unknown,
    })
}

/// Whether the code was presented again since the redemption that left `mark`: the replay
/// could not yet revoke the grant this redemption has just stored, so the redemption must.
pub async fn was_replayed(store: &Ephemeral, code: &str, mark: &str) -> Result<bool, EphemeralError> {
    Ok(match store.get_json::<Entry>(&code_key(code)).await? {
        Some(Entry::Redeemed(Redemption { by })) => by != mark,
        // Expired since (a replay is then refused as unknown) or put back by this redemption.
        Some(Entry::Issued(_)) | None => false,
    })
}

/// Puts a redeemed code back when its tokens could not be stored, so the client may retry
/// within the code's lifetime: a code is either redeemed with its tokens stored, or still
/// redeemable.
pub async fn restore(store: &Ephemeral, code: &str, grant: &CodeGrant) -> Result<(), EphemeralError> {
    store.replace_json::<_, serde::de::IgnoredAny>(&code_key(code), &Entry::Issued(Box::new(grant.clone()))).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::{ephemeral::memory::MemoryStore, session::Session};

    fn grant() -> CodeGrant {
        CodeGrant {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            scopes: BTreeSet::from(["openid".to_owned()]),
            nonce: None,
            code_challenge: None,
            context: AuthContext::of(&Session::passkey(Uuid::new_v4(), true, false, Utc::now())),
            person: None,
        }
    }

    fn store() -> Ephemeral {
        Ephemeral::new(Arc::new(MemoryStore::new()))
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_then_recognised_as_replayed() {
        let store = store();
        let code = issue(&store, &grant(), Duration::from_secs(60)).await.unwrap();
        let Redeemed::Fresh { grant_id: first, .. } = redeem(&store, &code).await.unwrap() else { panic!("fresh") };
        assert_eq!(first, grant_id(&code));
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Replayed { grant_id } if grant_id == first));
        assert!(matches!(redeem(&store, "made-up").await.unwrap(), Redeemed::Unknown));
        assert_eq!(store.entry_count(), Some(1), "one entry per code, redeemed or not");
    }

    #[tokio::test]
    async fn codes_carry_time_ordered_grant_ids() {
        let store = store();
        let first = issue(&store, &grant(), Duration::from_secs(60)).await.unwrap();
        let second = issue(&store, &grant(), Duration::from_secs(60)).await.unwrap();
        let (a, b) = (grant_id(&first), grant_id(&second));
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b, "issued later, sorted later");
        assert_ne!(first[22..], second[22..], "the random part differs");
        let forged = crate::token_with_id(a);
        assert!(matches!(redeem(&store, &forged).await.unwrap(), Redeemed::Unknown), "the id alone redeems nothing");
    }

    #[tokio::test]
    async fn earlier_codes_get_ids_that_reveal_neither_code_nor_key() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(grant_id(&a), grant_id(&b));
        assert_eq!(grant_id(&a), grant_id(&a));
        assert_eq!(grant_id(&a).get_version_num(), 4);
        let id = grant_id(&a).simple().to_string();
        assert!(!code_key(&a).contains(&id) && !a.contains(&id));
    }

    #[tokio::test]
    async fn a_restored_code_is_redeemable_again() {
        let store = store();
        let code = issue(&store, &grant(), Duration::from_secs(60)).await.unwrap();
        let Redeemed::Fresh { grant, .. } = redeem(&store, &code).await.unwrap() else { panic!("fresh") };
        restore(&store, &code, &grant).await.unwrap();
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Fresh { .. }));
    }

    #[tokio::test]
    async fn a_replay_is_seen_by_the_first_redemption() {
        let store = store();
        let code = issue(&store, &grant(), Duration::from_secs(60)).await.unwrap();
        let Redeemed::Fresh { mark, .. } = redeem(&store, &code).await.unwrap() else { panic!("fresh") };
        assert!(!was_replayed(&store, &code, &mark).await.unwrap());
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Replayed { .. }));
        assert!(was_replayed(&store, &code, &mark).await.unwrap());
        assert!(matches!(redeem(&store, &code).await.unwrap(), Redeemed::Replayed { .. }), "still a replay");
    }

    #[tokio::test]
    async fn codes_stored_by_the_previous_version_are_still_redeemable() {
        let store = store();
        let mut stored = serde_json::to_value(grant()).unwrap();
        stored["grant_id"] = serde_json::json!(Uuid::new_v4());
        store.put_json(&code_key("old"), &stored, Duration::from_secs(60)).await.unwrap();
        assert!(matches!(redeem(&store, "old").await.unwrap(), Redeemed::Fresh { .. }));
    }
}
