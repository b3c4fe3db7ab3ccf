//! Client secrets: generated, stored as a keyed hash, compared in constant time.

use super::*;

/// The instance's key for hashing client secrets, shared by every replica.
#[derive(Clone)]
pub struct ClientSecrets {
    key: Vec<u8>,
}

impl fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecrets([redacted])")
    }
}

impl ClientSecrets {
    /// Loads the key from the settings table, generating it on first start.
    pub async fn load(db: &DatabaseConnection) -> Result<ClientSecrets, DbErr> {
        let key = store::settings::get_or_create_secret(db, "client_secret_key", 32).await?;
        Ok(ClientSecrets::from_key(&key))
    }

    /// A key from raw bytes (tests, or an operator-supplied key).
    pub fn from_key(key: &[u8]) -> ClientSecrets {
        ClientSecrets { key: key.to_vec() }
    }

    /// A fresh client secret: 256 random bits, base64url (43 characters).
    pub fn generate() -> String {
        crate::random_token()
    }

    /// The stored form of `secret`: hex HMAC-SHA-256 under the instance key.
    //
    // A keyed fast hash, not bcrypt or argon2: the secrets Latchkey generates carry 256 bits of
    // entropy (and operator-supplied ones at least 32 characters), so there is nothing for a slow
    // hash to protect against brute force, and it would only slow down every token request. The
    // key (in the settings table) means a leaked `clients` table alone does not even allow
    // offline guessing.
    pub fn hash(&self, secret: &str) -> String {
        hex::encode(crate::keyed_hash(&self.key, &[secret.as_bytes()]))
    }

    /// Whether `presented` is the client's secret, compared in constant time. Public clients
    /// and clients without a stored secret never verify.
    pub fn verify(&self, client: &Client, presented: &str) -> bool {
        match &client.secret_hash {
            Some(stored) if !client.settings.public && !presented.is_empty() => {
                bool::from(self.hash(presented).as_bytes().ct_eq(stored.as_bytes()))
            }
            _ => false,
        }
    }
}
