//! The OpenAPI 3.1 document of the admin API. Paths and schemas come from the handlers'
//! `#[utoipa::path]` attributes as they are routed (see [`super::router`]), so the document
//! cannot list a route that does not exist or miss one that does; this module adds what is not
//! per-handler: the title, the bearer security scheme and the shared error responses.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::problem::{ProblemDoc, responses};

/// The document's fixed parts.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey admin API",
        version = "1",
        description = "Manage users, their passkeys, OpenID Connect clients and signing keys, and read \
            the audit log. Authenticate with `Authorization: Bearer <LATCHKEY_ADMIN_TOKEN>`. Errors \
            are RFC 9457 problem documents (`application/problem+json`); unknown fields in a body \
            are refused (422); lists answer `{\"items\": [...], \"next_cursor\": ...}`."
    ),
    modifiers(&BearerToken),
    security(("admin_token" = [])),
    components(
        schemas(ProblemDoc),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::NotFound,
            responses::Conflict,
            responses::TooLarge,
            responses::Invalid,
        )
    ),
    tags(
        (name = "users", description = "People, their passkeys and enrollment links"),
        (name = "clients", description = "OpenID Connect relying parties"),
        (name = "signing keys", description = "Token-signing keys and their rotation"),
        (name = "audit", description = "Sign-ins, failures and admin changes"),
    )
)]
pub struct ApiDoc;

/// Declares the `admin_token` bearer scheme every operation requires.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The value of LATCHKEY_ADMIN_TOKEN."))
            .build();
        components.add_security_scheme("admin_token", SecurityScheme::Http(scheme));
    }
}
