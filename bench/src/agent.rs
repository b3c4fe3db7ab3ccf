//! The HTTP side of a virtual browser: one shared keep-alive HTTP/1.1 client (hyper's own, with
//! rustls for an https target; redirects never followed) and a tiny per-browser cookie jar kept
//! by hand, so starting a "new browser" costs nothing and a returning one can keep exactly the
//! cookies a real one would.
//!
//! The client is hyper's rather than `reqwest`'s because the generator must not be what limits
//! a run: `reqwest`'s layers (URL parsing two or three times, redirect and cookie services)
//! cost about 70 k instructions per request, which capped discovery at about 43,000
//! requests/s on one core while the server could answer more (docs/benchmarks.md, twelfth run).
//!
//! The jar understands only what Latchkey sends: `Set-Cookie` with `Path=/`, removals as an
//! empty value or `Max-Age=0`. It is not a general cookie store and does not try to be.

use std::{fmt, sync::Arc, time::Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header, request};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

/// A request body, whole.
pub type Body = Full<Bytes>;

/// Why one flow failed: the step it failed at and what went wrong, e.g. `token: invalid_grant`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowError {
    /// The step (`authorize`, `login_page`, `username`, `passkey`, `resume`, `token`, …).
    pub step: &'static str,
    /// What went wrong, short and stable enough to count by (`status 500`, `transport`, …).
    pub kind: String,
}

impl FlowError {
    /// A failure of `step`.
    pub fn new(step: &'static str, kind: impl Into<String>) -> Self {
        FlowError { step, kind: kind.into() }
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.kind)
    }
}

/// The cookies one browser holds (name → value).
#[derive(Clone, Debug, Default)]
pub struct Jar(Vec<(String, String)>);

impl Jar {
    /// Applies the `Set-Cookie` headers of a response.
    pub fn absorb(&mut self, headers: &header::HeaderMap) {
        for value in headers.get_all(header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let mut parts = value.split(';');
            let Some((name, cookie_value)) = parts.next().and_then(|pair| pair.split_once('=')) else { continue };
            let (name, cookie_value) = (name.trim(), cookie_value.trim());
            let removed =
                cookie_value.is_empty() || parts.any(|attribute| attribute.trim().eq_ignore_ascii_case("max-age=0"));
            self.0.retain(|(existing, _)| existing != name);
            if !removed {
                self.0.push((name.to_owned(), cookie_value.to_owned()));
            }
        }
    }

    /// The `Cookie` header value, if any cookie is held.
    pub fn header(&self) -> Option<String> {
        (!self.0.is_empty())
            .then(|| self.0.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; "))
    }

    /// A jar with only the named cookies of this one (a browser that comes back later).
    pub fn keeping(&self, names: &[&str]) -> Jar {
        Jar(self.0.iter().filter(|(name, _)| names.contains(&name.as_str())).cloned().collect())
    }

    /// Whether a cookie of this name is held.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(existing, _)| existing == name)
    }
}

/// A response as the flows need it.
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// Fails `step` unless the status is `expected`.
    pub fn expect(self, step: &'static str, expected: StatusCode) -> Result<Answer, FlowError> {
        if self.status == expected {
            Ok(self)
        } else {
            Err(FlowError::new(step, format!("status {}", self.status.as_u16())))
        }
    }

    /// The hidden CSRF token of the page's form.
    pub fn csrf_token(&self, step: &'static str) -> Result<&str, FlowError> {
        between(&self.body, "name=\"csrf_token\" value=\"", "\"").ok_or_else(|| FlowError::new(step, "no csrf_token"))
    }

    /// The JSON in the page's `<script type="application/json" id="{id}">`.
    pub fn json_block(&self, step: &'static str, id: &str) -> Result<Value, FlowError> {
        let start = format!("id=\"{id}\">");
        let raw = between(&self.body, &start, "</script>").ok_or_else(|| FlowError::new(step, format!("no #{id}")))?;
        serde_json::from_str(raw).map_err(|_| FlowError::new(step, format!("#{id} is not JSON")))
    }
}

/// The text between `start` and the next `end`.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// Sends requests to one Latchkey on behalf of many browsers.
#[derive(Clone)]
pub struct Agent {
    /// The shared HTTP client (a keep-alive connection pool).
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    /// The issuer: where requests go, and the `Origin` the browser pages claim.
    pub base: String,
}

