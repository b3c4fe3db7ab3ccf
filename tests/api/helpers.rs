//! `TestApp`: Latchkey on a random port with its own database (a fresh SQLite file, or a fresh
//! PostgreSQL schema) and its own Redis key prefix, plus a browser-like HTTP client (cookie
//! store, no redirects) and helpers that walk the pages the way the script does.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use latchkey::{app::AppState, config::Config};
use reqwest::{StatusCode, header};
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;

use crate::authenticator::SoftAuthenticator;

/// Where a test's data lives.
#[derive(Clone, Debug)]
pub enum Backend {
    /// SQLite file + in-process ephemeral store (the embedded default).
    Embedded,
    /// PostgreSQL + Redis, from `LATCHKEY_TEST_DATABASE_URL` / `LATCHKEY_TEST_REDIS_URL`.
    Scaled { database_url: String, redis_url: String },
}

impl Backend {
    /// The scaled-out backend when configured; prints a notice and returns `None` otherwise.
    pub fn scaled() -> Option<Backend> {
        match (std::env::var("LATCHKEY_TEST_DATABASE_URL"), std::env::var("LATCHKEY_TEST_REDIS_URL")) {
            (Ok(database_url), Ok(redis_url)) => Some(Backend::Scaled { database_url, redis_url }),
            _ => {
                eprintln!(
                    "notice: LATCHKEY_TEST_DATABASE_URL / LATCHKEY_TEST_REDIS_URL not set; \
                     skipping the PostgreSQL + Redis run"
                );
                None
            }
        }
    }
}

/// Runs each named `async fn(Backend)` once on the embedded default and once on PostgreSQL +
/// Redis (skipped with a notice when those are not configured).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn embedded() {
                super::$name($crate::helpers::Backend::Embedded).await;
            }
            #[tokio::test]
            async fn postgres_redis() {
                if let Some(backend) = $crate::helpers::Backend::scaled() {
                    super::$name(backend).await;
                }
            }
        }
    )*};
}

/// A running Latchkey.
pub struct TestApp {
    /// The issuer: where browsers and clients talk to (this replica, or a proxy in front).
    pub base: String,
    /// This replica's own address.
    pub local: String,
    pub state: AppState,
    _sqlite_file: Option<SqliteFile>,
}

/// A SQLite database file in the temporary directory, removed (with its WAL files) on drop.
pub struct SqliteFile(PathBuf);

impl SqliteFile {
    /// A new, not yet created, database file.
    pub fn new() -> SqliteFile {
        SqliteFile(std::env::temp_dir().join(format!("latchkey-test-{}.db", uuid::Uuid::new_v4().simple())))
    }

    /// Its `LATCHKEY_DATABASE_URL`.
    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// A fresh PostgreSQL schema; answers `database_url` with its `search_path` set to it. Its name
/// carries the time it was made, so the first schema a test run makes can drop those earlier
/// runs left more than an hour ago (a run may end anywhere; its tests do not clean up after
/// themselves).
pub async fn fresh_schema(database_url: &str) -> String {
    static OLD_SCHEMAS_DROPPED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let schema = format!("test_{now}_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(database_url).await.expect("PostgreSQL reachable");
    OLD_SCHEMAS_DROPPED.get_or_init(|| drop_schemas_made_before(&admin, now - 3600)).await;
    admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    let separator = if database_url.contains('?') { '&' } else { '?' };
    format!("{database_url}{separator}options[search_path]={schema}")
}

/// Drops the test schemas made before `cutoff` (Unix seconds), and those named before names
/// carried a time.
async fn drop_schemas_made_before(admin: &impl ConnectionTrait, cutoff: u64) {
    let list = sea_orm::Statement::from_string(
        admin.get_database_backend(),
        r"SELECT nspname FROM pg_namespace WHERE nspname ~ '^test_([0-9]+_)?[0-9a-f]{32}$'",
    );
    for row in admin.query_all_raw(list).await.unwrap() {
        let name: String = row.try_get("", "nspname").unwrap();
        // `test_<secs>_<id>`, or `test_<id>` as schemas were named before they carried a time.
        let made = match name.split('_').collect::<Vec<_>>()[..] {
            [_, secs, _] => secs.parse().unwrap_or(u64::MAX),
            _ => 0,
        };
        if made < cutoff {
            admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await.unwrap();
        }
    }
}

/// A local port nobody listens on (at the moment of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestApp {
    /// Starts Latchkey on `backend` with default settings.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts Latchkey on `backend` with extra `LATCHKEY_*` settings.
    pub async fn spawn_with(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://localhost:{port}");
        let mut vars: HashMap<String, String> = HashMap::from([
            ("LATCHKEY_ISSUER".into(), base.clone()),
            ("LATCHKEY_LISTEN".into(), format!("127.0.0.1:{port}")),
        ]);
        let sqlite_file = match backend {
            Backend::Embedded => {
                let file = SqliteFile::new();
                vars.insert("LATCHKEY_DATABASE_URL".into(), file.url());
                Some(file)
            }
            Backend::Scaled { database_url, redis_url } => {
                vars.insert("LATCHKEY_DATABASE_URL".into(), fresh_schema(&database_url).await);
                vars.insert("LATCHKEY_REDIS_URL".into(), redis_url);
                vars.insert("LATCHKEY_REDIS_PREFIX".into(), redis_prefix());
                None
            }
        };
        for (key, value) in settings {
            vars.insert((*key).into(), (*value).into());
        }
        let local = base.clone();
        let base = vars["LATCHKEY_ISSUER"].clone();
        let config = Config::from_vars(&vars).expect("test configuration is valid");
        let state = AppState::build(config).await.expect("app starts");
        let router = latchkey::http::router(state.clone());
        let (header_timeout, grace) = (state.config.header_read_timeout, state.config.shutdown_grace);
        // The server loop `latchkey serve` runs, never told to stop.
        tokio::spawn(latchkey::serve::serve(listener, router, header_timeout, grace, std::future::pending()));
        TestApp { base, local, state, _sqlite_file: sqlite_file }
    }

    /// A new browser: its own cookie jar, redirects not followed.
    pub fn browser(&self) -> Browser {
        Browser::at(&self.base)
    }

    /// Disables or enables the account named `name` directly in the database.
    pub async fn set_disabled(&self, name: &str, disabled: bool) {
        use sea_orm::{ActiveModelTrait, Set};
        let user = latchkey::store::users::find_by_login(&self.state.db, name).await.unwrap().unwrap();
        let mut row: entity::user::ActiveModel = user.into();
        row.disabled = Set(disabled);
        row.update(&self.state.db).await.unwrap();
    }
}

/// A fresh Redis key prefix.
pub fn redis_prefix() -> String {
    format!("latchkey-test:{}:", uuid::Uuid::new_v4().simple())
}

/// A browser session against a [`TestApp`].
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    /// Where requests go.
    pub base: String,
    /// The page origin the browser claims (the issuer), sent as `Origin` with JSON posts.
    pub origin: String,
    pub jar: Arc<reqwest::cookie::Jar>,
}

