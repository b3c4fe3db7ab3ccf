//! The stylesheet, script and icon, compiled into the binary and served with a strong `ETag`
//! so browsers revalidate cheaply.

use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::pages::PageError;
use crate::error::AppError;

const ASSETS: [(&str, &str, &str); 3] = [
    ("style.css", "text/css; charset=utf-8", include_str!("../../static/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../static/app.js")),
    ("favicon.svg", "image/svg+xml", include_str!("../../static/favicon.svg")),
];

/// `GET /static/{file}`.
pub async fn serve(Path(file): Path<String>, request_headers: HeaderMap) -> Result<Response, PageError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| AppError::NotFound("There is no such file.".into()))?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(body.as_bytes()))[..16]);
    let cache = [
        (header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header")),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300, must-revalidate")),
    ];
    if request_headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((cache, [(header::CONTENT_TYPE, *content_type)], *body).into_response())
}
