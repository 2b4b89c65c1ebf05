//! What the store keeps of service accounts (see the `service_account` module): the
//! accounts, and their tokens as SHA-256 digests, never the tokens themselves. The checks
//! here run in every backend before a write, so all of them accept the same records.

use std::fmt;

use crate::restrictions::AccessRestrictions;

use super::StoreError;

/// A service account: a named machine principal with the permissions it may use.
///
/// Stored under its [`name`](Self::name); a token of it verifies as
/// `service-account:<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `^[a-z0-9][a-z0-9_.-]{0,62}$` (so never `:` or `/`): checked by
    /// [`is_valid_account_name`].
    pub name: String,
    /// What the account is for: at most 1,024 characters, no control characters but
    /// newline and tab.
    pub description: String,
    /// Everything any of its tokens may do (the `accessRestrictions` shape): a token may be
    /// narrower, never wider.
    pub permissions: AccessRestrictions,
    /// A disabled account's tokens are all refused (401), and it gets no new ones.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: the last create, update, enable or disable.
    pub updated_at: i64,
}

/// The SHA-256 of a service-account token: what the store keeps instead of the token.
/// Shown (`Debug`, [`to_hex`](Self::to_hex)) in hex; it cannot be turned back into the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// Lower-case hex, as the SQL backends store it.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// From 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<Self> {
        crate::secret::parse_sha256_hex(hex).map(TokenDigest)
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.to_hex())
    }
}

/// One token of a service account (never the token itself: its digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountToken {
    /// The token's public id (`sat_` and 24 hex digits): how it is listed and revoked.
    pub id: String,
    /// The account it belongs to.
    pub account: String,
    /// A name unique within the account (`ci-2026-12`), same rule as account names.
    pub name: String,
    /// The SHA-256 of the token.
    pub digest: TokenDigest,
    /// Narrower permissions than the account's, or `None` for the account's own.
    pub permissions: Option<AccessRestrictions>,
    /// Unix seconds; refused from then on. `None`: until revoked.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: when it was last used, as of the last batch written
    /// ([`Store::touch_account_tokens`](super::Store::touch_account_tokens)).
    pub last_used_at: Option<i64>,
}

/// Every account and every token, as one consistent read
/// ([`Store::accounts_snapshot`](super::Store::accounts_snapshot)): what each replica
/// verifies tokens against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountsSnapshot {
    /// Ordered by name.
    pub accounts: Vec<ServiceAccount>,
    /// Ordered by account, then token name.
    pub tokens: Vec<AccountToken>,
}

/// The most accounts, and separately the most tokens, a snapshot holds. A store holding
/// more answers [`StoreError::Unavailable`] rather than a partial snapshot (a replica that
/// read part of it could miss a disable).
pub const MAX_ACCOUNTS_LISTED: usize = 100_000;

/// The longest account description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// Whether `name` is a valid service-account (or account-token) name:
/// `^[a-z0-9][a-z0-9_.-]{0,62}$`. No `:` (subjects stay unambiguous) and no `/` (names are
/// path segments of the admin API).
///
/// ```
/// use s2s_auth::store::is_valid_account_name;
///
/// assert!(is_valid_account_name("ci-deployer"));
/// assert!(is_valid_account_name("etl.nightly_2"));
/// assert!(!is_valid_account_name("CI"));
/// assert!(!is_valid_account_name("-ci"));
/// assert!(!is_valid_account_name("team:ci"));
/// assert!(!is_valid_account_name("a/b"));
/// assert!(!is_valid_account_name(&"a".repeat(64)));
/// ```
pub fn is_valid_account_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && bytes.len() <= 63
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The checks before an account is written.
pub(crate) fn validate_account(account: &ServiceAccount) -> Result<(), StoreError> {
    if !is_valid_account_name(&account.name) {
        return Err(StoreError::Invalid(format!(
            "account name must match ^[a-z0-9][a-z0-9_.-]{{0,62}}$ (got {:?})",
            account.name
        )));
    }
    validate_description(&account.description)
}

