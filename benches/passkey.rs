//! Passkey assertion verification: what `POST /login/passkey` spends on WebAuthn, measured with
//! real assertions from the software authenticator against `latchkey::passkey::PasskeyService`
//! (webauthn-rs). Run with `cargo bench --bench passkey`.

use aws_lc_rs::{
    digest,
    signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey},
};
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime};
use latchkey::passkey::{self, PasskeyService};
use latchkey_softkey::SoftAuthenticator;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{COSEKeyType, Credential, Passkey, PublicKeyCredential, RegisterPublicKeyCredential};

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
    signature_checks(&mut group, &stored, &credential);
    group.finish();
}

/// The assertion's ES256 signature alone, checked the way `finish_authentication` checks it
/// (webauthn-rs on pure-Rust `p256`) and by AWS-LC over the same key, signature and signed
/// data: the gap a faster verifier in webauthn-rs would close (docs/benchmarks.md, twenty-second
/// run).
fn signature_checks(group: &mut BenchmarkGroup<'_, WallTime>, stored: &Passkey, credential: &PublicKeyCredential) {
    let key = Credential::from(stored.clone()).cred;
    let response = &credential.response;
    let client_data_hash = digest::digest(&digest::SHA256, &response.client_data_json);
    let signed = [response.authenticator_data.as_slice(), client_data_hash.as_ref()].concat();
    let signature = response.signature.as_slice();
    group.bench_function("signature_check_webauthn_rs", |b| {
        b.iter(|| assert!(key.verify_signature(signature, &signed).unwrap()))
    });
    let COSEKeyType::EC_EC2(ec2) = &key.key else { panic!("the software authenticator makes ES256 passkeys") };
    let point = [&[4u8][..], ec2.x.as_ref(), ec2.y.as_ref()].concat();
    group.bench_function("signature_check_aws_lc", |b| {
        b.iter(|| UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point).verify(&signed, signature).unwrap())
    });
}

criterion_group!(benches, assertions);
criterion_main!(benches);
