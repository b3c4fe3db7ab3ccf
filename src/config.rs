//! Typed configuration read from `LATCHKEY_*` environment variables and validated at start.
//!
//! Every error names the variable at fault, so an operator sees at once what to fix. Nothing else
//! in the crate reads the environment.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use url::Url;

/// Whether people may create their own accounts at `/signup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signup {
    Open,
    Closed,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Latchkey's whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Public base URL; the WebAuthn origin and RP ID derive from it.
    pub issuer: Url,
    pub listen: SocketAddr,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub signup: Signup,
    pub reveal_unknown_users: bool,
    /// Lifetime of a WebAuthn ceremony (challenge) from options to verification.
    pub challenge_ttl: Duration,
    /// An SSO session ends after this long without use...
    pub session_idle_timeout: Duration,
    /// ...and at the latest this long after sign-in.
    pub session_max_age: Duration,
    /// Lifetime of the remembered-user cookie.
    pub remember_for: Duration,
    pub log_format: LogFormat,
    /// Declarative OIDC clients (YAML), applied at start.
    pub clients_file: Option<std::path::PathBuf>,
    /// Lifetime of authorization codes.
    pub code_ttl: Duration,
    /// Lifetime of access tokens and ID tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens without `offline_access` is the SSO session's; with it, this.
    pub offline_refresh_ttl: Duration,
    /// Bearer token of the admin API; `None` turns the admin API off (every path answers 404).
    pub admin_token: Option<String>,
    /// SMTP server for email links; `None` writes messages to the log instead.
    pub smtp_url: Option<String>,
    /// Sender of Latchkey's email.
    pub mail_from: String,
    /// Whether people may sign in with an emailed link.
    pub email_login: bool,
    /// Lifetime of emailed sign-in links.
    pub email_link_ttl: Duration,
    /// Default lifetime of enrollment links.
    pub enrollment_ttl: Duration,
    /// Whether rate limits apply.
    pub rate_limits: bool,
    /// New sign-in transactions (pending authorization requests, WebAuthn ceremonies) one
    /// client address may open per minute.
    pub login_transactions_per_ip: u64,
    /// The most entries the in-process ephemeral store holds (without Redis).
    pub memory_store_max_entries: usize,
    /// Size of the database connection pool.
    pub database_max_connections: u32,
    /// How often each replica re-reads signing keys (rotations by another replica).
    pub key_reload_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Longest a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Longest a request head (request line and headers) may take to arrive; then the
    /// connection is closed.
    pub header_read_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// A configuration variable that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the configuration from the given variables (the environment, or a test's map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let issuer = parse_issuer(get("LATCHKEY_ISSUER").unwrap_or("http://localhost:8080"))?;
        let listen = get("LATCHKEY_LISTEN")
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|e| invalid("LATCHKEY_LISTEN", format!("not an address:port ({e})")))?;
        let database_url = get("LATCHKEY_DATABASE_URL").unwrap_or("sqlite://latchkey.db?mode=rwc");
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(invalid("LATCHKEY_DATABASE_URL", "must start with sqlite: or postgres://".into()));
        }
        let redis_url = get("LATCHKEY_REDIS_URL").map(str::to_owned);
        if let Some(url) = &redis_url
            && !(url.starts_with("redis") || url.starts_with("rediss"))
        {
            return Err(invalid("LATCHKEY_REDIS_URL", "must start with redis:// or rediss://".into()));
        }
        Ok(Config {
            issuer,
            listen,
            database_url: database_url.to_owned(),
            redis_url,
            redis_prefix: get("LATCHKEY_REDIS_PREFIX").unwrap_or("latchkey:").to_owned(),
            signup: match get("LATCHKEY_SIGNUP").unwrap_or("open") {
                "open" => Signup::Open,
                "closed" => Signup::Closed,
                other => return Err(invalid("LATCHKEY_SIGNUP", format!("'{other}' is not open or closed"))),
            },
            reveal_unknown_users: parse_bool(get, "LATCHKEY_REVEAL_UNKNOWN_USERS", false)?,
            challenge_ttl: parse_duration(get, "LATCHKEY_CHALLENGE_TTL", "10m")?,
            session_idle_timeout: parse_duration(get, "LATCHKEY_SESSION_IDLE_TIMEOUT", "3d")?,
            session_max_age: parse_duration(get, "LATCHKEY_SESSION_MAX_AGE", "30d")?,
            remember_for: parse_duration(get, "LATCHKEY_REMEMBER_USER_FOR", "30d")?,
            log_format: match get("LATCHKEY_LOG_FORMAT").unwrap_or("text") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(invalid("LATCHKEY_LOG_FORMAT", format!("'{other}' is not text or json"))),
            },
            clients_file: get("LATCHKEY_CLIENTS_FILE").map(std::path::PathBuf::from),
            code_ttl: parse_duration(get, "LATCHKEY_CODE_TTL", "60s")?,
            access_token_ttl: parse_duration(get, "LATCHKEY_ACCESS_TOKEN_TTL", "10m")?,
            offline_refresh_ttl: parse_duration(get, "LATCHKEY_OFFLINE_REFRESH_TTL", "30d")?,
            admin_token: match get("LATCHKEY_ADMIN_TOKEN") {
                Some(token) if token.len() < 32 => {
                    return Err(invalid("LATCHKEY_ADMIN_TOKEN", "must be at least 32 characters".into()));
                }
                token => token.map(str::to_owned),
            },
            smtp_url: get("LATCHKEY_SMTP_URL").map(str::to_owned),
            mail_from: get("LATCHKEY_MAIL_FROM").unwrap_or("Latchkey <latchkey@localhost>").to_owned(),
            email_login: parse_bool(get, "LATCHKEY_EMAIL_LOGIN", true)?,
            email_link_ttl: parse_duration(get, "LATCHKEY_EMAIL_LINK_TTL", "15m")?,
            enrollment_ttl: parse_duration(get, "LATCHKEY_ENROLLMENT_TTL", "24h")?,
            database_max_connections: match get("LATCHKEY_DATABASE_MAX_CONNECTIONS").map(str::parse::<u32>) {
                None => crate::store::default_max_connections(database_url),
                Some(Ok(n)) if (1..=1000).contains(&n) => n,
                Some(_) => {
                    return Err(invalid("LATCHKEY_DATABASE_MAX_CONNECTIONS", "must be a number from 1 to 1000".into()));
                }
            },
            key_reload_interval: parse_duration(get, "LATCHKEY_KEY_RELOAD_INTERVAL", "30s")?,
            shutdown_grace: parse_duration(get, "LATCHKEY_SHUTDOWN_GRACE", "20s")?,
            request_timeout: parse_duration(get, "LATCHKEY_REQUEST_TIMEOUT", "30s")?,
            header_read_timeout: parse_duration(get, "LATCHKEY_HEADER_READ_TIMEOUT", "10s")?,
            trusted_proxies: parse_networks(get("LATCHKEY_TRUSTED_PROXIES").unwrap_or_default())?,
            login_transactions_per_ip: parse_count(get, "LATCHKEY_LOGIN_TRANSACTIONS_PER_IP", 300)?,
            memory_store_max_entries: parse_count(
                get,
                "LATCHKEY_MEMORY_STORE_MAX_ENTRIES",
                crate::ephemeral::memory::DEFAULT_MAX_ENTRIES as u64,
            )? as usize,
            rate_limits: match get("LATCHKEY_RATE_LIMITS").unwrap_or("on") {
                "on" => true,
                "off" => false,
                other => return Err(invalid("LATCHKEY_RATE_LIMITS", format!("'{other}' is not on or off"))),
            },
        })
    }

    /// Whether cookies must carry `Secure` and the `__Host-` prefix.
    pub fn is_https(&self) -> bool {
        self.issuer.scheme() == "https"
    }

    /// The WebAuthn relying-party id: the issuer's host name.
    pub fn rp_id(&self) -> &str {
        self.issuer.host_str().unwrap_or("localhost")
    }

    /// The issuer's origin (`scheme://host[:port]`), which browsers send in `Origin`.
    pub fn origin(&self) -> String {
        self.issuer.origin().ascii_serialization()
    }
}

