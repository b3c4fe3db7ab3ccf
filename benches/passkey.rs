//! Passkey assertion verification: what `POST /login/passkey` spends on WebAuthn, measured with
//! real assertions from the software authenticator against `latchkey::passkey::PasskeyService`
//! (webauthn-rs). Run with `cargo bench --bench passkey`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use latchkey::passkey::{self, PasskeyService};
use latchkey_softkey::SoftAuthenticator;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential, RegisterPublicKeyCredential};

const ORIGIN: &str = "http://localhost:8080";

/// The relying party and one registered passkey, made the way sign-up makes it.
fn registered() -> (PasskeyService, SoftAuthenticator, Passkey) {
    let service = PasskeyService::new(&Url::parse(ORIGIN).unwrap(), "localhost", vec![7; 32]).unwrap();
    let mut authenticator = SoftAuthenticator::default();
    let (options, state) = service.start_registration(Uuid::new_v4(), "bench", "Bench", Vec::new()).unwrap();
    let response = authenticator.register(&serde_json::to_value(&options).unwrap(), ORIGIN);
    let response: RegisterPublicKeyCredential = serde_json::from_value(response).unwrap();
    let new = service.finish_registration(&response, &state).unwrap();
    let stored = passkey::parse_stored(&new.passkey_json).unwrap();
    (service, authenticator, stored)
}

fn assertions(c: &mut Criterion) {
    let (service, mut authenticator, stored) = registered();
    let keys = [stored.clone()];
    let mut group = c.benchmark_group("passkey");
    group.bench_function("start_authentication", |b| b.iter(|| service.start_authentication(&keys, "bench")));
    group.bench_function("finish_authentication", |b| {
        b.iter_batched(
            || {
                let (options, state) = service.start_authentication(&keys, "bench");
                let answer = authenticator.assert(&serde_json::to_value(&options).unwrap(), ORIGIN).unwrap();
                let credential: PublicKeyCredential = serde_json::from_value(answer).unwrap();
                (credential, state)
            },
            |(credential, state)| service.finish_authentication(&credential, &state).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // What `login::finish` does after verifying: reload the stored credential, apply the new
    // counter, serialise it for the database.
    let json = passkey::serialize_stored(&stored);
    let (options, state) = service.start_authentication(&keys, "bench");
    let answer = authenticator.assert(&serde_json::to_value(&options).unwrap(), ORIGIN).unwrap();
    let credential: PublicKeyCredential = serde_json::from_value(answer).unwrap();
    let result = service.finish_authentication(&credential, &state).unwrap();
    group.bench_function("update_stored_passkey", |b| {
        b.iter(|| {
            let mut key = passkey::parse_stored(&json).unwrap();
            key.update_credential(&result);
            passkey::serialize_stored(&key)
        })
    });
    group.finish();
}

criterion_group!(benches, assertions);
criterion_main!(benches);
