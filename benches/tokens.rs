//! Token signing per algorithm: the ID token and access token of a code exchange, signed by
//! `latchkey::oidc::keys::SigningKeys` (keys in an in-memory SQLite database), and verifying an
//! access token as userinfo does. Run with `cargo bench --bench tokens`.

use std::{collections::BTreeSet, time::Duration};

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::{
    accounts::{self, SignupForm},
    oidc::{
        SigningAlg,
        context::AuthContext,
        keys::SigningKeys,
        tokens::{AccessTokenClaims, Issue, Person, Subject},
    },
    session::Session,
    store,
};
use uuid::Uuid;

fn signing(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let now = Utc::now();
    let (keys, user) = runtime.block_on(async {
        let db = store::connect("sqlite::memory:").await.unwrap();
        store::migrate(&db).await.unwrap();
        let form = SignupForm { username: "bench".into(), email: "bench@example.com".into(), display_name: "B".into() };
        let user = accounts::create_user(&db, &form, now).await.unwrap();
        (SigningKeys::load_or_create(&db, now).await.unwrap(), user)
    });
    let context = AuthContext::of(&Session::passkey(user.id, true, false, now));
    let scopes = BTreeSet::from(["openid".to_owned(), "profile".to_owned(), "email".to_owned()]);
    let person = Person::released(&user, &scopes);
    let subject = Subject { person: &person, context: &context, grant_id: Uuid::new_v4() };
    let issue = Issue {
        keys: &keys,
        issuer: "http://localhost:8080",
        client_id: "bench-client",
        scopes: &scopes,
        lifetime: Duration::from_secs(600),
        now,
    };
    let mut group = c.benchmark_group("tokens");
    for alg in SigningAlg::ALL {
        let access = issue.user_access_token(&subject, alg).unwrap();
        group.bench_function(format!("access_token/{alg}"), |b| b.iter(|| issue.user_access_token(&subject, alg)));
        group.bench_function(format!("id_token/{alg}"), |b| {
            b.iter(|| issue.id_token(&subject, alg, Some("n-0S6_WzA2Mj"), &access))
        });
        group.bench_function(format!("verify_access_token/{alg}"), |b| {
            b.iter(|| keys.verify::<AccessTokenClaims>(&access, Some("at+jwt"), now).unwrap())
        });
    }
    group.finish();
}

/// The same claims signed by `jsonwebtoken::encode` with an `EncodingKey`, which parses the
/// private key again at every signature: the cost `SigningKeys` avoids by keeping parsed keys.
fn jsonwebtoken_baseline(c: &mut Criterion) {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::{pkcs1::EncodeRsaPrivateKey, rand_core::OsRng};
    let claims = serde_json::json!({"iss": "http://localhost:8080", "sub": Uuid::new_v4(), "exp": 2_000_000_000});
    let rsa_pem = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap().to_pkcs1_pem(LineEnding::LF).unwrap();
    let ec_pem = p256::ecdsa::SigningKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF).unwrap();
    let keys = [
        ("RS256", Algorithm::RS256, EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap()),
        ("ES256", Algorithm::ES256, EncodingKey::from_ec_pem(ec_pem.as_bytes()).unwrap()),
    ];
    let mut group = c.benchmark_group("jsonwebtoken_encode");
    for (name, alg, key) in &keys {
        let header = Header::new(*alg);
        group.bench_function(*name, |b| b.iter(|| jsonwebtoken::encode(&header, &claims, key).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, signing, jsonwebtoken_baseline);
criterion_main!(benches);