/// The longest duration any setting accepts.
const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

fn invalid(variable: &'static str, problem: String) -> ConfigError {
    ConfigError { variable, problem }
}

fn parse_issuer(value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| invalid("LATCHKEY_ISSUER", format!("not a URL ({e})")))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                "LATCHKEY_ISSUER",
                "must be https unless the host is localhost (WebAuthn requires a secure origin)".into(),
            ));
        }
        _ => return Err(invalid("LATCHKEY_ISSUER", "must be an http(s) URL".into())),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("LATCHKEY_ISSUER", "must not have a query or fragment".into()));
    }
    if host.is_empty() {
        return Err(invalid("LATCHKEY_ISSUER", "has no host".into()));
    }
    Ok(url)
}

/// A comma-separated list of addresses (`10.0.0.7`) and ranges (`10.0.0.0/8`).
fn parse_networks(value: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| invalid("LATCHKEY_TRUSTED_PROXIES", format!("'{item}' is not an address or CIDR range")))
        })
        .collect()
}

fn parse_bool<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(invalid(variable, format!("'{other}' is not true or false"))),
    }
}

/// A whole number from 1 to a billion.
fn parse_count<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(variable).map(str::parse::<u64>) {
        None => Ok(default),
        Some(Ok(n)) if (1..=1_000_000_000).contains(&n) => Ok(n),
        Some(_) => Err(invalid(variable, "must be a whole number from 1 to 1000000000".into())),
    }
}

