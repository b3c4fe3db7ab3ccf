//! The audit log: what happened, to whom, from where. Sign-ins, failed sign-ins, passkeys added
//! and removed, email links sent and used, replayed codes and refresh tokens, rate limits
//! reached, and every admin change are [`record`]ed as an [`Event`]; operators read them back
//! through the admin API with [`list`].
//!
//! Recording takes any connection, so a change and its event commit in one transaction: the log
//! never shows a change that did not happen, nor misses one that did. Details are free-form
//! JSON and must never carry secrets (client secrets, tokens, links).

use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;
use uuid::Uuid;

use crate::store::audit::{self as rows, EventFilter};

/// The longest user agent kept; longer ones are cut (they are free text from the client).
const MAX_USER_AGENT_CHARS: usize = 512;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Dotted type: `signin.succeeded`, `signin.failed`, `passkey.added`, `passkey.removed`,
    /// `email_link.sent`, `email_link.used`, `token.replayed`, `ratelimit.exceeded`,
    /// `admin.user.created`, …
    pub kind: &'static str,
    /// The person it happened to, if any.
    pub user_id: Option<Uuid>,
    /// The relying party involved, if any.
    pub client_id: Option<String>,
    /// The address the request came from.
    pub ip: Option<String>,
    /// The `User-Agent` of the request.
    pub user_agent: Option<String>,
    /// A JSON object with the rest (method, passkey used, before/after of a change); no secrets.
    pub detail: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

impl Event {
    /// An event of type `kind` at `at`, with an empty detail object.
    pub fn new(kind: &'static str, at: DateTime<Utc>) -> Event {
        Event {
            kind,
            user_id: None,
            client_id: None,
            ip: None,
            user_agent: None,
            detail: Value::Object(Default::default()),
            at,
        }
    }

    /// Names the person the event is about.
    pub fn user(mut self, user_id: Uuid) -> Event {
        self.user_id = Some(user_id);
        self
    }

    /// Names the relying party the event is about.
    pub fn client(mut self, client_id: impl Into<String>) -> Event {
        self.client_id = Some(client_id.into());
        self
    }

    /// Records where the request came from.
    pub fn source(mut self, ip: Option<String>, user_agent: Option<String>) -> Event {
        self.ip = ip;
        self.user_agent = user_agent;
        self
    }

    /// Sets the detail object.
    pub fn detail(mut self, detail: Value) -> Event {
        self.detail = detail;
        self
    }

    /// Adds one member to the detail object (turning a non-object detail into one).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Event {
        if !self.detail.is_object() {
            self.detail = Value::Object(Default::default());
        }
        if let Value::Object(members) = &mut self.detail {
            members.insert(name.to_owned(), value.into());
        }
        self
    }
}

/// Appends `event` to the log (inside the caller's transaction, when `db` is one).
pub async fn record(db: &impl ConnectionTrait, event: Event) -> Result<(), DbErr> {
    rows::insert(db, row(event)).await
}

/// The row that records `event`, for a store function that writes it together with a change.
pub fn row(event: Event) -> audit_event::Model {
    let user_agent = event.user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
    audit_event::Model {
        // Time-ordered, so the log is appended to its primary-key index, not scattered through it.
        id: Uuid::now_v7(),
        at: event.at,
        kind: event.kind.to_owned(),
        user_id: event.user_id,
        client_id: event.client_id,
        ip: event.ip,
        user_agent,
        detail: event.detail.to_string(),
    }
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub user_id: Option<Uuid>,
    /// An exact type (`signin.failed`), or a prefix ending in `.*` (`admin.*`).
    pub kind: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Strictly before.
    pub until: Option<DateTime<Utc>>,
}

/// A stored event as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Value,
}

impl From<audit_event::Model> for StoredEvent {
    fn from(row: audit_event::Model) -> StoredEvent {
        // Latchkey only ever stores serialised JSON here; anything else is shown as a string
        // rather than failing the whole listing.
        let detail = serde_json::from_str(&row.detail).unwrap_or(Value::String(row.detail));
        StoredEvent {
            id: row.id,
            at: row.at,
            kind: row.kind,
            user_id: row.user_id,
            client_id: row.client_id,
            ip: row.ip,
            user_agent: row.user_agent,
            detail,
        }
    }
}

/// Up to `limit` events matching `filter`, newest first, after the event whose `(at, id)` is
/// `after` (the last one of the previous page).
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &Filter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<StoredEvent>, DbErr> {
    let (kind, kind_prefix) = match filter.kind.as_deref() {
        Some(kind) => match kind.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('.') => (None, Some(prefix.to_owned())),
            _ => (Some(kind.to_owned()), None),
        },
        None => (None, None),
    };
    let filter = EventFilter { user_id: filter.user_id, kind, kind_prefix, since: filter.since, until: filter.until };
    Ok(rows::list(db, &filter, after, limit).await?.into_iter().map(StoredEvent::from).collect())
}
