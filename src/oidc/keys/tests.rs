//! Tests of key generation, signing, verification, JWKS and rotation.

use chrono::TimeZone;
use jsonwebtoken::EncodingKey;
use openidconnect::{
    AccessToken, AccessTokenHash, ClientId, IssuerUrl, JsonWebKey, Nonce,
    core::{CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm},
};
use serde_json::json;

use super::*;

const ISSUER: &str = "https://id.example.com";
const CLIENT: &str = "client-1";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

async fn fresh_db() -> DatabaseConnection {
    let db = crate::store::connect("sqlite::memory:").await.unwrap();
    crate::store::migrate(&db).await.unwrap();
    db
}

fn claims(now: DateTime<Utc>, expires_in: i64) -> Value {
    json!({
        "iss": ISSUER, "sub": "user-1", "aud": CLIENT,
        "iat": now.timestamp(), "exp": now.timestamp() + expires_in,
    })
}

fn core_alg(alg: SigningAlg) -> CoreJwsSigningAlgorithm {
    match alg {
        SigningAlg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        SigningAlg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        SigningAlg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
    }
}

fn published_set(keys: &SigningKeys) -> CoreJsonWebKeySet {
    serde_json::from_slice(&keys.jwks().0).unwrap()
}

fn published_kids(keys: &SigningKeys) -> Vec<String> {
    let jwks: Value = serde_json::from_slice(&keys.jwks().0).unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Signs with the loaded private key of `kid`, but with whatever header the test wants.
fn sign_raw(keys: &SigningKeys, kid: &str, header: &Header, claims: &Value) -> String {
    let snapshot = keys.snapshot();
    let key = snapshot.published_key(kid, t0()).unwrap();
    key.material.signer.jws(header, claims).unwrap()
}

#[tokio::test]
async fn jwks_lists_each_algorithm_once_with_alg_and_use() {
    let keys = SigningKeys::load_or_create(&fresh_db().await, t0()).await.unwrap();
    let (bytes, etag) = keys.jwks();
    let jwks: Value = serde_json::from_slice(&bytes).unwrap();
    let found: Vec<(&str, &str, &str, &str)> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap(),
                k["alg"].as_str().unwrap(),
                k["use"].as_str().unwrap(),
                k["kty"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("rs256-initial", "RS256", "sig", "RSA"),
            ("es256-initial", "ES256", "sig", "EC"),
            ("eddsa-initial", "EdDSA", "sig", "OKP")
        ]
    );
    assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()), "no private parts");
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));
    assert_eq!(published_set(&keys).keys().len(), 3, "openidconnect understands every key");
}

#[tokio::test]
async fn tokens_of_every_algorithm_verify_with_openidconnect() {
    let now = t0();
    let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
    for alg in SigningAlg::ALL {
        let token = keys.sign(alg, Some("JWT"), &claims(now, 600), now).unwrap();
        let id_token: CoreIdToken = token.parse().unwrap();
        let issuer = IssuerUrl::new(ISSUER.to_owned()).unwrap();
        let verifier =
            CoreIdTokenVerifier::new_public_client(ClientId::new(CLIENT.into()), issuer, published_set(&keys))
                .set_allowed_algs([core_alg(alg)])
                .set_time_fn(move || now);
        let verified = id_token.claims(&verifier, |_: Option<&Nonce>| -> Result<(), String> { Ok(()) });
        assert_eq!(verified.unwrap().subject().as_str(), "user-1", "{alg}");
        let ours: Value = keys.verify(&token, Some("JWT"), now).unwrap();
        assert_eq!(ours["sub"], "user-1");
    }
}

