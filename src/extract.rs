//! Extraction: finding the bearer token in a request, and nothing else.
//!
//! Rules (DESIGN.md section 3), each against an attack or a foot-gun:
//! - only `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 7235);
//! - exactly one `Authorization` header: with two, a proxy and the service may each see a
//!   different one (header smuggling), so the request is refused with 400;
//! - the token is at most [`MAX_TOKEN_LEN`] bytes, checked before any other work, so an
//!   oversized token costs nothing to refuse;
//! - the token is visible ASCII only (checked by [`Bearer::checked`] before a token is
//!   verified; a token the verified-token cache answers for is byte for byte one that
//!   passed the check, so a hit skips it);
//! - a token in the query string (`?access_token=`) is never read: URLs end up in proxy
//!   logs, browser history and `Referer` headers. Such requests are refused with 400 so the
//!   caller notices.

use http::{HeaderMap, HeaderName, HeaderValue, Uri, header};

use crate::error::{RequestError, VerifyError};

/// The longest token accepted, in bytes (8 KiB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A bearer token as the request carried it: 1 to [`MAX_TOKEN_LEN`] bytes without a space
/// or tab at either end. Kept as bytes: a token answered from the verified-token cache is
/// compared with a token that was checked when it was verified, so only a token that goes
/// on to be verified pays [`Bearer::checked`] (visible ASCII, UTF-8). It has no `Debug`:
/// nothing can print it by accident.
#[derive(Clone, Copy)]
pub(crate) struct Bearer<'a>(&'a [u8]);

impl<'a> Bearer<'a> {
    /// The token's bytes, not yet checked: only for comparing with tokens that were.
    pub(crate) fn as_bytes(self) -> &'a [u8] {
        self.0
    }

    /// The token as text, if it is visible ASCII only (0x21 to 0x7e); refused otherwise,
    /// with 400 for a space inside it (a malformed header) and 401 for any other byte.
    pub(crate) fn checked(self) -> Result<&'a str, RequestError> {
        if !all_visible_ascii(self.0) {
            // Which refusal, worked out only for a refused token: one pass for a good one.
            if self.0.contains(&b' ') {
                return Err(RequestError::MalformedAuthorization(
                    "token contains a space",
                ));
            }
            return Err(VerifyError::NotVisibleAscii.into());
        }
        // Visible ASCII is UTF-8, so this does not fail; the error keeps it panic-free.
        std::str::from_utf8(self.0).map_err(|_| VerifyError::NotVisibleAscii.into())
    }
}

/// The `x-request-id` header, named once (a name given as a string is parsed on every
/// lookup). The audit event takes the caller's id from it.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Up to this many header values, one pass over them finds both headers the layer reads;
/// with more, two hash lookups do. A service-to-service call carries a handful of headers,
/// where a pass costs about half of the two lookups (callgrind, issue 11); a browser's
/// dozens would make a pass the dearer.
const SCAN_UP_TO: usize = 8;

/// The request headers the layer reads: the `authorization` values and the first
/// `x-request-id`.
#[derive(Clone, Copy, Default)]
pub(crate) struct ReadHeaders<'a> {
    /// The first `authorization` value.
    authorization: Option<&'a HeaderValue>,
    /// Whether there is more than one (refused: header smuggling).
    more_than_one: bool,
    /// The first `x-request-id` value.
    pub(crate) request_id: Option<&'a HeaderValue>,
}

/// Reads the headers the layer needs, in one pass over a short header map.
#[inline]
pub(crate) fn read_headers(headers: &HeaderMap) -> ReadHeaders<'_> {
    if headers.len() > SCAN_UP_TO {
        let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
        return ReadHeaders {
            authorization: authorization.next(),
            more_than_one: authorization.next().is_some(),
            request_id: headers.get(X_REQUEST_ID),
        };
    }
    let mut read = ReadHeaders::default();
    for (name, value) in headers {
        if name == header::AUTHORIZATION {
            if read.authorization.is_some() {
                read.more_than_one = true;
            } else {
                read.authorization = Some(value);
            }
        } else if name == X_REQUEST_ID && read.request_id.is_none() {
            read.request_id = Some(value);
        }
    }
    read
}