/// A page as fetched: status and body.
pub struct Page {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The hidden CSRF token of the page's forms.
    pub fn csrf_token(&self) -> String {
        between(&self.body, "name=\"csrf_token\" value=\"", "\"").expect("page has a CSRF token").to_owned()
    }

    /// The JSON in `<script type="application/json" id="{id}">`.
    pub fn json_block(&self, id: &str) -> Value {
        let start = format!("id=\"{id}\">");
        let raw = between(&self.body, &start, "</script>").unwrap_or_else(|| panic!("no #{id} in page"));
        serde_json::from_str(raw).unwrap()
    }

    /// The names of the cookies this response set.
    pub fn cookie_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split('=').next().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    pub fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

async fn page(response: reqwest::Response) -> Page {
    Page { status: response.status(), headers: response.headers().clone(), body: response.text().await.unwrap() }
}

impl Browser {
    /// A new browser on the issuer `base`: its own cookie jar, redirects not followed.
    pub fn at(base: &str) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { client, base: base.to_owned(), origin: base.to_owned(), jar }
    }

    /// The same browser (cookies included) sending its requests to `base` directly.
    pub fn pointed_at(&self, base: &str) -> Browser {
        Browser { base: base.to_owned(), ..self.clone() }
    }

    pub async fn get(&self, path: &str) -> Page {
        page(self.client.get(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    /// Posts a form (the CSRF token must be among the fields).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        page(self.client.post(format!("{}{path}", self.base)).form(fields).send().await.unwrap()).await
    }

    /// Posts JSON as Latchkey's script does (same-origin `Origin`); answers status and body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(header::ORIGIN, &self.origin)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Signs up through the pages and returns the account page.
    pub async fn sign_up(&self, auth: &mut SoftAuthenticator, username: &str, email: &str, name: &str) -> Page {
        let form = self.get("/signup").await;
        let csrf = form.csrf_token();
        let passkey_page = self
            .post_form(
                "/signup",
                &[("csrf_token", &csrf), ("username", username), ("email", email), ("display_name", name)],
            )
            .await;
        assert_eq!(passkey_page.status, StatusCode::OK, "{}", passkey_page.body);
        let options = passkey_page.json_block("passkey-creation-options");
        let (status, body) = self.post_json("/signup/passkey", &auth.register(&options, &self.base)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["redirect_to"], "/account");
        self.get("/account").await
    }

    /// Submits the username step (after Switch user) and returns the passkey step page.
    pub async fn username_step(&self, name: &str) -> Page {
        self.get("/login/switch-user").await;
        let login = self.get("/login").await;
        self.post_form("/login", &[("csrf_token", &login.csrf_token()), ("username", name)]).await
    }

    /// Answers the passkey step shown on `page` with `auth`.
    pub async fn answer_passkey_step(&self, page: &Page, auth: &mut SoftAuthenticator) -> (StatusCode, Value) {
        let options = page.json_block("passkey-options");
        let assertion = auth.assert(&options, &self.base).expect("authenticator holds an allowed credential");
        self.post_json("/login/passkey", &assertion).await
    }

    /// Signs out through the account page's form.
    pub async fn sign_out(&self) {
        let account = self.get("/account").await;
        let done = self.post_form("/logout", &[("csrf_token", &account.csrf_token())]).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER);
    }
}

/// A unique username for a test.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
