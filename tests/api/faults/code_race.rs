//! 50 concurrent redemptions of one authorization code: exactly one gets tokens, the other 49
//! `invalid_grant`; and since a replayed code revokes what its first redemption granted (RFC
//! 6749 §4.1.2), the winner's access token then fails at userinfo and its refresh token is
//! refused — whatever order the racers were served in. One grant row, revoked. Likewise 50
//! concurrent refreshes with one refresh token: exactly one rotates it.

use std::sync::Arc;

use entity::{grant, refresh_token};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{
    helpers::{Backend, TestApp},
    oidc::{authorize, first_party, redeem_code, register, signed_in_person, token_request, userinfo_status},
    on_both_backends,
};

const RACERS: usize = 50;

on_both_backends!(concurrent_redemptions_of_one_code, concurrent_refreshes_of_one_token);

/// A code issued to a confidential client, for the racers.
struct Issued {
    app: Arc<TestApp>,
    client_id: String,
    secret: String,
    code: String,
    verifier: String,
}

async fn issued(backend: Backend) -> Issued {
    let app = Arc::new(TestApp::spawn(backend).await);
    let (client_id, secret) = register(&app, first_party()).await;
    let (browser, _, _) = signed_in_person(&app).await;
    let (code, verifier) = authorize(&browser, &app, &client_id, "").await;
    Issued { app, client_id, secret: secret.unwrap(), code, verifier }
}

async fn concurrent_redemptions_of_one_code(backend: Backend) {
    let Issued { app, client_id, secret, code, verifier } = issued(backend).await;

    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let (app, client_id, secret, code, verifier) =
            (app.clone(), client_id.clone(), secret.clone(), code.clone(), verifier.clone());
        racers.spawn(async move { redeem_code(&app, &client_id, &secret, &code, &verifier).await });
    }
    let answers = racers.join_all().await;
    let winners: Vec<_> = answers.iter().filter(|(status, _, _)| *status == StatusCode::OK).collect();
    assert_eq!(winners.len(), 1, "exactly one redemption wins");
    for (status, body, _) in answers.iter().filter(|(status, _, _)| *status != StatusCode::OK) {
        assert_eq!((*status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    }

    let tokens = &winners[0].1;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&app, access).await, StatusCode::UNAUTHORIZED, "the replays revoked the grant");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, refused, _) =
        token_request(&app, &client_id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let grants = grant::Entity::find().filter(grant::Column::ClientId.eq(&client_id)).all(&app.state.db).await.unwrap();
    assert_eq!(grants.len(), 1, "one grant row, not one per racer");
    assert!(grants[0].revoked_at.is_some(), "the grant is revoked");
}

/// Of refreshes racing with one refresh token, exactly one rotates it; the others present a
/// used token, which is reuse (RFC 9700 §4.14.2): `invalid_grant`, and the grant is revoked.
async fn concurrent_refreshes_of_one_token(backend: Backend) {
    let Issued { app, client_id, secret, code, verifier } = issued(backend).await;
    let tokens = redeem_code(&app, &client_id, &secret, &code, &verifier).await.1;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let (app, client_id, secret, refresh) = (app.clone(), client_id.clone(), secret.clone(), refresh.clone());
        racers.spawn(async move {
            let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
            token_request(&app, &client_id, &secret, &form).await
        });
    }
    let answers = racers.join_all().await;
    let winners = answers.iter().filter(|(status, _, _)| *status == StatusCode::OK).count();
    assert_eq!(winners, 1, "exactly one refresh rotates the token");
    for (status, body, _) in answers.iter().filter(|(status, _, _)| *status != StatusCode::OK) {
        assert_eq!((*status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    }
    let stored = refresh_token::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(stored.len(), 2, "the token and its one successor, nothing stored by the losers");
}