fn parse_duration<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    variable: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let value = get(variable).unwrap_or(default);
    let duration = humantime::parse_duration(value)
        .map_err(|e| invalid(variable, format!("'{value}' is not a duration like 10m or 30d ({e})")))?;
    if duration.is_zero() {
        return Err(invalid(variable, "must be longer than zero".into()));
    }
    // Lifetimes are added to timestamps; a bound keeps that arithmetic far from overflowing.
    if duration > MAX_DURATION {
        return Err(invalid(variable, "must be at most 10 years".into()));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::from_vars(&HashMap::new()).unwrap();
        assert_eq!(config.issuer.as_str(), "http://localhost:8080/");
        assert_eq!(config.rp_id(), "localhost");
        assert_eq!(config.origin(), "http://localhost:8080");
        assert!(!config.is_https());
        assert_eq!(config.challenge_ttl, Duration::from_secs(600));
        assert_eq!(config.signup, Signup::Open);
    }

    #[test]
    fn errors_name_the_variable() {
        for (name, value) in [
            ("LATCHKEY_ISSUER", "http://example.com"),
            ("LATCHKEY_ISSUER", "not a url"),
            ("LATCHKEY_LISTEN", "localhost"),
            ("LATCHKEY_SIGNUP", "maybe"),
            ("LATCHKEY_CHALLENGE_TTL", "soon"),
            ("LATCHKEY_REVEAL_UNKNOWN_USERS", "perhaps"),
            ("LATCHKEY_DATABASE_URL", "mysql://x"),
            ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8, proxy"),
            ("LATCHKEY_SESSION_MAX_AGE", "300000y"),
            ("LATCHKEY_LOGIN_TRANSACTIONS_PER_IP", "0"),
            ("LATCHKEY_MEMORY_STORE_MAX_ENTRIES", "lots"),
        ] {
            let err = Config::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{value}");
        }
    }

    #[test]
    fn https_issuer_is_secure() {
        let config = Config::from_vars(&vars(&[("LATCHKEY_ISSUER", "https://id.example.com")])).unwrap();
        assert!(config.is_https());
        assert_eq!(config.rp_id(), "id.example.com");
    }
}
