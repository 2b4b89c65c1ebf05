//! The operations on service accounts, for admins: [`AccountAdmin`]. The admin API (module
//! `http`) is a JSON skin over these; Rust code (a CLI, a test, a bootstrap step) calls
//! them directly. Every change is an audit event naming the admin who made it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::registry::Registry;
use super::{MAX_TOKEN_LIFETIME, ServiceAccounts, new_token, new_token_id};
use crate::audit::{AuditEvent, AuditText, Auditor, EventKind};
use crate::error::AccountError;
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::restrictions::AccessRestrictions;
use crate::secret::SecretString;
use crate::store::{AccountToken, ServiceAccount, is_valid_account_name};

/// A service account to create ([`AccountAdmin::create_account`]).
#[derive(Clone, Debug)]
pub struct NewAccount {
    name: String,
    description: String,
    permissions: AccessRestrictions,
    enabled: bool,
}

impl NewAccount {
    /// An enabled account named `name` (`^[a-z0-9][a-z0-9_.-]{0,62}$`) whose tokens may do
    /// what `permissions` allows and nothing more.
    pub fn new(name: impl Into<String>, permissions: AccessRestrictions) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            permissions,
            enabled: true,
        }
    }

    /// What the account is for (at most 1,024 characters).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Creates it disabled (default: enabled).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
}

/// A token to create ([`AccountAdmin::create_token`]).
#[derive(Clone, Debug)]
pub struct NewToken {
    name: String,
    expires_in: Option<Duration>,
    permissions: Option<AccessRestrictions>,
}

impl NewToken {
    /// A token named `name` (unique within its account, same rule as account names), valid
    /// until revoked, with the account's permissions.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            expires_in: None,
            permissions: None,
        }
    }

    /// Refused from `lifetime` after creation on (1 s to 10 years).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }

    /// Narrower permissions than the account's (never wider: a token asking for more is
    /// refused).
    pub fn permissions(mut self, permissions: AccessRestrictions) -> Self {
        self.permissions = Some(permissions);
        self
    }
}

/// A token as listed: everything but the token itself (which is shown once, in
/// [`IssuedAccountToken`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The token's id (`sat_…`): how it is revoked.
    pub id: String,
    /// Its account.
    pub account: String,
    /// Its name within the account.
    pub name: String,
    /// Its own narrower permissions, if any (the account's apply otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<AccessRestrictions>,
    /// When it stops working, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last used, on any replica as of the last batch written, or on this
    /// replica whichever is later.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A new token and what is listed of it. The token is shown here only: the store keeps its
/// digest. A secret: `Debug` shows only its fingerprint.
#[derive(Clone, Debug)]
pub struct IssuedAccountToken {
    /// The token (`s2s_sa_…`).
    pub token: SecretString,
    /// What [`AccountAdmin::tokens`] lists of it.
    pub info: TokenInfo,
}

/// What changes in an account ([`AccountAdmin::update_account`]); `None` keeps the value.
#[derive(Clone, Debug, Default)]
pub struct AccountUpdate {
    /// A new description.
    pub description: Option<String>,
    /// New permissions. Tokens with narrower permissions of their own keep what both allow.
    pub permissions: Option<AccessRestrictions>,
}

/// The service-account operations of an [`Auth`](crate::Auth)
/// ([`Auth::service_accounts`](crate::Auth::service_accounts)). Cheap to clone.
///
/// Each takes the principal asking: a user's own credential (no actor), listed among the
/// admins (by subject, or by one of its ownership refs for a group). Anyone else is
/// refused with [`AccountError::NotAUser`] or [`AccountError::NotAdmin`].
#[derive(Clone)]
pub struct AccountAdmin {
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: Arc<ServiceAccounts>,
    pub(crate) auditor: Arc<Auditor>,
    pub(crate) service_id: Arc<str>,
}

impl std::fmt::Debug for AccountAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountAdmin")
            .field("config", &self.config)
            .field("registry", &self.registry)
            .finish()
    }
}

