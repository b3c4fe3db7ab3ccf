//! The rules a client registration must pass.

use super::*;

/// Checks every field of `spec` and returns the client it describes, or one message per field
/// that is wrong (keys are the JSON field names).
pub fn validate(spec: &ClientSpec) -> Result<ValidClient, FieldErrors> {
    let mut errors = FieldErrors::new();

    let name = spec.name.trim();
    record(&mut errors, "name", validate_name(name, 100, "Enter a name."));
    if let Some(client_id) = &spec.client_id {
        record(&mut errors, "client_id", validate_client_id(client_id));
    }
    let grant_types = record(&mut errors, "grant_types", parse_grant_types(spec.grant_types.as_deref(), spec.public));
    let only_client_credentials =
        grant_types.as_ref().is_some_and(|g| g.iter().eq([GrantType::ClientCredentials].iter()));
    let allow_http = spec.allow_http_redirect_uris;
    if spec.redirect_uris.is_empty() && !only_client_credentials {
        errors.insert("redirect_uris", "Add at least one redirect URI.".into());
    }
    record(&mut errors, "redirect_uris", check_uris(&spec.redirect_uris, allow_http));
    record(&mut errors, "post_logout_redirect_uris", check_uris(&spec.post_logout_redirect_uris, allow_http));
    let allowed_scopes = record(&mut errors, "allowed_scopes", parse_scopes(spec.allowed_scopes.as_deref()));
    let id_token_alg = record(
        &mut errors,
        "id_token_signed_response_alg",
        spec.id_token_signed_response_alg
            .as_deref()
            .map_or(Ok(SigningAlg::RS256), |alg| alg.parse::<SigningAlg>().map_err(|e| format!("{e}."))),
    );
    let backchannel_logout_uri = record(
        &mut errors,
        "backchannel_logout_uri",
        spec.backchannel_logout_uri.as_deref().map(parse_backchannel_uri).transpose(),
    );
    let access_token_ttl =
        record(&mut errors, "access_token_ttl_seconds", spec.access_token_ttl_seconds.map(parse_ttl).transpose());
    let refresh_token_ttl =
        record(&mut errors, "refresh_token_ttl_seconds", spec.refresh_token_ttl_seconds.map(parse_ttl).transpose());
    match &spec.client_secret {
        Some(_) if spec.public => {
            let message = "Public clients have no secret; remove client_secret or make the client confidential.";
            errors.insert("client_secret", message.into());
        }
        Some(secret) if secret.chars().count() < MIN_SECRET_CHARS => {
            errors.insert("client_secret", format!("Use a secret of at least {MIN_SECRET_CHARS} characters."));
        }
        _ => {}
    }

    let parsed =
        (grant_types, allowed_scopes, id_token_alg, backchannel_logout_uri, access_token_ttl, refresh_token_ttl);
    let (
        Some(grant_types),
        Some(allowed_scopes),
        Some(id_token_alg),
        Some(backchannel_logout_uri),
        Some(access_token_ttl),
        Some(refresh_token_ttl),
    ) = parsed
    else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let settings = ClientSettings {
        name: name.to_owned(),
        public: spec.public,
        first_party: spec.first_party,
        redirect_uris: dedup(&spec.redirect_uris),
        post_logout_redirect_uris: dedup(&spec.post_logout_redirect_uris),
        allowed_scopes,
        grant_types,
        id_token_alg,
        backchannel_logout_uri,
        access_token_ttl,
        refresh_token_ttl,
    };
    Ok(ValidClient { client_id: spec.client_id.clone(), settings, client_secret: spec.client_secret.clone() })
}

/// Records a failed field (the first message per field wins) and hands back a good one's value.
fn record<T>(errors: &mut FieldErrors, field: &'static str, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(message) => {
            errors.entry(field).or_insert(message);
            None
        }
    }
}

