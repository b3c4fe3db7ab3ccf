//! A token-signing key. A key is published in JWKS from creation, signs from `activates_at`,
//! and stays published after `retired_at` until tokens it signed have expired.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// PKCS#8 PEM (PKCS#1 for RSA) of the private key.
    #[sea_orm(column_type = "Text")]
    pub private_pem: String,
    pub created_at: DateTimeUtc,
    pub activates_at: DateTimeUtc,
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
