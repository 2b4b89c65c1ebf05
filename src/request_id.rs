//! Request ids for audit events: the caller's `x-request-id` when it is sane, else a
//! process-unique id (a random prefix and a counter; cheaper than a UUID per request).

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

/// The longest caller-supplied request id taken as it is.
const MAX_CALLER_ID_LEN: usize = 128;

/// The header, named once (a name given as a string is parsed on every lookup).
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The length of the random prefix: 6 bytes in hex.
const PREFIX_LEN: usize = 12;

/// Hands out request ids.
pub(crate) struct RequestIds {
    prefix: [u8; PREFIX_LEN],
    counter: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        let mut bytes = [0u8; 6];
        // A failing OS random source leaves the prefix zero: ids stay unique in the process.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(crate::secret::to_hex(&bytes).as_bytes());
        Self {
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    /// The caller's `x-request-id` if it is 1 to 128 bytes of visible ASCII (so it cannot
    /// inject a log line), else a new id.
    pub(crate) fn for_request<'h>(&self, headers: &'h HeaderMap) -> RequestId<'h> {
        if let Some(id) = headers.get(X_REQUEST_ID) {
            let bytes = id.as_bytes();
            if !bytes.is_empty()
                && bytes.len() <= MAX_CALLER_ID_LEN
                && crate::extract::all_visible_ascii(bytes)
                && let Ok(id) = id.to_str()
            {
                return RequestId::Caller(id);
            }
        }
        self.next()
    }

    /// A new process-unique id: the prefix, `-`, and the counter in lower-case hex, made on
    /// the stack (29 bytes at most): no allocation per request.
    pub(crate) fn next(&self) -> RequestId<'static> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; GENERATED_LEN];
        bytes[..PREFIX_LEN].copy_from_slice(&self.prefix);
        bytes[PREFIX_LEN] = b'-';
        let digits = ((64 - n.leading_zeros() as usize).div_ceil(4)).max(1);
        for (i, slot) in bytes[PREFIX_LEN + 1..PREFIX_LEN + 1 + digits]
            .iter_mut()
            .enumerate()
        {
            let shift = 4 * (digits - 1 - i);
            *slot = HEX[((n >> shift) & 0xf) as usize];
        }
        RequestId::Generated {
            bytes,
            len: PREFIX_LEN + 1 + digits,
        }
    }
}

/// The longest generated id: the prefix, `-`, 16 hex digits.
const GENERATED_LEN: usize = PREFIX_LEN + 1 + 16;

/// A request id: the caller's, borrowed from its request, or a generated one, held inline.
/// The audit event copies it (into an inline `AuditText`, for the generated ones).
pub(crate) enum RequestId<'h> {
    Caller(&'h str),
    Generated {
        bytes: [u8; GENERATED_LEN],
        len: usize,
    },
}

impl RequestId<'_> {
    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            RequestId::Caller(id) => id,
            // Hex digits and `-` are ASCII: the fallback is unreachable.
            RequestId::Generated { bytes, len } => {
                std::str::from_utf8(bytes.get(..*len).unwrap_or_default()).unwrap_or("-")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_sane_caller_ids_only() {
        let ids = RequestIds::new();
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(ids.for_request(&headers).as_str(), "abc-123");
        headers.insert("x-request-id", "has space".parse().unwrap());
        assert_ne!(ids.for_request(&headers).as_str(), "has space");
        assert_ne!(ids.next().as_str(), ids.next().as_str());
    }

    #[test]
    fn ids_are_the_prefix_and_the_counter_in_hex() {
        let ids = RequestIds::new();
        for n in [0u64, 1, 15, 16, 255, 0xdead_beef, u64::MAX] {
            ids.counter.store(n, Ordering::Relaxed);
            let prefix = std::str::from_utf8(&ids.prefix).unwrap();
            assert_eq!(ids.next().as_str(), format!("{prefix}-{n:x}"));
        }
    }
}
