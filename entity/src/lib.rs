//! sea-orm entities of Latchkey's durable store: plain table shapes, no logic.
//!
//! Queries live in the main crate's `store` module; the schema itself is created by the
//! `migration` crate, which must be kept in step with these structs.

pub mod audit_event;
pub mod client;
pub mod consent;
pub mod enrollment_link;
pub mod grant;
pub mod passkey;
pub mod refresh_token;
pub mod setting;
pub mod signing_key;
pub mod user;
