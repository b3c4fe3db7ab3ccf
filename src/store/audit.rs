//! Queries over `audit_events`: append one event, and read a page of them newest first with
//! keyset pagination over `(at, id)`, which the `(…, at)` indexes serve. What an event means,
//! and the wire form of cursors, belong to [`crate::audit`] and the admin API.

use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    prelude::Uuid, sea_query::LikeExpr,
};

/// Which events to read; every filter that is set must match.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub user_id: Option<Uuid>,
    /// Exactly this type.
    pub kind: Option<String>,
    /// Types starting with this prefix (for `admin.`, say).
    pub kind_prefix: Option<String>,
    /// At or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Strictly before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// Appends one event.
pub async fn insert(db: &impl ConnectionTrait, row: audit_event::Model) -> Result<(), DbErr> {
    audit_event::Entity::insert(audit_event::ActiveModel::from(row)).exec_without_returning(db).await.map(drop)
}

/// Up to `limit` events matching `filter`, newest first (ties broken by id), starting after the
/// event `after` names (the `(at, id)` of the last event of the previous page).
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &EventFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<audit_event::Model>, DbErr> {
    use audit_event::Column;
    let mut query = audit_event::Entity::find();
    if let Some(user_id) = filter.user_id {
        query = query.filter(Column::UserId.eq(user_id));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(Column::Kind.eq(kind.as_str()));
    }
    if let Some(prefix) = &filter.kind_prefix {
        query = query.filter(Column::Kind.like(LikeExpr::new(format!("{}%", escape_like(prefix))).escape('\\')));
    }
    if let Some(since) = filter.since {
        query = query.filter(Column::At.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(Column::At.lt(until));
    }
    if let Some((at, id)) = after {
        query = query.filter(Condition::any().add(Column::At.lt(at)).add(Column::At.eq(at).and(Column::Id.lt(id))));
    }
    query.order_by_desc(Column::At).order_by_desc(Column::Id).limit(limit).all(db).await
}

/// `text` with the `LIKE` wildcards (and the escape character) escaped by `\`.
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
