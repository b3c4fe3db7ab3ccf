//! Lists of the admin API: `{"items": […], "next_cursor": …}`, the `limit` parameter (default
//! 50, at most 200) and opaque cursors. A cursor names the last item of a page by its sort key
//! `(time, id)`, so pages stay stable while rows are added (keyset pagination).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::FieldErrors;

/// Items per page when the request names no `limit`.
pub const DEFAULT_LIMIT: u64 = 50;

/// The largest `limit` accepted.
pub const MAX_LIMIT: u64 = 200;

/// One page of a list.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page, in list order.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list that is never paginated (it is always short).
    pub fn all(items: Vec<T>) -> Page<T> {
        Page { items, next_cursor: None }
    }

    /// A page from up to `limit + 1` rows fetched: the extra row only says there is a next page.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: u64,
        key: impl Fn(&R) -> (DateTime<Utc>, Uuid),
        item: impl Fn(R) -> T,
    ) -> Page<T> {
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more { rows.last().map(|last| encode_cursor(key(last))) } else { None };
        Page { items: rows.into_iter().map(item).collect(), next_cursor }
    }
}

/// The requested page size, or the message for `limit`.
pub fn parse_limit(limit: Option<&str>) -> Result<u64, String> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<u64>() {
            Ok(n @ 1..=MAX_LIMIT) => Ok(n),
            _ => Err(format!("Use a whole number from 1 to {MAX_LIMIT}.")),
        },
    }
}

/// The opaque form of a sort key.
pub fn encode_cursor((at, id): (DateTime<Utc>, Uuid)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.to_rfc3339_opts(SecondsFormat::Nanos, true)))
}

/// The sort key in a cursor, or `None` when it is not one of ours.
pub fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (at, id) = text.split_once('|')?;
    Some((DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc), id.parse().ok()?))
}

/// `limit` and `cursor` of a list request, checked; problems are added to `errors`.
pub fn parse_paging(
    limit: Option<&str>,
    cursor: Option<&str>,
    errors: &mut FieldErrors,
) -> (u64, Option<(DateTime<Utc>, Uuid)>) {
    let limit = parse_limit(limit).unwrap_or_else(|message| {
        errors.insert("limit", message);
        DEFAULT_LIMIT
    });
    let after = cursor.filter(|c| !c.is_empty()).and_then(|c| {
        let key = decode_cursor(c);
        if key.is_none() {
            errors.insert("cursor", "Not a cursor from this list; pass next_cursor unchanged.".into());
        }
        key
    });
    (limit, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Ok(50));
        assert_eq!(parse_limit(Some("200")), Ok(200));
        for bad in ["0", "201", "-1", "ten", ""] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_to_the_nanosecond() {
        let key = (DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap(), Uuid::new_v4());
        assert_eq!(decode_cursor(&encode_cursor(key)), Some(key));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }

    #[test]
    fn pages_keep_limit_items_and_point_past_the_last() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let page = Page::from_rows(ids.clone(), 2, |id| (at, *id), |id| id);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next_cursor.as_deref().and_then(decode_cursor), Some((at, ids[1])));
        let last = Page::from_rows(ids.clone(), 3, |id| (at, *id), |id| id);
        assert_eq!((last.items.len(), last.next_cursor), (3, None));
    }
}
