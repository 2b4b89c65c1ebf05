//! Request ids for audit events: the caller's `x-request-id` when it is sane, else a
//! process-unique id (a random prefix and a counter; cheaper than a UUID per request).

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

/// The longest caller-supplied request id taken as it is.
const MAX_CALLER_ID_LEN: usize = 128;

/// The header, named once (a name given as a string is parsed on every lookup).
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Hands out request ids.
pub(crate) struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        let mut bytes = [0u8; 6];
        // A failing OS random source leaves the prefix zero: ids stay unique in the process.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        Self {
            prefix: crate::secret::to_hex(&bytes),
            counter: AtomicU64::new(0),
        }
    }

    /// The caller's `x-request-id` if it is 1 to 128 bytes of visible ASCII (so it cannot
    /// inject a log line), else a new id.
    pub(crate) fn for_request(&self, headers: &HeaderMap) -> String {
        if let Some(id) = headers.get(X_REQUEST_ID) {
            let bytes = id.as_bytes();
            if !bytes.is_empty()
                && bytes.len() <= MAX_CALLER_ID_LEN
                && crate::extract::all_visible_ascii(bytes)
                && let Ok(id) = id.to_str()
            {
                return id.to_owned();
            }
        }
        self.next()
    }

    /// A new process-unique id: `<prefix>-<counter in hex>` (written by hand: `format!`
    /// was a tenth of a cached request's instructions).
    pub(crate) fn next(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut digits = [0u8; 16];
        let mut len = 0;
        let mut rest = n;
        loop {
            digits[15 - len] = HEX[(rest & 0xf) as usize];
            len += 1;
            rest >>= 4;
            if rest == 0 {
                break;
            }
        }
        let mut id = String::with_capacity(self.prefix.len() + 1 + len);
        id.push_str(&self.prefix);
        id.push('-');
        for &d in &digits[16 - len..] {
            id.push(char::from(d));
        }
        id
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
        assert_eq!(ids.for_request(&headers), "abc-123");
        headers.insert("x-request-id", "has space".parse().unwrap());
        assert_ne!(ids.for_request(&headers), "has space");
        assert_ne!(ids.next(), ids.next());
    }

    #[test]
    fn ids_are_the_prefix_and_the_counter_in_hex() {
        let ids = RequestIds::new();
        for n in [0u64, 1, 15, 16, 255, 0xdead_beef, u64::MAX] {
            ids.counter.store(n, Ordering::Relaxed);
            assert_eq!(ids.next(), format!("{}-{n:x}", ids.prefix));
        }
    }
}
