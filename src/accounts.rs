//! User accounts, password hashing (argon2id), console sessions, API tokens and login
//! throttling. Secrets (passwords, tokens, session ids) are never stored or logged in clear:
//! the store keeps argon2id hashes of passwords and SHA-256 hashes of random tokens.

use crate::audit::{Changes, Entry, record};
use crate::model::{ApiToken, AuditAction, Id, Role, Session, User, normalise_email, now};
use crate::policy::{Action, Actor, Denied};
use crate::store::{self, Store, StoreError};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::sync::Arc;
use time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many login attempts; wait a minute and try again")]
    Throttled,
    #[error("not logged in")]
    Unauthenticated,
    #[error("your session has expired; log in again")]
    SessionExpired,
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("a user with the email {0} already exists")]
    Duplicate(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(StoreError),
    #[error("password hashing failed")]
    Hash,
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateUser(e) => AccountError::Duplicate(e),
            StoreError::NotFound(w) => AccountError::NotFound(w),
            other => AccountError::Store(other),
        }
    }
}

pub type Result<T, E = AccountError> = std::result::Result<T, E>;

pub const MIN_PASSWORD: usize = 10;

pub fn hash_password(password: &str) -> Result<String> {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|_| AccountError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AccountError::Hash)
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub fn check_password_strength(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::Invalid {
            field: "password",
            message: format!("the password must be at least {MIN_PASSWORD} characters long"),
        });
    }
    if password.len() > 1024 {
        return Err(AccountError::Invalid {
            field: "password",
            message: "the password is longer than 1024 bytes".into(),
        });
    }
    Ok(())
}

/// SHA-256 of a bearer secret (API token or session id).
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A team name: trimmed, at most 40 characters, no control characters; empty is no team.
fn clean_team(t: &str) -> Result<Option<String>> {
    let t = t.trim();
    if t.chars().count() > 40 || t.chars().any(char::is_control) {
        return Err(AccountError::Invalid {
            field: "team",
            message: "a team name is at most 40 characters, without control characters".into(),
        });
    }
    Ok((!t.is_empty()).then(|| t.to_string()))
}

impl Accounts {
    /// The actor a user acts as, with the members of their team.
    fn actor_of(&self, u: &User) -> Result<Actor> {
        let team = match &u.team {
            Some(t) => self
                .store
                .users()?
                .into_iter()
                .filter(|m| m.team.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(t)))
                .map(|m| m.id)
                .collect(),
            None => Vec::new(),
        };
        Ok(Actor {
            user_id: u.id,
            email: u.email.clone(),
            role: u.role,
            ip: None,
            team,
        })
    }
}

pub struct Accounts {
    store: Arc<Store>,
    per_ip: DefaultKeyedRateLimiter<String>,
    per_account: DefaultKeyedRateLimiter<String>,
    session_ttl: Duration,
    /// A real argon2 hash to verify against when the email is unknown, so that timing does
    /// not tell which accounts exist.
    decoy_hash: String,
}