/// Where each request's time goes: `(step, microseconds)`, in order.
pub type StepTimes = Vec<(&'static str, u32)>;

const FORM: &str = "application/x-www-form-urlencoded";

impl Agent {
    /// An agent for the Latchkey at `base` (its issuer URL), keeping up to `connections` idle
    /// connections open.
    pub fn new(base: &str, connections: usize) -> anyhow::Result<Agent> {
        let base = base.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.parse::<http::Uri>().is_ok_and(|uri| uri.scheme().is_some() && uri.host().is_some()),
            "the target {base} is not an http(s) URL"
        );
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections.max(1)).build(connector);
        Ok(Agent { client, base })
    }

    /// A request for `path` on the target, to finish with headers and send with [`Agent::send`].
    pub fn request(&self, method: Method, path: &str) -> request::Builder {
        Request::builder().method(method).uri(format!("{}{path}", self.base))
    }

    /// `GET path` with the jar's cookies.
    pub async fn get(
        &self,
        step: &'static str,
        path: &str,
        jar: &mut Jar,
        times: &mut StepTimes,
    ) -> Result<Answer, FlowError> {
        self.send(step, self.request(Method::GET, path), Body::default(), jar, times).await
    }

    /// `POST path` of a form (the CSRF token among the fields).
    pub async fn post_form(
        &self,
        step: &'static str,
        path: &str,
        fields: &[(&str, &str)],
        jar: &mut Jar,
        times: &mut StepTimes,
    ) -> Result<Answer, FlowError> {
        self.send_form(step, self.request(Method::POST, path), fields, jar, times).await
    }

    /// Sends `request` with `fields` as its form body.
    pub async fn send_form(
        &self,
        step: &'static str,
        request: request::Builder,
        fields: &[(&str, &str)],
        jar: &mut Jar,
        times: &mut StepTimes,
    ) -> Result<Answer, FlowError> {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.send(step, request.header(header::CONTENT_TYPE, FORM), Body::from(body), jar, times).await
    }

    /// `POST path` of JSON, same-origin as Latchkey's own script sends it.
    pub async fn post_json(
        &self,
        step: &'static str,
        path: &str,
        body: &Value,
        jar: &mut Jar,
        times: &mut StepTimes,
    ) -> Result<Answer, FlowError> {
        let request = self
            .request(Method::POST, path)
            .header(header::ORIGIN, &self.base)
            .header(header::CONTENT_TYPE, "application/json");
        self.send(step, request, Body::from(body.to_string()), jar, times).await
    }

    /// Sends `request` with `body` and the jar's cookies, takes the response's cookies, times it.
    pub async fn send(
        &self,
        step: &'static str,
        mut request: request::Builder,
        body: Body,
        jar: &mut Jar,
        times: &mut StepTimes,
    ) -> Result<Answer, FlowError> {
        if let Some(cookies) = jar.header() {
            request = request.header(header::COOKIE, cookies);
        }
        let request = request.body(body).map_err(|_| FlowError::new(step, "unsendable request"))?;
        let started = Instant::now();
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FlowError::new(step, if e.is_connect() { "connect" } else { "transport" }))?;
        jar.absorb(response.headers());
        let status = response.status();
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.into_body().collect().await.map_err(|_| FlowError::new(step, "body"))?.to_bytes();
        let body = String::from_utf8(body.into()).map_err(|_| FlowError::new(step, "body not UTF-8"))?;
        times.push((step, micros(started)));
        Ok(Answer { status, location, body })
    }
}

/// `Authorization: Basic` for a client (RFC 6749 §2.3.1: each part form-urlencoded first).
pub fn basic_authorization(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret));
    format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, credentials))
}

/// Microseconds since `started`, saturating.
pub fn micros(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> header::HeaderMap {
        let mut map = header::HeaderMap::new();
        for value in values {
            map.append(header::SET_COOKIE, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_jar_sets_replaces_and_removes_cookies() {
        let mut jar = Jar::default();
        jar.absorb(&headers(&["a=1; HttpOnly; Path=/", "b=2; Max-Age=60"]));
        assert_eq!(jar.header().as_deref(), Some("a=1; b=2"));
        jar.absorb(&headers(&["a=3; Path=/", "b=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]));
        assert_eq!(jar.header().as_deref(), Some("a=3"));
        jar.absorb(&headers(&["c=4", "a=x; max-age=0"]));
        assert_eq!(jar.header().as_deref(), Some("c=4"));
        assert_eq!(jar.keeping(&["nothing"]).header(), None);
    }

    #[test]
    fn basic_authorization_encodes_each_part_first() {
        // RFC 6749 §2.3.1: "a b:c" and "p&q" are form-urlencoded before base64.
        let expected =
            format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "a+b%3Ac:p%26q"));
        assert_eq!(basic_authorization("a b:c", "p&q"), expected);
    }
}
