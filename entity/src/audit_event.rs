//! Something that happened and that an operator may need to account for later: a sign-in, a
//! failed sign-in, a passkey added or removed, an admin change. Rows are only ever inserted;
//! `user_id` and `client_id` carry no foreign keys, so the record outlives what it names.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub at: DateTimeUtc,
    /// Dotted event type, such as `signin.succeeded` or `admin.user.created`.
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object with what else matters about the event (never secrets).
    #[sea_orm(column_type = "Text")]
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