#[tokio::test]
async fn token_hash_matches_openidconnect() {
    let keys = SigningKeys::load_or_create(&fresh_db().await, t0()).await.unwrap();
    let set = published_set(&keys);
    let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    for alg in SigningAlg::ALL {
        let kid = initial_kid(alg);
        let jwk = set.keys().iter().find(|k| k.key_id().map(|id| id.as_str()) == Some(kid.as_str())).unwrap();
        let expected = AccessTokenHash::from_token(&AccessToken::new(token.into()), &core_alg(alg), jwk).unwrap();
        assert_eq!(token_hash(alg, token), *expected, "{alg}");
    }
    // OIDC Core §3.1.3.6: the left half of a 256-bit hash is 16 bytes, 22 base64url chars.
    assert_eq!(token_hash(SigningAlg::RS256, token).len(), 22);
    assert_eq!(token_hash(SigningAlg::EdDSA, token).len(), 43);
}

#[tokio::test]
async fn forged_and_misused_tokens_fail() {
    let now = t0();
    let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
    let body = claims(now, 600);
    let verify = |token: &str| keys.verify::<Value>(token, None, now).map(|_| ());
    let good = keys.sign(SigningAlg::RS256, None, &body, now).unwrap();
    assert_eq!(verify(&good), Ok(()));

    let none = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "rs256-initial"})), b64(&body));
    assert_eq!(verify(&none), Err(TokenError::Malformed));
    assert_eq!(verify("not-a-jwt"), Err(TokenError::Malformed));

    // HS256 keyed with the RSA public key, in both PEM forms a naive verifier might use.
    let public = rsa_public_key(&published_set(&keys).keys()[0]);
    for pem in public_pems(&public) {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rs256-initial".into());
        let forged = jsonwebtoken::encode(&header, &body, &EncodingKey::from_secret(pem.as_bytes())).unwrap();
        assert_eq!(verify(&forged), Err(TokenError::AlgorithmMismatch));
    }

    // Algorithm swap: a real ES256 signature presented under the RS256 key's kid.
    let mut swapped = Header::new(Algorithm::ES256);
    swapped.kid = Some("rs256-initial".into());
    assert_eq!(verify(&sign_raw(&keys, "es256-initial", &swapped, &body)), Err(TokenError::AlgorithmMismatch));

    let mut unknown = Header::new(Algorithm::RS256);
    unknown.kid = Some("rs256-somewhere-else".into());
    assert_eq!(verify(&sign_raw(&keys, "rs256-initial", &unknown, &body)), Err(TokenError::UnknownKey));
    let kidless = Header::new(Algorithm::RS256);
    assert_eq!(verify(&sign_raw(&keys, "rs256-initial", &kidless, &body)), Err(TokenError::UnknownKey));

    let [header, _, signature] = good.split('.').collect::<Vec<_>>()[..] else { panic!("three parts") };
    let mut admin = body.clone();
    admin["sub"] = "admin".into();
    let tampered = format!("{header}.{}.{signature}", b64(&admin));
    assert_eq!(verify(&tampered), Err(TokenError::BadSignature));
    let flipped =
        if signature.starts_with('A') { signature.replacen('A', "B", 1) } else { format!("A{}", &signature[1..]) };
    assert_eq!(verify(&format!("{}.{flipped}", good.rsplit_once('.').unwrap().0)), Err(TokenError::BadSignature));
}

fn rsa_public_key(jwk: &CoreJsonWebKey) -> rsa::RsaPublicKey {
    let value = serde_json::to_value(jwk).unwrap();
    let part =
        |name: &str| rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(value[name].as_str().unwrap()).unwrap());
    rsa::RsaPublicKey::new(part("n"), part("e")).unwrap()
}

fn public_pems(key: &rsa::RsaPublicKey) -> [String; 2] {
    use rsa::{pkcs1::EncodeRsaPublicKey, pkcs8::EncodePublicKey};
    let line = rsa::pkcs8::LineEnding::LF;
    [key.to_pkcs1_pem(line).unwrap(), key.to_public_key_pem(line).unwrap()]
}

