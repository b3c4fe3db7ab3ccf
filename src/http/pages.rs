//! Server-rendered pages: the embedded minijinja templates and the error page.
//!
//! Templates are compiled into the binary (a release build runs from any directory) and
//! parsed once. They are immutable program text, not state, hence a static.

use std::sync::LazyLock;

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use minijinja::Environment;
use serde::Serialize;

use crate::error::AppError;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("login_username.html", include_str!("../../templates/login_username.html")),
        ("login_passkey.html", include_str!("../../templates/login_passkey.html")),
        ("signup.html", include_str!("../../templates/signup.html")),
        ("signup_passkey.html", include_str!("../../templates/signup_passkey.html")),
        ("account.html", include_str!("../../templates/account.html")),
        ("message.html", include_str!("../../templates/message.html")),
        ("consent.html", include_str!("../../templates/consent.html")),
        ("form_post.html", include_str!("../../templates/form_post.html")),
        ("end_session.html", include_str!("../../templates/end_session.html")),
        ("enroll.html", include_str!("../../templates/enroll.html")),
        ("email_link.html", include_str!("../../templates/email_link.html")),
        ("email/sign_in.txt", include_str!("../../templates/email/sign_in.txt")),
        ("email/sign_in.html", include_str!("../../templates/email/sign_in.html")),
    ] {
        env.add_template(name, source).expect("embedded templates parse");
    }
    env
});

/// Renders a page with the given status.
pub fn render(status: StatusCode, name: &str, context: minijinja::Value) -> Result<Response, AppError> {
    Ok((status, Html(render_text(name, context)?)).into_response())
}

/// Renders a template to a string (email bodies).
pub fn render_text(name: &str, context: minijinja::Value) -> Result<String, AppError> {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("rendering {name}: {e:#}")))
}

/// An error on a page request, rendered as the error page rather than JSON.
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(err: AppError) -> Self {
        PageError(err)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let err = self.0;
        err.log();
        let status = err.status();
        let context = minijinja::context! {
            title => status.canonical_reason().unwrap_or("Error"),
            message => err.public_message(),
            link => minijinja::context! { href => "/login", text => "Go to sign-in" },
        };
        render(status, "message.html", context).unwrap_or_else(|_| (status, err.public_message()).into_response())
    }
}

/// The 404 page for unknown paths.
pub async fn not_found() -> PageError {
    PageError(AppError::NotFound("There is no page at this address.".into()))
}

/// Serialises a value for a `<script type="application/json">` block: `<`, `>` and `&` are
/// escaped so no string inside (a display name, say) can close the element.
pub fn json_for_script(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("option types always serialise")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_element() {
        let json = json_for_script(&serde_json::json!({"name": "</script><b>&"}));
        assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], "</script><b>&");
    }

    #[test]
    fn every_template_renders_with_empty_context() {
        for name in TEMPLATES.templates().map(|(name, _)| name) {
            TEMPLATES.get_template(name).unwrap().render(minijinja::context! {}).unwrap();
        }
    }
}
