//! The software WebAuthn authenticator the tests sign with: the `latchkey-softkey` workspace
//! crate (shared with the load generator), re-exported so tests keep `crate::authenticator::…`.
pub use latchkey_softkey::*;