#[tokio::test]
async fn expiry_is_checked_against_the_given_now_without_leeway() {
    let now = t0();
    let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
    for alg in SigningAlg::ALL {
        let token = keys.sign(alg, None, &claims(now, 60), now).unwrap();
        assert!(keys.verify::<Value>(&token, None, now + chrono::Duration::seconds(59)).is_ok());
        assert_eq!(keys.verify::<Value>(&token, None, now + chrono::Duration::seconds(60)), Err(TokenError::Expired));
    }
    let expired = keys.sign(SigningAlg::RS256, Some("JWT"), &claims(now, 60), now).unwrap();
    let late = now + chrono::Duration::days(1);
    let hint: Value = keys.verify_ignoring_expiry(&expired, late).unwrap();
    assert_eq!(hint["sub"], "user-1", "an expired id_token_hint is still recognised");
    let forged = format!("{}.{}", expired.rsplit_once('.').unwrap().0, "AAAA");
    assert_eq!(keys.verify_ignoring_expiry::<Value>(&forged, late), Err(TokenError::BadSignature));
    let mut no_exp = claims(now, 60);
    no_exp.as_object_mut().unwrap().remove("exp");
    let token = keys.sign(SigningAlg::ES256, None, &no_exp, now).unwrap();
    assert_eq!(keys.verify::<Value>(&token, None, now), Err(TokenError::Malformed));
}

#[tokio::test]
async fn clocks_moved_back_or_far_ahead_never_panic() {
    let now = t0();
    let db = fresh_db().await;
    let keys = SigningKeys::load_or_create(&db, now).await.unwrap();
    let token = keys.sign(SigningAlg::ES256, None, &claims(now, 60), now).unwrap();
    for earlier in [now - chrono::Duration::days(1), DateTime::<Utc>::MIN_UTC] {
        assert!(keys.verify::<Value>(&token, None, earlier).is_ok(), "not expired yet at {earlier}");
    }
    assert_eq!(keys.verify::<Value>(&token, None, DateTime::<Utc>::MAX_UTC), Err(TokenError::Expired));
    // `exp` at the ends of what JSON can carry.
    let with_exp = |exp: Value| {
        let mut claims = claims(now, 0);
        claims["exp"] = exp;
        keys.sign(SigningAlg::ES256, None, &claims, now).unwrap()
    };
    let last = DateTime::<Utc>::MAX_UTC;
    assert!(keys.verify::<Value>(&with_exp(json!(i64::MAX)), None, last).is_ok());
    assert!(keys.verify::<Value>(&with_exp(json!(f64::MAX)), None, last).is_ok());
    let first = DateTime::<Utc>::MIN_UTC;
    assert_eq!(keys.verify::<Value>(&with_exp(json!(-f64::MAX)), None, first), Err(TokenError::Expired));
    assert_eq!(keys.verify::<Value>(&with_exp(json!("tomorrow")), None, now), Err(TokenError::Malformed));
    // Before the first key activates nothing signs: an error, not a token from the future.
    let before = now - INITIAL_KEY_ACTIVE_BEFORE_CREATION - chrono::Duration::seconds(1);
    assert!(keys.sign(SigningAlg::ES256, None, &claims(before, 60), before).is_err());

    // A token of a key published ahead still verifies when the clock goes back before its activation.
    let t1 = now + chrono::Duration::hours(1);
    keys.rotate(&db, t1, minutes(10), minutes(30)).await.unwrap();
    let t2 = t1 + chrono::Duration::minutes(10);
    let new_token = keys.sign(SigningAlg::ES256, None, &claims(t2, 60), t2).unwrap();
    assert_ne!(kid_of(&new_token), initial_kid(SigningAlg::ES256));
    for earlier in [t1, now - chrono::Duration::days(1)] {
        assert!(keys.verify::<Value>(&new_token, None, earlier).is_ok());
    }
}