/// Client ids share the username alphabet so they are safe in URLs, logs and HTTP Basic.
pub(super) fn validate_client_id(client_id: &str) -> Result<(), String> {
    let valid_chars = client_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match client_id.len() {
        0 => Err("Enter a client_id, or leave it out to have one generated.".into()),
        65.. => Err("Use at most 64 characters.".into()),
        _ if !valid_chars => Err("Use only letters, digits, dots, dashes and underscores.".into()),
        _ => Ok(()),
    }
}

fn parse_grant_types(given: Option<&[String]>, public: bool) -> Result<BTreeSet<GrantType>, String> {
    let grants: BTreeSet<GrantType> = match given {
        None => [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
        Some(names) => names.iter().map(|name| name.parse()).collect::<Result<_, _>>()?,
    };
    if grants.is_empty() {
        return Err("Choose at least one grant type.".into());
    }
    if public && grants.contains(&GrantType::ClientCredentials) {
        // RFC 6749 §4.4: the client credentials grant MUST only be used by confidential clients.
        return Err("client_credentials needs a confidential client: a public client cannot authenticate.".into());
    }
    Ok(grants)
}

fn parse_scopes(given: Option<&[String]>) -> Result<BTreeSet<String>, String> {
    let scopes: BTreeSet<String> = match given {
        None => KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        Some(scopes) => scopes.iter().cloned().collect(),
    };
    if let Some(unknown) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Err(format!("Unknown scope '{unknown}'; use openid, profile, email or offline_access."));
    }
    if !scopes.contains("openid") {
        return Err("Include the openid scope.".into());
    }
    Ok(scopes)
}

fn parse_ttl(seconds: i64) -> Result<Duration, String> {
    match seconds {
        ..=0 => Err("Use a positive number of seconds.".into()),
        s if s > MAX_TTL_SECONDS => Err(format!("Use at most {MAX_TTL_SECONDS} seconds (one year).")),
        s => Ok(Duration::from_secs(s.unsigned_abs())),
    }
}

/// OIDC Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment; like redirect URIs,
/// plain http only on loopback hosts.
fn parse_backchannel_uri(uri: &str) -> Result<Url, String> {
    let url = parse_absolute(uri)?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(format!("'{uri}': use https (http only for localhost, 127.0.0.1 and [::1]).")),
    }
}

fn check_uris(uris: &[String], allow_http: bool) -> Result<(), String> {
    uris.iter().try_for_each(|uri| check_uri(uri, allow_http))
}

/// The rules for redirect and post-logout redirect URIs: absolute, no fragment (RFC 6749
/// §3.1.2), no wildcards, and a scheme that cannot leak the code: https, http on a loopback host
/// (RFC 8252 §7.3), or a private-use scheme with a dot in it, as native apps use (RFC 8252 §7.1).
pub(super) fn check_uri(uri: &str, allow_http: bool) -> Result<(), String> {
    if uri.contains('*') {
        return Err(format!("'{uri}': wildcards are not allowed; list each URI exactly."));
    }
    let url = parse_absolute(uri)?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(&url) => Ok(()),
        "http" => Err(format!("'{uri}': use https; http is allowed only for localhost, 127.0.0.1 and [::1].")),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "'{uri}': use https, http on a loopback host, or a private-use scheme such as com.example.app:/callback."
        )),
    }
}

fn parse_absolute(uri: &str) -> Result<Url, String> {
    // `Url::parse` silently trims surrounding spaces; a registered URI is compared byte for byte,
    // so refuse them rather than store a URI no request will ever match.
    if uri.is_empty() || uri.chars().any(char::is_whitespace) {
        return Err(format!("'{uri}' is not an absolute URI: remove the spaces."));
    }
    let url = Url::parse(uri).map_err(|_| format!("'{uri}' is not an absolute URI."))?;
    if url.fragment().is_some() {
        return Err(format!("'{uri}' must not contain a fragment (#…)."));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain == "localhost",
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        None => false,
    }
}

fn dedup(uris: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    uris.iter().filter(|uri| seen.insert(uri.as_str())).cloned().collect()
}
