//! Service ids: the name of a service in the deployment (Backstage's plugin id).

/// Whether `id` is a valid service id: `^[a-z0-9_-]+$`.
///
/// ```
/// assert!(s2s_auth::principal::is_valid_service_id("catalog"));
/// assert!(!s2s_auth::principal::is_valid_service_id("Catalog"));
/// assert!(!s2s_auth::principal::is_valid_service_id("plugin:catalog"));
/// ```
pub fn is_valid_service_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
