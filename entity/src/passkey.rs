//! A registered WebAuthn credential. `passkey_json` is webauthn-rs's own serialisation of the
//! credential (public key, counter, flags); the other columns are copies kept for listing and
//! lookup without deserialising it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// base64url (no padding) of the credential id.
    #[sea_orm(unique)]
    pub credential_id: String,
    #[sea_orm(column_type = "Text")]
    pub passkey_json: String,
    pub name: String,
    pub aaguid: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    /// Comma-separated WebAuthn transport names ("internal,hybrid").
    pub transports: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