#[tokio::test]
async fn typ_is_set_when_asked_and_checked_when_expected() {
    let now = t0();
    let keys = SigningKeys::load_or_create(&fresh_db().await, now).await.unwrap();
    let access = keys.sign(SigningAlg::ES256, Some("at+jwt"), &claims(now, 60), now).unwrap();
    let untyped = keys.sign(SigningAlg::ES256, None, &claims(now, 60), now).unwrap();
    assert_eq!(jsonwebtoken::decode_header(&access).unwrap().typ.as_deref(), Some("at+jwt"));
    assert_eq!(jsonwebtoken::decode_header(&untyped).unwrap().typ, None);
    let check = |token: &str, expected| keys.verify::<Value>(token, expected, now).map(|_| ());
    assert_eq!(check(&access, Some("at+jwt")), Ok(()));
    assert_eq!(check(&access, Some("application/AT+JWT")), Ok(()), "RFC 7515 §4.1.9");
    assert_eq!(check(&access, None), Ok(()));
    assert_eq!(check(&access, Some("logout+jwt")), Err(TokenError::WrongType));
    assert_eq!(check(&untyped, Some("at+jwt")), Err(TokenError::WrongType));
}

#[tokio::test]
async fn rotation_publishes_ahead_then_retires_and_unpublishes() {
    let db = fresh_db().await;
    let (publish_ahead, keep_after) = (minutes(10), minutes(30));
    let keys = SigningKeys::load_or_create(&db, t0()).await.unwrap();
    let t1 = t0() + chrono::Duration::hours(1);
    let old_tokens: Vec<(SigningAlg, String)> =
        SigningAlg::ALL.into_iter().map(|alg| (alg, keys.sign(alg, None, &claims(t1, 7200), t1).unwrap())).collect();
    let etag_before = keys.jwks().1;

    keys.rotate(&db, t1, publish_ahead, keep_after).await.unwrap();
    let kids = published_kids(&keys);
    assert_eq!(kids.len(), 6, "new keys are published at once");
    assert_eq!(&kids[..3], ["rs256-initial", "es256-initial", "eddsa-initial"], "active keys first");
    assert!(kids[3].starts_with("rs256-") && kids[4].starts_with("es256-") && kids[5].starts_with("eddsa-"));
    assert_ne!(keys.jwks().1, etag_before);
    for (alg, _) in &old_tokens {
        assert_eq!(kid_of(&keys.sign(*alg, None, &claims(t1, 60), t1).unwrap()), initial_kid(*alg), "not yet");
    }
    assert_states(&keys, t1, &[KeyState::Active; 3], &[KeyState::Next; 3]);

    let t2 = t1 + chrono::Duration::from_std(publish_ahead).unwrap();
    for (alg, old) in &old_tokens {
        let new_kid = kid_of(&keys.sign(*alg, None, &claims(t2, 60), t2).unwrap());
        assert!(new_kid != initial_kid(*alg) && kids.contains(&new_kid), "the new key signs from activation");
        assert!(keys.verify::<Value>(old, None, t2).is_ok());
    }
    assert_states(&keys, t2, &[KeyState::Retired; 3], &[KeyState::Active; 3]);

    let end = t2 + chrono::Duration::from_std(keep_after).unwrap();
    let just_before = end - chrono::Duration::seconds(1);
    keys.reload(&db, just_before).await.unwrap();
    assert_eq!(published_kids(&keys).len(), 6, "retired keys stay published for keep_after");
    assert!(old_tokens.iter().all(|(_, old)| keys.verify::<Value>(old, None, just_before).is_ok()));
    let replica = SigningKeys::load_or_create(&db, just_before).await.unwrap();
    assert_eq!(replica.jwks(), keys.jwks(), "another replica publishes the same set");

    assert!(keys.verify::<Value>(&old_tokens[0].1, None, end).is_err(), "the window ends before a reload");
    keys.reload(&db, end).await.unwrap();
    let kids_after = published_kids(&keys);
    assert_eq!(kids_after, kids[3..], "retired keys drop out after keep_after");
    for (_, old) in &old_tokens {
        assert_eq!(keys.verify::<Value>(old, None, end), Err(TokenError::UnknownKey));
    }
    replica.reload(&db, end).await.unwrap();
    assert_eq!(replica.jwks(), keys.jwks(), "the window is shared through the database");
    let listed = keys.list(end);
    assert_eq!(listed.len(), 6, "rows stay");
    assert!(listed.iter().filter(|k| k.kid.ends_with("-initial")).all(|k| !k.published && k.retired_at == Some(t2)));
}

