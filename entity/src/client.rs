//! A relying party registered with Latchkey. List-valued settings are stored as JSON arrays
//! (URIs) or space-separated strings (scopes, grant types), as OAuth writes them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    pub name: String,
    /// HMAC-SHA-256 (hex) of the secret under the instance's client-secret key; `None` for
    /// public clients.
    pub secret_hash: Option<String>,
    pub public: bool,
    pub first_party: bool,
    /// JSON array of exact redirect URIs.
    #[sea_orm(column_type = "Text")]
    pub redirect_uris: String,
    /// JSON array of exact post-logout redirect URIs.
    #[sea_orm(column_type = "Text")]
    pub post_logout_redirect_uris: String,
    /// Space-separated scopes the client may request.
    pub allowed_scopes: String,
    /// Space-separated grant types the client may use.
    pub grant_types: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub id_token_signed_response_alg: String,
    pub backchannel_logout_uri: Option<String>,
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
