//! `/users`: create, list and search, read, change (including `disabled`) and delete users.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use entity::user;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    auth::AdminToken,
    extract::{AdminJson, AdminPath, AdminQuery},
    page::{Page, parse_paging},
};
use crate::{
    accounts::FieldErrors,
    admin::{
        AdminError,
        users::{self, UserInput, UserPatch},
    },
    app::AppState,
};

/// A user.
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub id: Uuid,
    /// 1–64 letters, digits, `.`, `_` or `-`; unique ignoring case.
    pub username: String,
    /// Unique ignoring case.
    pub email: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    /// A disabled user cannot sign in, and has no live sessions or tokens.
    pub disabled: bool,
}

impl From<user::Model> for UserView {
    fn from(user: user::Model) -> UserView {
        UserView {
            id: user.id,
            username: user.username,
            email: user.email,
            display_name: user.display_name,
            created_at: user.created_at,
            disabled: user.disabled,
        }
    }
}

/// A new user. They have no passkey yet: issue an enrollment link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub username: String,
    pub email: String,
    /// Defaults to the username.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Changes to a user; absent (or `null`) fields stay as they are. Disabling revokes every
/// token of the user and ends their sessions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// Paging and search of the user list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Only users whose username, email or display name contains this, ignoring case.
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Creates a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = UserCreate,
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 400, response = super::problem::responses::BadRequest),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 409, response = super::problem::responses::Conflict),
        (status = 413, response = super::problem::responses::TooLarge),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn users_post(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminJson(body): AdminJson<UserCreate>,
) -> Result<(StatusCode, Json<UserView>), AdminError> {
    let input = UserInput { username: body.username, email: body.email, display_name: body.display_name };
    let user = users::create(&state.db, &input, &admin.actor, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Lists users, oldest first.
#[utoipa::path(get, path = "/users", tag = "users", params(UserListQuery),
    responses(
        (status = 200, description = "A page of users", body = Page<UserView>),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn users_get(
    _: AdminToken,
    State(state): State<AppState>,
    AdminQuery(query): AdminQuery<UserListQuery>,
) -> Result<Json<Page<UserView>>, AdminError> {
    let mut errors = FieldErrors::new();
    let (limit, after) = parse_paging(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(AdminError::Invalid(errors));
    }
    let rows = users::list(&state.db, query.q.as_deref(), after, limit + 1).await?;
    Ok(Json(Page::from_rows(rows, limit, |u| (u.created_at, u.id), UserView::from)))
}

/// Reads one user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
    ))]
pub async fn user_get(
    _: AdminToken,
    State(state): State<AppState>,
    AdminPath(id): AdminPath<Uuid>,
) -> Result<Json<UserView>, AdminError> {
    Ok(Json(users::get(&state.db, id).await?.into()))
}

/// Changes a user.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)), request_body = UserUpdate,
    responses(
        (status = 200, description = "The user as changed", body = UserView),
        (status = 400, response = super::problem::responses::BadRequest),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
        (status = 409, response = super::problem::responses::Conflict),
        (status = 413, response = super::problem::responses::TooLarge),
        (status = 422, response = super::problem::responses::Invalid),
    ))]
pub async fn user_patch(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath(id): AdminPath<Uuid>,
    AdminJson(body): AdminJson<UserUpdate>,
) -> Result<Json<UserView>, AdminError> {
    let patch = UserPatch {
        username: body.username,
        email: body.email,
        display_name: body.display_name,
        disabled: body.disabled,
    };
    Ok(Json(users::update(&state, id, &patch, &admin.actor, Utc::now()).await?.into()))
}

/// Deletes a user with their passkeys; their sessions and tokens end at once.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = super::problem::responses::Unauthorized),
        (status = 404, response = super::problem::responses::NotFound),
    ))]
pub async fn user_delete(
    admin: AdminToken,
    State(state): State<AppState>,
    AdminPath(id): AdminPath<Uuid>,
) -> Result<StatusCode, AdminError> {
    users::delete(&state, id, &admin.actor, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