/// Asserts the states of the three initial keys and the three rotated ones at `now`.
fn assert_states(keys: &SigningKeys, now: DateTime<Utc>, initial: &[KeyState; 3], rotated: &[KeyState; 3]) {
    let listed = keys.list(now);
    let state_of = |rotated: bool| -> Vec<KeyState> {
        let mut keys: Vec<&KeyInfo> = listed.iter().filter(|k| k.kid.ends_with("-initial") != rotated).collect();
        keys.sort_by_key(|k| k.alg);
        keys.iter().map(|k| k.state).collect()
    };
    assert_eq!(state_of(false), initial);
    assert_eq!(state_of(true), rotated);
    assert!(listed.iter().all(|k| k.published));
}

#[tokio::test]
async fn a_second_rotation_before_activation_supersedes_the_pending_key() {
    let db = fresh_db().await;
    let keys = SigningKeys::load_or_create(&db, t0()).await.unwrap();
    keys.rotate(&db, t0(), minutes(10), minutes(30)).await.unwrap();
    let t1 = t0() + chrono::Duration::minutes(5);
    keys.rotate(&db, t1, minutes(10), minutes(30)).await.unwrap();
    let at = |m| t0() + chrono::Duration::minutes(m);
    let signing_kid = |now| kid_of(&keys.sign(SigningAlg::ES256, None, &claims(now, 60), now).unwrap());
    let (first, second, third) = (signing_kid(at(9)), signing_kid(at(10)), signing_kid(at(15)));
    assert_eq!(first, "es256-initial");
    assert!(second != first && third != second && third != first);
    let es256: Vec<KeyInfo> = keys.list(at(15)).into_iter().filter(|k| k.alg == SigningAlg::ES256).collect();
    assert_eq!(es256.iter().filter(|k| k.state == KeyState::Active).count(), 1);
}

#[tokio::test]
async fn concurrent_first_starts_create_one_key_per_algorithm() {
    let db = fresh_db().await;
    let (a, b) = tokio::join!(
        SigningKeys::load_or_create(&db, t0()),
        SigningKeys::load_or_create(&db, t0() + chrono::Duration::seconds(1))
    );
    assert_one_initial_key_each(&store::all(&db).await.unwrap());
    assert_eq!(a.unwrap().jwks(), b.unwrap().jwks());
}

#[tokio::test]
async fn a_replica_whose_clock_is_behind_signs_with_the_initial_keys_at_once() {
    let db = fresh_db().await;
    let ahead = SigningKeys::load_or_create(&db, t0() + chrono::Duration::minutes(1)).await.unwrap();
    let behind = SigningKeys::load_or_create(&db, t0()).await.unwrap();
    for alg in SigningAlg::ALL {
        let token = behind.sign(alg, None, &claims(t0(), 60), t0()).unwrap();
        assert_eq!(kid_of(&token), initial_kid(alg));
    }
    assert_eq!(ahead.jwks(), behind.jwks(), "the same keys, in the same order");
}

fn assert_one_initial_key_each(rows: &[signing_key::Model]) {
    let mut kids: Vec<&str> = rows.iter().map(|row| row.kid.as_str()).collect();
    kids.sort_unstable();
    assert_eq!(kids, ["eddsa-initial", "es256-initial", "rs256-initial"]);
}

/// Two replicas (separate connection pools) starting at once against one PostgreSQL; runs
/// when `LATCHKEY_TEST_DATABASE_URL` is set, like the integration tests.
#[tokio::test]
async fn concurrent_first_starts_on_postgres_create_one_key_per_algorithm() {
    let Some(schema) = crate::store::TempSchema::new().await else { return };
    let (one, two) = (schema.connect(10).await, schema.connect(10).await);
    crate::store::migrate(&one).await.unwrap();
    let (a, b) = tokio::join!(SigningKeys::load_or_create(&one, t0()), SigningKeys::load_or_create(&two, t0()));
    let rows = store::all(&one).await.unwrap();
    schema.drop_schema().await;
    assert_one_initial_key_each(&rows);
    assert_eq!(a.unwrap().jwks(), b.unwrap().jwks());
}
