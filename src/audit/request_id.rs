//! Request ids for audit events: the caller's `x-request-id` when it is sane, else a
//! process-unique id (a random prefix and a counter; cheaper than a UUID per request).

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

use super::{AuditText, INLINE, Text};

/// The longest caller-supplied request id taken as it is.
const MAX_CALLER_ID_LEN: usize = 128;

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

    /// The caller's `x-request-id` (its first value, read by
    /// [`read_headers`](crate::extract::read_headers)) if it is 1 to 128 bytes of visible
    /// ASCII (so it cannot inject a log line), else a new id.
    pub(crate) fn for_request(&self, caller_id: Option<&HeaderValue>) -> AuditText {
        if let Some(id) = caller_id {
            let bytes = id.as_bytes();
            if !bytes.is_empty()
                && bytes.len() <= MAX_CALLER_ID_LEN
                && crate::extract::all_visible_ascii(bytes)
                && let Ok(id) = id.to_str()
            {
                return AuditText::copied(id);
            }
        }
        self.next()
    }

    /// A new process-unique id: the prefix, `-`, and the counter in lower-case hex, written
    /// straight into an inline `AuditText` (29 bytes at most): no allocation per request.
    pub(crate) fn next(&self) -> AuditText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        const _: () = assert!(PREFIX_LEN + 1 + 16 <= INLINE, "a generated id fits inline");
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; INLINE];
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
        AuditText(Text::Inline {
            len: (PREFIX_LEN + 1 + digits) as u8,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_sane_caller_ids_only() {
        let ids = RequestIds::new();
        let id = HeaderValue::from_static("abc-123");
        assert_eq!(ids.for_request(Some(&id)), "abc-123");
        let id = HeaderValue::from_static("has space");
        assert_ne!(ids.for_request(Some(&id)), "has space");
        let long = HeaderValue::try_from("x".repeat(MAX_CALLER_ID_LEN + 1)).unwrap();
        assert_ne!(ids.for_request(Some(&long)), long.to_str().unwrap());
        assert_ne!(ids.for_request(None), "");
        assert_ne!(ids.next(), ids.next());
    }

    #[test]
    fn ids_are_the_prefix_and_the_counter_in_hex() {
        let ids = RequestIds::new();
        for n in [0u64, 1, 15, 16, 255, 0xdead_beef, u64::MAX] {
            ids.counter.store(n, Ordering::Relaxed);
            let prefix = std::str::from_utf8(&ids.prefix).unwrap();
            assert_eq!(ids.next(), format!("{prefix}-{n:x}"));
        }
    }
}
