//! The one place where an error becomes an HTTP response (RFC 6750 and Backstage's error
//! body): the layer's refusals ([`RequestError`]) and the [`Principal`](crate::Principal)
//! extractor's rejection ([`MissingPrincipal`]), so both send the same challenge.

use http::{HeaderValue, Method, Response, StatusCode, header};
use serde::Serialize;

use axum::response::IntoResponse;

use crate::error::RequestError;
use crate::principal::MissingPrincipal;

/// Builds the refusal for `error` on a service whose realm is `realm`.
///
/// `path` is the request's path without its query: the query may hold a token (that is one
/// of the refusals), so it is never echoed.
pub(crate) fn refusal(
    error: &RequestError,
    message: &str,
    realm: &str,
    method: &Method,
    path: &str,
) -> Response<String> {
    let status = error.status();
    let code = match error {
        RequestError::MissingCredentials | RequestError::UnsupportedScheme => None,
        RequestError::InvalidToken(_) => Some("invalid_token"),
        RequestError::Forbidden(_) => Some("insufficient_scope"),
        RequestError::DuplicateAuthorization
        | RequestError::MalformedAuthorization(_)
        | RequestError::TokenInQuery => Some("invalid_request"),
        RequestError::KeysUnavailable { .. } | RequestError::RevocationsUnavailable { .. } => None,
    };
    // RFC 6750 section 3: no error code when the request simply lacked credentials.
    let challenge = match code {
        None => format!("Bearer realm=\"{}\"", quoted(realm)),
        Some(code) => format!(
            "Bearer realm=\"{}\", error=\"{code}\", error_description=\"{}\"",
            quoted(realm),
            quoted(message)
        ),
    };
    let name = match status {
        StatusCode::BAD_REQUEST => "InputError",
        StatusCode::FORBIDDEN => "NotAllowedError",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
        _ => "AuthenticationError",
    };
    let body = error_body(name, message, Some((method, path)), status);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // `quoted` leaves only visible ASCII and spaces, so this cannot fail; fall back to the
    // bare scheme rather than panic if that ever changes.
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
    );
    if let RequestError::KeysUnavailable { retry_after_secs }
    | RequestError::RevocationsUnavailable { retry_after_secs } = error
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        // Not a credential problem: no challenge.
        headers.remove(header::WWW_AUTHENTICATE);
    }
    response
}

impl IntoResponse for MissingPrincipal {
    fn into_response(self) -> axum::response::Response {
        let status = StatusCode::UNAUTHORIZED;
        let body = error_body("AuthenticationError", &self.to_string(), None, status);
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // No error code: the request simply carried no credential (RFC 6750 section 3).
        let challenge = match &self.realm {
            Some(realm) => HeaderValue::from_str(&format!("Bearer realm=\"{}\"", quoted(&realm.0)))
                .unwrap_or(HeaderValue::from_static("Bearer")),
            None => HeaderValue::from_static("Bearer"),
        };
        headers.insert(header::WWW_AUTHENTICATE, challenge);
        response
    }
}

/// The refusals of the endpoints this crate serves itself (just-in-time tokens, the
/// service-account admin API): Backstage's error body for the request's method and path.
pub(crate) struct Refusals {
    method: Method,
    url: String,
}

impl Refusals {
    pub(crate) fn of<B>(request: &http::Request<B>) -> Self {
        Self {
            method: request.method().clone(),
            url: request.uri().path().to_owned(),
        }
    }

    pub(crate) fn refuse(
        &self,
        status: StatusCode,
        name: &str,
        message: &str,
    ) -> axum::response::Response {
        let body = error_body(name, message, Some((&self.method, &self.url)), status);
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }

    /// 503 with `Retry-After: 5` (the store or the keys are unreachable; logged by the caller).
    pub(crate) fn unavailable(&self, message: &str) -> axum::response::Response {
        let mut response = self.refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableError",
            message,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        response
    }

    /// The request's body, at most `limit` bytes; a larger one (by its `Content-Length`,
    /// before reading, or as it arrives) is refused with 413.
    pub(crate) async fn read_body(
        &self,
        request: http::Request<axum::body::Body>,
        limit: usize,
    ) -> Result<axum::body::Bytes, axum::response::Response> {
        let too_large = || {
            self.refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InputError",
                &format!("request body is larger than {limit} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| too_large())
    }
}

/// Backstage's error body: `{"error":{"name","message"},"request":{"method","url"},
/// "response":{"statusCode"}}`.
pub(crate) fn error_body(
    name: &str,
    message: &str,
    request: Option<(&Method, &str)>,
    status: StatusCode,
) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        error: ErrorPart<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<RequestPart<'a>>,
        response: ResponsePart,
    }
    #[derive(Serialize)]
    struct ErrorPart<'a> {
        name: &'a str,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct RequestPart<'a> {
        method: &'a str,
        url: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ResponsePart {
        status_code: u16,
    }
    let body = Body {
        error: ErrorPart { name, message },
        request: request.map(|(method, url)| RequestPart {
            method: method.as_str(),
            url,
        }),
        response: ResponsePart {
            status_code: status.as_u16(),
        },
    };
    serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"))
}

/// Makes text safe inside an RFC 6750 quoted string: `"` and `\` and anything outside
/// visible ASCII and space become `'` or `?`.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::VerifyError;

    #[test]
    fn invalid_token_challenge() {
        let error = RequestError::InvalidToken(VerifyError::Expired);
        let r = refusal(&error, &error.to_string(), "catalog", &Method::GET, "/x");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"catalog\", error=\"invalid_token\", error_description=\"token has expired\""
        );
        let body: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["error"]["name"], "AuthenticationError");
        assert_eq!(body["request"]["url"], "/x");
        assert_eq!(body["response"]["statusCode"], 401);
    }

    #[test]
    fn quoting_strips_quotes_and_non_ascii() {
        assert_eq!(quoted("a\"b\\c\u{e9}"), "a'b'c?");
    }
}