/// Finds the bearer token in headers read by [`read_headers`]. `Ok(None)` when the request
/// has no `Authorization` header. The token's bytes are checked by [`Bearer::checked`],
/// not here.
#[inline]
pub(crate) fn bearer_token<'a>(
    read: &ReadHeaders<'a>,
    uri: &Uri,
) -> Result<Option<Bearer<'a>>, RequestError> {
    if uri.query().is_some_and(query_has_access_token) {
        return Err(RequestError::TokenInQuery);
    }
    let Some(value) = read.authorization else {
        return Ok(None);
    };
    if read.more_than_one {
        return Err(RequestError::DuplicateAuthorization);
    }
    // A header value holds no ASCII whitespace but spaces and tabs (`http` refuses the
    // other control bytes), so `trim_ascii` trims exactly those.
    let bytes = value.as_bytes().trim_ascii();
    // Trimmed at both ends already: what follows the scheme needs only its leading
    // spaces taken off.
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (&bytes[..i], bytes[i..].trim_ascii_start()),
        None => (bytes, &[][..]),
    };
    if !is_bearer(scheme) {
        return Err(RequestError::UnsupportedScheme);
    }
    if rest.is_empty() {
        return Err(RequestError::MalformedAuthorization(
            "Bearer scheme without a token",
        ));
    }
    if rest.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::TooLong {
            limit: MAX_TOKEN_LEN,
        }
        .into());
    }
    Ok(Some(Bearer(rest)))
}

/// Whether every byte is visible ASCII (0x21 to 0x7e). Without an early exit, so the
/// compiler checks many bytes per instruction: a token is up to 8 KiB, checked on every
/// request.
pub(crate) fn all_visible_ascii(bytes: &[u8]) -> bool {
    !bytes
        .iter()
        .fold(false, |bad, &b| bad | (b.wrapping_sub(0x21) > 0x7e - 0x21))
}

/// Whether an authorization scheme is `Bearer`, in any case (RFC 7235): setting bit 0x20
/// lowercases an ASCII letter, and only `X` and `x` become `x` that way, so one compare of
/// six bytes is exact for a scheme of letters.
fn is_bearer(scheme: &[u8]) -> bool {
    <[u8; 6]>::try_from(scheme).is_ok_and(|s| s.map(|b| b | 0x20) == *b"bearer")
}