impl Accounts {
    pub fn new(
        store: Arc<Store>,
        attempts_per_minute: u32,
        session_ttl_hours: u64,
    ) -> Result<Accounts> {
        let per_min = NonZeroU32::new(attempts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let per_account =
            NonZeroU32::new((attempts_per_minute / 2).max(3)).unwrap_or(NonZeroU32::MIN);
        Ok(Accounts {
            store,
            per_ip: RateLimiter::keyed(Quota::per_minute(per_min)),
            per_account: RateLimiter::keyed(Quota::per_minute(per_account)),
            session_ttl: Duration::hours(session_ttl_hours.clamp(1, 24 * 30) as i64),
            decoy_hash: hash_password("decoy password for timing")?,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a user from the command line.
    pub fn create_user(&self, email: &str, role: Role, password: &str) -> Result<User> {
        self.create_user_by(&Actor::system(), email, role, password, None)
    }

    /// Creates a user; the audit trail names `actor` as its creator.
    pub fn create_user_by(
        &self,
        actor: &Actor,
        email: &str,
        role: Role,
        password: &str,
        team: Option<&str>,
    ) -> Result<User> {
        let team = team.map(clean_team).transpose()?.flatten();
        let email = normalise_email(email).map_err(|m| AccountError::Invalid {
            field: "email",
            message: m,
        })?;
        check_password_strength(password)?;
        let user = User {
            id: 0,
            email,
            role,
            password_hash: hash_password(password)?,
            created_at: now(),
            team,
        };
        Ok(self.store.write(|wtx| -> Result<User, StoreError> {
            let u = store::create_user_in(wtx, user)?;
            Entry::new(actor, AuditAction::Create, record("user", u.id))
                .changes(Changes::of(None, Some(&u)))
                .append(wtx)?;
            Ok(u)
        })?)
    }

    /// Checks a login, rate-limited per client address and per account. Returns the user, the
    /// session secret for the cookie and the session (with its CSRF token).
    pub fn login(&self, email: &str, password: &str, ip: &str) -> Result<(User, String, Session)> {
        let email_key = email.trim().to_lowercase();
        if self.per_ip.check_key(&ip.to_string()).is_err()
            || self.per_account.check_key(&email_key).is_err()
        {
            return Err(AccountError::Throttled);
        }
        let user = self.store.user_by_email(&email_key)?;
        let ok = match &user {
            Some(u) => verify_password(&u.password_hash, password),
            None => {
                verify_password(&self.decoy_hash, password);
                false
            }
        };
        let rec = user
            .as_ref()
            .map_or_else(|| "user:unknown".to_string(), |u| record("user", u.id));
        let Some(user) = user.filter(|_| ok) else {
            let entry = Entry::anonymous(Some(ip), AuditAction::LoginFailed, rec)
                .detail("wrong email or password");
            if let Err(e) = self.store.write(|wtx| entry.append(wtx)) {
                tracing::error!(error = %e, "could not record a failed login in the audit trail");
            }
            return Err(AccountError::InvalidCredentials);
        };
        let secret = random_secret("");
        let t = now();
        let session = Session {
            user_id: user.id,
            csrf_token: random_secret(""),
            created_at: t,
            expires_at: t + self.session_ttl,
        };
        let mut actor = self.actor_of(&user)?;
        actor.ip = Some(ip.to_string());
        self.store.write(|wtx| -> Result<(), StoreError> {
            store::put_session_in(wtx, &secret_hash(&secret), &session)?;
            Entry::new(&actor, AuditAction::Login, record("user", user.id)).append(wtx)?;
            Ok(())
        })?;
        Ok((user, secret, session))
    }

    pub fn session(&self, secret: &str) -> Result<(Actor, Session)> {
        let hash = secret_hash(secret);
        let session = self
            .store
            .session(&hash)?
            .ok_or(AccountError::Unauthenticated)?;
        if session.expires_at <= now() {
            self.store.delete_session(&hash)?;
            return Err(AccountError::SessionExpired);
        }
        let user = self
            .store
            .user(session.user_id)?
            .ok_or(AccountError::Unauthenticated)?;
        Ok((self.actor_of(&user)?, session))
    }

    pub fn logout(&self, actor: &Actor, secret: &str) -> Result<()> {
        Ok(self.store.write(|wtx| -> Result<(), StoreError> {
            if let Some(s) = store::delete_session_in(wtx, &secret_hash(secret))? {
                Entry::new(actor, AuditAction::Logout, record("user", s.user_id)).append(wtx)?;
            }
            Ok(())
        })?)
    }

    /// Resolves a bearer token to its user. Revoked and unknown tokens are rejected alike.
    pub fn bearer(&self, token: &str) -> Result<(Actor, ApiToken)> {
        let t = self
            .store
            .token_by_hash(&secret_hash(token))?
            .filter(|t| !t.revoked)
            .ok_or(AccountError::Unauthenticated)?;
        let user = self
            .store
            .user(t.user_id)?
            .ok_or(AccountError::Unauthenticated)?;
        // Record use at most once a minute to keep reads cheap.
        if t.last_used_at
            .is_none_or(|at| now() - at > Duration::minutes(1))
        {
            let mut touched = t.clone();
            touched.last_used_at = Some(now());
            if let Err(e) = self.store.save_token(&touched) {
                tracing::warn!(error = %e, "could not record token use");
            }
        }
        Ok((self.actor_of(&user)?, t))
    }

    /// Creates an API token for `user_id`. The plaintext is returned once and not kept.
    pub fn create_token(
        &self,
        actor: &Actor,
        user_id: Id,
        name: &str,
    ) -> Result<(ApiToken, String)> {
        if user_id != actor.user_id {
            actor.check_users(Action::Update)?;
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AccountError::Invalid {
                field: "name",
                message: "a token needs a name of 1 to 100 characters".into(),
            });
        }
        self.store
            .user(user_id)?
            .ok_or(AccountError::NotFound("user"))?;
        let secret = random_secret("ms_");
        let token = ApiToken {
            id: 0,
            user_id,
            name: name.to_string(),
            hash: secret_hash(&secret),
            created_at: now(),
            last_used_at: None,
            revoked: false,
        };
        let token = self.store.write(|wtx| -> Result<ApiToken, StoreError> {
            let t = store::create_token_in(wtx, token)?;
            Entry::new(actor, AuditAction::TokenCreate, record("token", t.id))
                .changes(Changes::of(None, Some(&t)))
                .append(wtx)?;
            Ok(t)
        })?;
        Ok((token, secret))
    }

    pub fn tokens(&self, actor: &Actor) -> Result<Vec<ApiToken>> {
        Ok(self
            .store
            .tokens()?
            .into_iter()
            .filter(|t| actor.check_token(t, Action::Read).is_ok())
            .collect())
    }

    pub fn revoke_token(&self, actor: &Actor, id: Id) -> Result<()> {
        let mut t = self
            .store
            .token(id)?
            .ok_or(AccountError::NotFound("token"))?;
        actor
            .check_token(&t, Action::Delete)
            .map_err(|_| AccountError::NotFound("token"))?;
        let before = t.clone();
        t.revoked = true;
        Ok(self.store.write(|wtx| -> Result<(), StoreError> {
            store::save_token_in(wtx, &t)?;
            Entry::new(actor, AuditAction::TokenRevoke, record("token", t.id))
                .changes(Changes::of(Some(&before), Some(&t)))
                .append(wtx)?;
            Ok(())
        })?)
    }

    pub fn users(&self, actor: &Actor) -> Result<Vec<User>> {
        actor.check_users(Action::Read)?;
        Ok(self.store.users()?)
    }

    /// Who records can be assigned to: every user, for any signed-in actor.
    pub fn directory(&self, actor: &Actor) -> Result<Vec<User>> {
        actor.check_directory()?;
        Ok(self.store.users()?)
    }

    pub fn admin_create_user(
        &self,
        actor: &Actor,
        email: &str,
        role: Role,
        password: &str,
        team: Option<&str>,
    ) -> Result<User> {
        actor.check_users(Action::Create)?;
        self.create_user_by(actor, email, role, password, team)
    }

    pub fn update_user(
        &self,
        actor: &Actor,
        id: Id,
        role: Option<Role>,
        password: Option<&str>,
        team: Option<&str>,
    ) -> Result<User> {
        actor.check_users(Action::Update)?;
        let mut u = self.store.user(id)?.ok_or(AccountError::NotFound("user"))?;
        let before = u.clone();
        if let Some(r) = role {
            if u.role == Role::Admin && r != Role::Admin && self.admin_count()? <= 1 {
                return Err(AccountError::Invalid {
                    field: "role",
                    message: "this is the last admin; make another user admin first".into(),
                });
            }
            u.role = r;
        }
        if let Some(p) = password {
            check_password_strength(p)?;
            u.password_hash = hash_password(p)?;
        }
        if let Some(t) = team {
            u.team = clean_team(t)?;
        }
        // A role or team change is a permission change; a new password is recorded without a
        // value.
        let action = if before.role != u.role || before.team != u.team {
            AuditAction::Permission
        } else {
            AuditAction::Update
        };
        let mut changes = Changes::of(Some(&before), Some(&u));
        if password.is_some() {
            changes = changes.secret_changed("password");
        }
        self.store.write(|wtx| -> Result<(), StoreError> {
            store::update_user_in(wtx, &u)?;
            Entry::new(actor, action, record("user", id))
                .changes(changes)
                .append(wtx)?;
            Ok(())
        })?;
        Ok(u)
    }

    pub fn delete_user(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.check_users(Action::Delete)?;
        let u = self.store.user(id)?.ok_or(AccountError::NotFound("user"))?;
        if u.role == Role::Admin && self.admin_count()? <= 1 {
            return Err(AccountError::Invalid {
                field: "id",
                message: "this is the last admin and cannot be deleted".into(),
            });
        }
        self.store.write(|wtx| -> Result<(), StoreError> {
            if let Some(old) = store::delete_user_in(wtx, id)? {
                Entry::new(actor, AuditAction::Delete, record("user", id))
                    .changes(Changes::of(Some(&old), None))
                    .append(wtx)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn admin_count(&self) -> Result<usize> {
        Ok(self
            .store
            .users()?
            .iter()
            .filter(|u| u.role == Role::Admin)
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn logins_are_throttled_and_sessions_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let acc = Accounts::new(store.clone(), 6, 1).unwrap();
        acc.create_user("boss@example.test", Role::Admin, "a long password")
            .unwrap();
        let (_, secret, session) = acc
            .login("Boss@Example.test", "a long password", "10.0.0.1")
            .unwrap();
        let (actor, _) = acc.session(&secret).unwrap();
        assert_eq!(actor.role, Role::Admin);
        assert!(!session.csrf_token.is_empty());
        // wrong passwords run into the per-account limit
        let mut throttled = false;
        for i in 0..10 {
            match acc.login("boss@example.test", "nope", &format!("10.0.1.{i}")) {
                Err(AccountError::Throttled) => throttled = true,
                Err(AccountError::InvalidCredentials) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(throttled);
        // expired sessions are refused and removed
        let mut s = session.clone();
        s.expires_at = now() - Duration::seconds(1);
        store.put_session(&secret_hash(&secret), &s).unwrap();
        assert!(matches!(
            acc.session(&secret),
            Err(AccountError::SessionExpired)
        ));
        assert!(matches!(
            acc.session(&secret),
            Err(AccountError::Unauthenticated)
        ));
    }

    #[test]
    fn tokens_are_stored_hashed_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let acc = Accounts::new(store.clone(), 10, 1).unwrap();
        let u = acc
            .create_user("api@example.test", Role::Marketing, "a long password")
            .unwrap();
        let actor = acc.actor_of(&u).unwrap();
        let (t, secret) = acc.create_token(&actor, u.id, "ci").unwrap();
        assert!(secret.starts_with("ms_"));
        assert_ne!(t.hash.to_vec(), secret.as_bytes().to_vec());
        assert_eq!(acc.bearer(&secret).unwrap().0.user_id, u.id);
        acc.revoke_token(&actor, t.id).unwrap();
        assert!(acc.bearer(&secret).is_err());
    }
}