impl AccountAdmin {
    /// The operations with the store's own authority, for an operator's tool (the
    /// `s2s-auth accounts` command line, a bootstrap step): whoever can write the store
    /// could change the accounts anyway, so no service's admin list is consulted. The one
    /// admin is `operator` (e.g. `cli:alice`); act as it with
    /// `Principal::new(PrincipalType::User, operator, CredentialKind::User)`, and each
    /// change is an audit event naming it, sent to `sinks` (service id `s2s-auth-cli`).
    ///
    /// Changes reach the services sharing the store as the admin API's do: through the
    /// same store writes (PostgreSQL announces them with `NOTIFY`; other replicas read
    /// them within their staleness bound).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use s2s_auth::audit::MemoryAuditSink;
    /// use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions};
    /// use s2s_auth::service_account::{AccountAdmin, NewAccount};
    /// use s2s_auth::store::MemoryStore;
    /// use s2s_auth::{CredentialKind, Principal, PrincipalType};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let audit = Arc::new(MemoryAuditSink::default());
    /// let admin = AccountAdmin::operator(Arc::new(MemoryStore::new()), "cli:alice", vec![audit.clone()]);
    /// let alice = Principal::new(PrincipalType::User, "cli:alice", CredentialKind::User);
    /// let permissions = AccessRestrictions::new([AccessRestriction::plugin("catalog")])?;
    /// admin.create_account(&alice, NewAccount::new("ci-deployer", permissions)).await?;
    /// assert_eq!(audit.last().and_then(|e| e.subject).as_deref(), Some("cli:alice"));
    /// // Nobody else acts through it.
    /// let bob = Principal::new(PrincipalType::User, "user:default/bob", CredentialKind::User);
    /// assert!(admin.accounts(&bob, None).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn operator(
        store: Arc<dyn crate::store::Store>,
        operator: impl Into<String>,
        sinks: Vec<Arc<dyn crate::audit::AuditSink>>,
    ) -> Self {
        let config = ServiceAccounts::new([operator.into()]);
        Self {
            registry: Registry::new(store, config.staleness, config.last_used_interval),
            config: Arc::new(config),
            auditor: Arc::new(Auditor::new(sinks)),
            service_id: Arc::from("s2s-auth-cli"),
        }
    }

    /// Creates an account.
    pub async fn create_account(
        &self,
        by: &Principal,
        new: NewAccount,
    ) -> Result<ServiceAccount, AccountError> {
        self.allowed(by)?;
        check_name("account", &new.name)?;
        let now = unix_now();
        let account = ServiceAccount {
            name: new.name,
            description: new.description,
            permissions: new.permissions,
            enabled: new.enabled,
            created_at: now,
            updated_at: now,
        };
        self.registry.store.create_account(&account).await?;
        self.registry.refresh().await;
        self.audit(by, EventKind::AccountCreated, &account.name, |e| {
            e.message = format!("permissions {}", permissions_text(&account.permissions));
        });
        Ok(account)
    }

    /// Changes an account's description or permissions.
    pub async fn update_account(
        &self,
        by: &Principal,
        name: &str,
        update: AccountUpdate,
    ) -> Result<ServiceAccount, AccountError> {
        self.allowed(by)?;
        let mut account = self.get(name).await?;
        if let Some(description) = update.description {
            account.description = description;
        }
        let narrowed = update.permissions.is_some();
        if let Some(permissions) = update.permissions {
            account.permissions = permissions;
        }
        account.updated_at = unix_now().max(account.updated_at);
        self.registry.store.update_account(&account).await?;
        if narrowed {
            // New permissions may be narrower: the account's tokens are refused here until
            // the store is read back with them (at once, unless that read fails).
            self.registry.disabled_here(name);
        }
        self.registry.refresh().await;
        self.audit(by, EventKind::AccountUpdated, name, |e| {
            e.message = format!("permissions {}", permissions_text(&account.permissions));
        });
        Ok(account)
    }

    /// The account named `name`.
    pub async fn account(
        &self,
        by: &Principal,
        name: &str,
    ) -> Result<ServiceAccount, AccountError> {
        self.allowed(by)?;
        self.get(name).await
    }

    /// Every account (by name), or only the enabled (`Some(true)`) or disabled ones.
    pub async fn accounts(
        &self,
        by: &Principal,
        enabled: Option<bool>,
    ) -> Result<Vec<ServiceAccount>, AccountError> {
        self.allowed(by)?;
        let snapshot = self.registry.store.accounts_snapshot().await?;
        Ok(snapshot
            .accounts
            .into_iter()
            .filter(|a| enabled.is_none_or(|e| a.enabled == e))
            .collect())
    }

    /// Enables or disables an account. Disabled, every token of it is refused (401): here
    /// at once, on other replicas within the staleness bound.
    pub async fn set_enabled(
        &self,
        by: &Principal,
        name: &str,
        enabled: bool,
    ) -> Result<ServiceAccount, AccountError> {
        self.allowed(by)?;
        let mut account = self.get(name).await?;
        account.enabled = enabled;
        account.updated_at = unix_now().max(account.updated_at);
        if enabled {
            self.registry.store.update_account(&account).await?;
            self.registry.enabled_here(name);
        } else {
            // Refused here before the store is written: a disable that fails to reach the
            // store still holds on this replica (and the error says so).
            self.registry.disabled_here(name);
            self.registry.store.update_account(&account).await?;
            self.registry.disabled_here(name);
        }
        self.registry.refresh().await;
        let kind = if enabled {
            EventKind::AccountEnabled
        } else {
            EventKind::AccountDisabled
        };
        self.audit(by, kind, name, |_| {});
        Ok(account)
    }

    /// Deletes an account and every token of it.
    pub async fn delete_account(&self, by: &Principal, name: &str) -> Result<(), AccountError> {
        self.allowed(by)?;
        check_name("account", name)?;
        self.registry.disabled_here(name);
        if !self.registry.store.delete_account(name).await? {
            return Err(AccountError::NotFound(format!(
                "no service account named `{name}`"
            )));
        }
        self.registry.disabled_here(name);
        self.registry.refresh().await;
        self.audit(by, EventKind::AccountDeleted, name, |_| {});
        Ok(())
    }

    /// Creates a token of an enabled account. The token is in the answer and nowhere else.
    pub async fn create_token(
        &self,
        by: &Principal,
        account: &str,
        new: NewToken,
    ) -> Result<IssuedAccountToken, AccountError> {
        self.allowed(by)?;
        check_name("token", &new.name)?;
        let stored = self.get(account).await?;
        if !stored.enabled {
            return Err(AccountError::Conflict(format!(
                "service account `{account}` is disabled; enable it before adding tokens"
            )));
        }
        if let Some(own) = &new.permissions {
            own.within(&stored.permissions).map_err(|why| {
                AccountError::BadRequest(format!("token permissions exceed the account's: {why}"))
            })?;
        }
        let now = unix_now();
        let expires_at = match new.expires_in {
            None => None,
            Some(d) if d < Duration::from_secs(1) || d > MAX_TOKEN_LIFETIME => {
                return Err(AccountError::BadRequest(format!(
                    "expiry must be 1 to {} seconds from now",
                    MAX_TOKEN_LIFETIME.as_secs()
                )));
            }
            Some(d) => Some(now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
        };
        let unavailable = || AccountError::Unavailable("the random source failed".into());
        let (token, digest) = new_token().ok_or_else(unavailable)?;
        let record = AccountToken {
            id: new_token_id().ok_or_else(unavailable)?,
            account: account.to_owned(),
            name: new.name,
            digest,
            permissions: new.permissions,
            expires_at,
            created_at: now,
            last_used_at: None,
        };
        self.registry.store.create_account_token(&record).await?;
        self.registry.refresh().await;
        let info = info(record, None);
        self.audit(by, EventKind::AccountTokenIssued, account, |e| {
            e.message = format!("token `{}` ({})", info.name, info.id);
            e.expires_at = info.expires_at;
            e.token_fingerprint = Some(token.fingerprint());
        });
        Ok(IssuedAccountToken { token, info })
    }

    /// The tokens of an account (never the tokens themselves), by name.
    pub async fn tokens(
        &self,
        by: &Principal,
        account: &str,
    ) -> Result<Vec<TokenInfo>, AccountError> {
        self.allowed(by)?;
        self.get(account).await?;
        let here = self.registry.last_used_here();
        Ok(self
            .registry
            .store
            .account_tokens(account)
            .await?
            .into_iter()
            .map(|t| {
                let seen = here.get(&t.id).copied();
                info(t, seen)
            })
            .collect())
    }

    /// Revokes one token: refused here at once, on other replicas within the staleness
    /// bound. The account's other tokens go on working.
    pub async fn revoke_token(
        &self,
        by: &Principal,
        account: &str,
        id: &str,
    ) -> Result<(), AccountError> {
        self.allowed(by)?;
        check_name("account", account)?;
        let not_found =
            || AccountError::NotFound(format!("account `{account}` has no token `{id}`"));
        if !crate::store::is_valid_token_id(id) {
            return Err(not_found());
        }
        self.registry.revoked_here(id);
        if !self
            .registry
            .store
            .delete_account_token(account, id)
            .await?
        {
            return Err(not_found());
        }
        self.registry.revoked_here(id);
        self.registry.refresh().await;
        self.audit(by, EventKind::AccountTokenRevoked, account, |e| {
            e.message = format!("token {id}");
        });
        Ok(())
    }

    /// Reads the store now, so this replica's copy (and the
    /// [access table](crate::Auth::access_table)'s per-account columns) holds what it holds.
    /// The copy is otherwise read in the background; this needs no admin (it changes
    /// nothing).
    pub async fn reload(&self) -> Result<(), AccountError> {
        self.registry.start();
        Ok(self.registry.sync().await?)
    }

    /// Writes the last-used times noted here since the last write, now (the background
    /// task does it every `last_used_interval`; call this before a planned shutdown).
    pub async fn write_last_used(&self) -> Result<(), AccountError> {
        Ok(self.registry.write_last_used().await?)
    }

    /// Who may call these: a user's own credential, listed among the admins.
    fn allowed(&self, by: &Principal) -> Result<(), AccountError> {
        if by.credential() != CredentialKind::User || by.actor().is_some() {
            return Err(AccountError::NotAUser);
        }
        let listed = self.config.admins.iter().any(|admin| {
            admin == by.subject() || by.ownership_entity_refs().iter().any(|r| r == admin)
        });
        if !listed {
            return Err(AccountError::NotAdmin);
        }
        self.registry.start();
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<ServiceAccount, AccountError> {
        check_name("account", name)?;
        self.registry
            .store
            .account(name)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no service account named `{name}`")))
    }

    fn audit(
        &self,
        by: &Principal,
        kind: EventKind,
        account: &str,
        fill: impl FnOnce(&mut AuditEvent),
    ) {
        let reason = match kind {
            EventKind::AccountCreated => "account_created",
            EventKind::AccountUpdated => "account_updated",
            EventKind::AccountEnabled => "account_enabled",
            EventKind::AccountDisabled => "account_disabled",
            EventKind::AccountDeleted => "account_deleted",
            EventKind::AccountTokenIssued => "account_token_issued",
            _ => "account_token_revoked",
        };
        self.auditor
            .record_lifecycle(kind, &self.service_id, reason, |e| {
                e.subject = Some(AuditText::from(Arc::clone(by.shared_subject())));
                e.principal_type = Some(PrincipalType::User);
                e.credential = Some(by.credential());
                e.target = Some(format!("service-account:{account}"));
                fill(e);
            });
    }
}

/// Names are checked before the store is asked, so a bad one is a 400 and never a lookup.
fn check_name(what: &str, name: &str) -> Result<(), AccountError> {
    if is_valid_account_name(name) {
        Ok(())
    } else {
        Err(AccountError::BadRequest(format!(
            "{what} name must match ^[a-z0-9][a-z0-9_.-]{{0,62}}$ (lower-case letters, digits, `_`, `.`, `-`; no `:` or `/`)"
        )))
    }
}

fn info(t: AccountToken, seen_here: Option<i64>) -> TokenInfo {
    let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).ok();
    let last = match (t.last_used_at, seen_here) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    TokenInfo {
        id: t.id,
        account: t.account,
        name: t.name,
        permissions: t.permissions,
        expires_at: t.expires_at.and_then(at),
        created_at: at(t.created_at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        last_used_at: last.and_then(at),
    }
}

fn permissions_text(p: &AccessRestrictions) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
