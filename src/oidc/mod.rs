//! The OpenID Provider: signing keys, clients, the authorization endpoint, tokens, userinfo,
//! logout, revocation and introspection.
//!
//! Wire types come from the `openidconnect` crate; tokens are signed with `jsonwebtoken`
//! (which, unlike `openidconnect`, signs ES256). Protocol rules take `now` as a parameter so
//! they are unit-tested with a fixed clock.

pub mod authorize;
pub mod bearer;
pub mod clients;
pub mod code;
pub mod context;
pub mod discovery;
pub mod flow;
pub mod keys;
pub mod logout;
pub mod pending;
pub mod token;
pub mod tokens;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A JWS algorithm Latchkey signs tokens with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256: always offered (OIDC requires it) and the default.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm, in the order discovery lists them.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    /// The JOSE name (`RS256`, `ES256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SigningAlg::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not one of RS256, ES256, EdDSA"))
    }
}
