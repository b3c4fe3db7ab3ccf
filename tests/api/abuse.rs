//! Abuse and bad input (issue 7): what an attacker tries once the WebAuthn parsers hold —
//! telling accounts apart by timing, forged tokens, header and markup injection, floods of
//! half-finished sign-ins, unrecorded failures, bad input on the account page and enrollment
//! links, client authentication at the token endpoint, and clients that send their requests
//! too slowly. Each test asserts the exact answer
//! and that nothing was half-written or wrongly issued.

mod audit;
mod enrollment;
mod flood;
mod forged_tokens;
mod injection;
mod slow_clients;
mod timing;

use sea_orm::{EntityTrait, PaginatorTrait};

use crate::helpers::TestApp;

/// How many passkeys are stored, for everyone.
async fn passkey_count(app: &TestApp) -> u64 {
    entity::passkey::Entity::find().count(&app.state.db).await.unwrap()
}