/// Whether a query string has an `access_token` parameter, also when its name is
/// percent-encoded or differently cased.
fn query_has_access_token(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        let decoded = percent_decode(name);
        decoded.eq_ignore_ascii_case(b"access_token")
    })
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_ascii_is_0x21_to_0x7e() {
        for b in 0..=255u8 {
            assert_eq!(
                all_visible_ascii(&[b'a', b, b'z']),
                (0x21..=0x7e).contains(&b),
                "{b:#x}"
            );
        }
        assert!(all_visible_ascii(b""));
        assert!(all_visible_ascii(&[b'x'; 8192]));
        let mut long = vec![b'x'; 8192];
        long[8191] = b' ';
        assert!(!all_visible_ascii(&long));
    }
    /// [`bearer_token`] with the token as bytes, to compare.
    fn bearer<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<Option<&'a [u8]>, RequestError> {
        match bearer_token(&read_headers(headers), uri)? {
            Some(token) => token.checked().map(|t| Some(t.as_bytes())),
            None => Ok(None),
        }
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    /// The one-compare scheme check agrees with a case-insensitive compare on every byte
    /// in every position.
    #[test]
    fn the_scheme_is_bearer_in_any_case_and_nothing_else() {
        assert!(is_bearer(b"Bearer") && is_bearer(b"bearer") && is_bearer(b"BeArEr"));
        for bad in [
            &b""[..],
            b"Beare",
            b"Bearers",
            b"Basic",
            b"bearer\0",
            b"Bearer ",
        ] {
            assert!(!is_bearer(bad), "{bad:?}");
        }
        for at in 0..6 {
            for b in 0..=255u8 {
                let mut scheme = *b"bearer";
                scheme[at] = b;
                assert_eq!(
                    is_bearer(&scheme),
                    scheme.eq_ignore_ascii_case(b"bearer"),
                    "byte {b:#x} at {at}"
                );
            }
        }
        // Spaces and tabs around the value and after the scheme are trimmed.
        let u = uri("/");
        assert_eq!(
            bearer(&headers(&[b" \t Bearer \t ab \t"]), &u),
            Ok(Some(&b"ab"[..]))
        );
        assert_eq!(
            bearer(&headers(&[b"Bearer \t "]), &u),
            Err(RequestError::MalformedAuthorization(
                "Bearer scheme without a token"
            ))
        );
        assert_eq!(bearer(&headers(&[b"Bearer a "]), &u), Ok(Some(&b"a"[..])));
    }

    #[test]
    fn finds_bearer_tokens_case_insensitively() {
        for v in [
            &b"Bearer abcdefgh"[..],
            b"bearer abcdefgh",
            b"BEARER   abcdefgh  ",
        ] {
            assert_eq!(
                bearer(&headers(&[v]), &uri("/")),
                Ok(Some(&b"abcdefgh"[..]))
            );
        }
    }

    #[test]
    fn refuses_malformed_headers() {
        let u = uri("/");
        assert_eq!(bearer(&headers(&[]), &u), Ok(None));
        assert_eq!(
            bearer(&headers(&[b"Basic dXNlcjpwYXNz"]), &u),
            Err(RequestError::UnsupportedScheme)
        );
        assert_eq!(
            bearer(&headers(&[b"Bearer"]), &u),
            Err(RequestError::MalformedAuthorization(
                "Bearer scheme without a token"
            ))
        );
        assert!(matches!(
            bearer(&headers(&[b"Bearer a b"]), &u),
            Err(RequestError::MalformedAuthorization(_))
        ));
        assert_eq!(
            bearer(&headers(&[b"Bearer a", b"Bearer b"]), &u),
            Err(RequestError::DuplicateAuthorization)
        );
        assert_eq!(
            bearer(&headers(&[b"Bearer caf\xc3\xa9-token"]), &u),
            Err(VerifyError::NotVisibleAscii.into())
        );
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            bearer(&headers(&[long.as_bytes()]), &u),
            Err(VerifyError::TooLong {
                limit: MAX_TOKEN_LEN
            }
            .into())
        );
    }

    /// A short header map is scanned, a long one looked up: both read the same.
    #[test]
    fn a_pass_and_the_lookups_read_the_same_headers() {
        let filler: Vec<HeaderName> = (0..SCAN_UP_TO + 2)
            .map(|i| HeaderName::try_from(format!("x-filler-{i}")).unwrap())
            .collect();
        for fill in [0, 1, SCAN_UP_TO - 3, SCAN_UP_TO + 2] {
            for authorization in [0usize, 1, 2] {
                for request_ids in [0usize, 1, 2] {
                    let mut h = HeaderMap::new();
                    for name in &filler[..fill] {
                        h.append(name.clone(), HeaderValue::from_static("v"));
                    }
                    for i in 0..authorization {
                        let v = HeaderValue::try_from(format!("Bearer token-{i}")).unwrap();
                        h.append(header::AUTHORIZATION, v);
                    }
                    for i in 0..request_ids {
                        let v = HeaderValue::try_from(format!("id-{i}")).unwrap();
                        h.append(X_REQUEST_ID, v);
                    }
                    let read = read_headers(&h);
                    let case =
                        format!("{fill} fillers, {authorization} authorization, {request_ids} ids");
                    assert_eq!(read.authorization, h.get(header::AUTHORIZATION), "{case}");
                    assert_eq!(read.more_than_one, authorization > 1, "{case}");
                    assert_eq!(read.request_id, h.get(X_REQUEST_ID), "{case}");
                    let expected = match authorization {
                        0 => Ok(None),
                        1 => Ok(Some(&b"token-0"[..])),
                        _ => Err(RequestError::DuplicateAuthorization),
                    };
                    assert_eq!(bearer(&h, &uri("/")), expected, "{case}");
                }
            }
        }
    }

    #[test]
    fn refuses_tokens_in_the_query() {
        for q in [
            "/x?access_token=abc",
            "/x?a=1&ACCESS_TOKEN=abc",
            "/x?access%5Ftoken=abc",
            "/x?access_token",
        ] {
            assert_eq!(
                bearer(&headers(&[b"Bearer abcdefgh"]), &uri(q)),
                Err(RequestError::TokenInQuery),
                "{q}"
            );
        }
        assert_eq!(bearer(&headers(&[]), &uri("/x?token=1&access=2")), Ok(None));
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("a%4"), b"a%4");
    }
}
