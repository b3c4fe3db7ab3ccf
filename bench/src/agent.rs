//! The HTTP side of a virtual browser: one shared `reqwest` client (keep-alive connections,
//! redirects off) and a tiny per-browser cookie jar kept by hand, so starting a "new browser"
//! costs nothing and a returning one can keep exactly the cookies a real one would.
//!
//! It understands only what Latchkey sends: `Set-Cookie` with `Path=/`, removals as an empty
//! value or `Max-Age=0`. It is not a general cookie store and does not try to be.

use std::{fmt, time::Instant};

use reqwest::{StatusCode, header};
use serde_json::Value;

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
    /// The shared HTTP client (connection pool, no redirects, no cookie store).
    pub client: reqwest::Client,
    /// The issuer: where requests go, and the `Origin` the browser pages claim.
    pub base: String,
}

/// Where each request's time goes: `(step, microseconds)`, in order.
pub type StepTimes = Vec<(&'static str, u32)>;

impl Agent {
    /// An agent for the Latchkey at `base` (its issuer URL).
    pub fn new(base: &str, connections: usize) -> anyhow::Result<Agent> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(connections.max(1))
            .tcp_nodelay(true)
            .build()?;
        Ok(Agent { client, base: base.trim_end_matches('/').to_owned() })
    }

    /// `GET path` with the jar's cookies.
    pub async fn get(
        &self,
        step: &'static str,
        path: &str,
        jar: &mut Jar,
        times: &mut StepTimes,
    ) -> Result<Answer, FlowError> {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(step, request, jar, times).await
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
        let request = self.client.post(format!("{}{path}", self.base)).form(fields);
        self.send(step, request, jar, times).await
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
        let request = self.client.post(format!("{}{path}", self.base)).header(header::ORIGIN, &self.base).json(body);
        self.send(step, request, jar, times).await
    }

    /// Sends `request` with the jar's cookies, takes the response's cookies, times it.
    pub async fn send(
        &self,
        step: &'static str,
        mut request: reqwest::RequestBuilder,
        jar: &mut Jar,
        times: &mut StepTimes,
    ) -> Result<Answer, FlowError> {
        if let Some(cookies) = jar.header() {
            request = request.header(header::COOKIE, cookies);
        }
        let started = Instant::now();
        let response = request.send().await.map_err(|e| FlowError::new(step, transport_kind(&e)))?;
        jar.absorb(response.headers());
        let status = response.status();
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await.map_err(|e| FlowError::new(step, transport_kind(&e)))?;
        times.push((step, micros(started)));
        Ok(Answer { status, location, body })
    }
}

/// Microseconds since `started`, saturating.
pub fn micros(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
}

fn transport_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else {
        "transport"
    }
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
}
