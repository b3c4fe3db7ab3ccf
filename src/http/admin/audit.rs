//! `/audit-events`: the audit log, newest first, filtered by user, type and time.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    auth::AdminToken,
    extract::AdminQuery,
    page::{Page, parse_paging},
};
use crate::{
    accounts::FieldErrors,
    admin::AdminError,
    app::AppState,
    audit::{self, StoredEvent},
};

/// Something that happened: a sign-in, a failure, a passkey added or removed, an admin change.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditEvent)]
pub struct EventView {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// `signin.succeeded`, `signin.failed`, `passkey.added`, `passkey.removed`,
    /// `email_link.sent`, `email_link.used`, `admin.user.created`, …
    #[serde(rename = "type")]
    #[schema(example = "admin.user.created")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// What else matters: method, passkey, before/after of a change. Never secrets.
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<StoredEvent> for EventView {
    fn from(event: StoredEvent) -> EventView {
        EventView {
            id: event.id,
            at: event.at,
            kind: event.kind,
            user_id: event.user_id,
            client_id: event.client_id,
            ip: event.ip,
            user_agent: event.user_agent,
            detail: event.detail,
        }
    }
}

/// Filters and paging of the audit log.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events about this user.
    #[param(value_type = Option<Uuid>)]
    pub user_id: Option<String>,
    /// Only events of this type; a prefix ending in `.*` (`admin.*`) matches a family.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub since: Option<String>,
    /// Only events before this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub until: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl EventQuery {
    fn filter(&self, errors: &mut FieldErrors) -> audit::Filter {
        let mut time = |field: &'static str, value: Option<&str>| {
            let parsed = value.map(|v| DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)));
            match parsed {
                Some(Err(_)) => {
                    errors.insert(field, "Use an RFC 3339 time such as 2026-01-31T12:00:00Z.".into());
                    None
                }
                other => other.and_then(Result::ok),
            }
        };
        let (since, until) = (time("since", self.since.as_deref()), time("until", self.until.as_deref()));
        let user_id = self.user_id.as_deref().and_then(|id| {
            let parsed = id.parse::<Uuid>().ok();
            if parsed.is_none() {
                errors.insert("user_id", "Use a user id (a UUID).".into());
            }
            parsed
        });
        audit::Filter { user_id, kind: self.kind.clone().filter(|k| !k.is_empty()), since, until }
    }
}

/// Lists audit events, newest first.
#[utoipa::path(get, path = "/audit-events", tag = "audit", params(EventQuery),
    responses(
        (status = 200, description = "A page of events", body = Page<EventView>),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn events_get(
    _: AdminToken,
    State(state): State<AppState>,
    AdminQuery(query): AdminQuery<EventQuery>,
) -> Result<Json<Page<EventView>>, AdminError> {
    let mut errors = FieldErrors::new();
    let filter = query.filter(&mut errors);
    let (limit, after) = parse_paging(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(AdminError::Invalid(errors));
    }
    let events = audit::list(&state.db, &filter, after, limit + 1).await?;
    Ok(Json(Page::from_rows(events, limit, |e| (e.at, e.id), EventView::from)))
}