/// A description: at most [`MAX_DESCRIPTION_CHARS`], no control characters but `\n`, `\t`.
pub(crate) fn validate_description(description: &str) -> Result<(), StoreError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS
        || description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(StoreError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// The checks before a token is written.
pub(crate) fn validate_account_token(token: &AccountToken) -> Result<(), StoreError> {
    if !is_valid_token_id(&token.id) {
        return Err(StoreError::Invalid(
            "token id must be `sat_` and 24 lower-case hex digits".into(),
        ));
    }
    if !is_valid_account_name(&token.account) {
        return Err(StoreError::Invalid(
            "token account must be a valid account name".into(),
        ));
    }
    if !is_valid_account_name(&token.name) {
        return Err(StoreError::Invalid(format!(
            "token name must match ^[a-z0-9][a-z0-9_.-]{{0,62}}$ (got {:?})",
            token.name
        )));
    }
    Ok(())
}

/// `sat_` and 24 lower-case hex digits.
pub(crate) fn is_valid_token_id(id: &str) -> bool {
    id.strip_prefix("sat_").is_some_and(|hex| {
        hex.len() == 24
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A snapshot within the bounds, or the refusal to give a partial one. Backends read at
/// most [`MAX_ACCOUNTS_LISTED`]` + 1` rows of each table and pass them here.
pub(crate) fn bounded_snapshot(snapshot: AccountsSnapshot) -> Result<AccountsSnapshot, StoreError> {
    if snapshot.accounts.len() > MAX_ACCOUNTS_LISTED || snapshot.tokens.len() > MAX_ACCOUNTS_LISTED
    {
        return Err(StoreError::Unavailable(
            "too many service accounts or tokens".into(),
        ));
    }
    Ok(snapshot)
}

/// Permissions as the SQL backends store them: the `accessRestrictions` JSON.
pub(crate) fn permissions_to_json(permissions: &AccessRestrictions) -> String {
    serde_json::to_string(permissions).unwrap_or_else(|_| String::from("[]"))
}

/// Permissions read back from their stored JSON.
pub(crate) fn permissions_from_json(text: &str) -> Result<AccessRestrictions, StoreError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("stored permissions are not JSON: {e}")))?;
    AccessRestrictions::from_json(&value, "permissions")
        .map_err(|e| StoreError::Invalid(format!("stored permissions: {e}")))
}

/// The refusal of a second account under a stored name.
pub(crate) fn account_exists(name: &str) -> StoreError {
    StoreError::Conflict(format!("a service account named `{name}` already exists"))
}

/// The refusal of a write about an account that is not stored.
pub(crate) fn no_such_account(name: &str) -> StoreError {
    StoreError::NotFound(format!("no service account named `{name}`"))
}

/// The refusal of a token whose id, name (within its account) or digest is stored already.
pub(crate) fn token_exists(token: &AccountToken) -> StoreError {
    StoreError::Conflict(format!(
        "account `{}` already has a token named `{}` (or this token id or digest is taken)",
        token.account, token.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restrictions::AccessRestriction;

    fn account(name: &str) -> ServiceAccount {
        ServiceAccount {
            name: name.into(),
            description: String::new(),
            permissions: AccessRestrictions::new([AccessRestriction::plugin("catalog")]).unwrap(),
            enabled: true,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn names_descriptions_and_ids() {
        assert!(validate_account(&account("ci-deployer")).is_ok());
        for bad in ["", "Ci", "_ci", "ci:x", "ci/x", "ci x", "ci\n"] {
            assert!(validate_account(&account(bad)).is_err(), "{bad:?}");
        }
        assert!(is_valid_account_name(&"a".repeat(63)));
        let mut a = account("ci");
        a.description = "line one\nline two\ttabbed".into();
        assert!(validate_account(&a).is_ok());
        a.description = "bell\x07".into();
        assert!(validate_account(&a).is_err());
        a.description = "é".repeat(MAX_DESCRIPTION_CHARS);
        assert!(validate_account(&a).is_ok());
        a.description.push('x');
        assert!(validate_account(&a).is_err());
        assert!(is_valid_token_id("sat_0123456789abcdef01234567"));
        assert!(!is_valid_token_id("sat_0123456789ABCDEF01234567"));
        assert!(!is_valid_token_id("sat_0123"));
        assert!(!is_valid_token_id("tok_0123456789abcdef01234567"));
    }

    #[test]
    fn digests_print_as_hex_and_round_trip() {
        let d = TokenDigest([0xab; 32]);
        assert_eq!(d.to_hex(), "ab".repeat(32));
        assert_eq!(TokenDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(TokenDigest::from_hex("zz"), None);
    }

    #[test]
    fn permissions_round_trip_through_json() {
        let p = AccessRestrictions::new([AccessRestriction::plugin("catalog")
            .permissions(["catalog.entity.read"])
            .actions([crate::restrictions::Action::Read])])
        .unwrap();
        assert_eq!(permissions_from_json(&permissions_to_json(&p)).unwrap(), p);
        assert!(permissions_from_json("[]").is_err());
        assert!(permissions_from_json("{").is_err());
    }
}
