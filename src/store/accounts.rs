//! Users, API tokens and console sessions.

use super::{
    Result, SEQUENCES, SESSIONS, Store, StoreError, TOKEN_BY_HASH, TOKENS, USER_BY_EMAIL, USERS,
    all_json, decode, encode, get_json, next_seq,
};
use crate::model::{ApiToken, Id, Session, User};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

/// Inserts a user (assigning its id) inside the caller's transaction.
pub fn create_user_in(wtx: &WriteTransaction, mut user: User) -> Result<User> {
    let mut by_email = wtx.open_table(USER_BY_EMAIL)?;
    if by_email.get(user.email.as_str())?.is_some() {
        return Err(StoreError::DuplicateUser(user.email));
    }
    let mut seqs = wtx.open_table(SEQUENCES)?;
    user.id = next_seq(&mut seqs, "user")?;
    by_email.insert(user.email.as_str(), user.id)?;
    wtx.open_table(USERS)?
        .insert(user.id, encode(&user).as_slice())?;
    Ok(user)
}

/// Replaces a user inside the caller's transaction; returns the user as it was.
pub fn update_user_in(wtx: &WriteTransaction, user: &User) -> Result<User> {
    let mut users = wtx.open_table(USERS)?;
    let Some(old) = get_json::<User>(&users, "users", user.id)? else {
        return Err(StoreError::NotFound("user"));
    };
    if old.email != user.email {
        let mut by_email = wtx.open_table(USER_BY_EMAIL)?;
        if by_email.get(user.email.as_str())?.is_some() {
            return Err(StoreError::DuplicateUser(user.email.clone()));
        }
        by_email.remove(old.email.as_str())?;
        by_email.insert(user.email.as_str(), user.id)?;
    }
    users.insert(user.id, encode(user).as_slice())?;
    Ok(old)
}

/// Deletes a user together with their tokens and sessions; returns the user as it was.
pub fn delete_user_in(wtx: &WriteTransaction, id: Id) -> Result<Option<User>> {
    let mut users = wtx.open_table(USERS)?;
    let Some(old) = get_json::<User>(&users, "users", id)? else {
        return Ok(None);
    };
    users.remove(id)?;
    wtx.open_table(USER_BY_EMAIL)?.remove(old.email.as_str())?;
    let mut tokens = wtx.open_table(TOKENS)?;
    let mut by_hash = wtx.open_table(TOKEN_BY_HASH)?;
    let mine: Vec<ApiToken> = tokens
        .iter()?
        .filter_map(|r| r.ok())
        .filter_map(|(_, v)| decode::<ApiToken>("api_tokens", v.value()).ok())
        .filter(|t| t.user_id == id)
        .collect();
    for t in mine {
        tokens.remove(t.id)?;
        by_hash.remove(t.hash.as_slice())?;
    }
    let mut sessions = wtx.open_table(SESSIONS)?;
    let dead: Vec<Vec<u8>> = sessions
        .iter()?
        .filter_map(|r| r.ok())
        .filter(|(_, v)| decode::<Session>("sessions", v.value()).is_ok_and(|s| s.user_id == id))
        .map(|(k, _)| k.value().to_vec())
        .collect();
    for k in dead {
        sessions.remove(k.as_slice())?;
    }
    Ok(Some(old))
}

pub fn create_token_in(wtx: &WriteTransaction, mut token: ApiToken) -> Result<ApiToken> {
    let mut seqs = wtx.open_table(SEQUENCES)?;
    token.id = next_seq(&mut seqs, "token")?;
    wtx.open_table(TOKENS)?
        .insert(token.id, encode(&token).as_slice())?;
    wtx.open_table(TOKEN_BY_HASH)?
        .insert(token.hash.as_slice(), token.id)?;
    Ok(token)
}

/// Writes back a token's mutable fields (revoked, last used) inside the caller's transaction.
pub fn save_token_in(wtx: &WriteTransaction, token: &ApiToken) -> Result<()> {
    let mut t = wtx.open_table(TOKENS)?;
    if t.get(token.id)?.is_none() {
        return Err(StoreError::NotFound("token"));
    }
    t.insert(token.id, encode(token).as_slice())?;
    if token.revoked {
        wtx.open_table(TOKEN_BY_HASH)?
            .remove(token.hash.as_slice())?;
    }
    Ok(())
}

pub fn put_session_in(wtx: &WriteTransaction, hash: &[u8; 32], session: &Session) -> Result<()> {
    wtx.open_table(SESSIONS)?
        .insert(hash.as_slice(), encode(session).as_slice())?;
    Ok(())
}

/// Removes a session; returns it when it existed.
pub fn delete_session_in(wtx: &WriteTransaction, hash: &[u8; 32]) -> Result<Option<Session>> {
    let mut t = wtx.open_table(SESSIONS)?;
    let old = t.remove(hash.as_slice())?;
    match old {
        Some(v) => Ok(Some(decode("sessions", v.value())?)),
        None => Ok(None),
    }
}

impl Store {
    pub fn create_user(&self, user: User) -> Result<User> {
        self.write(|wtx| create_user_in(wtx, user))
    }

    pub fn update_user(&self, user: &User) -> Result<()> {
        self.write(|wtx| update_user_in(wtx, user).map(|_| ()))
    }

    /// Deletes a user together with their tokens and sessions.
    pub fn delete_user(&self, id: Id) -> Result<bool> {
        self.write(|wtx| delete_user_in(wtx, id).map(|u| u.is_some()))
    }

    pub fn user(&self, id: Id) -> Result<Option<User>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(USERS)?, "users", id)
    }

    pub fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let rtx = self.db().begin_read()?;
        let Some(id) = rtx
            .open_table(USER_BY_EMAIL)?
            .get(email)?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        get_json(&rtx.open_table(USERS)?, "users", id)
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let rtx = self.db().begin_read()?;
        all_json(&rtx.open_table(USERS)?, "users")
    }

    pub fn user_count(&self) -> Result<u64> {
        let rtx = self.db().begin_read()?;
        Ok(rtx.open_table(USERS)?.len()?)
    }

    pub fn create_token(&self, token: ApiToken) -> Result<ApiToken> {
        self.write(|wtx| create_token_in(wtx, token))
    }

    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>> {
        let rtx = self.db().begin_read()?;
        let Some(id) = rtx
            .open_table(TOKEN_BY_HASH)?
            .get(hash.as_slice())?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        get_json(&rtx.open_table(TOKENS)?, "api_tokens", id)
    }

    pub fn token(&self, id: Id) -> Result<Option<ApiToken>> {
        let rtx = self.db().begin_read()?;
        get_json(&rtx.open_table(TOKENS)?, "api_tokens", id)
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rtx = self.db().begin_read()?;
        all_json(&rtx.open_table(TOKENS)?, "api_tokens")
    }

    /// Writes back a token's mutable fields (revoked, last used).
    pub fn save_token(&self, token: &ApiToken) -> Result<()> {
        self.write(|wtx| save_token_in(wtx, token))
    }

    pub fn put_session(&self, hash: &[u8; 32], session: &Session) -> Result<()> {
        self.write(|wtx| put_session_in(wtx, hash, session))
    }

    pub fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>> {
        let rtx = self.db().begin_read()?;
        match rtx.open_table(SESSIONS)?.get(hash.as_slice())? {
            Some(v) => Ok(Some(decode("sessions", v.value())?)),
            None => Ok(None),
        }
    }

    pub fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        self.write(|wtx| delete_session_in(wtx, hash).map(|_| ()))
    }

    /// Removes sessions whose expiry has passed; returns how many.
    pub fn purge_sessions(&self, now: time::OffsetDateTime) -> Result<usize> {
        let wtx = self.begin_write()?;
        let n = {
            let mut t = wtx.open_table(SESSIONS)?;
            let dead: Vec<Vec<u8>> = t
                .iter()?
                .filter_map(|r| r.ok())
                .filter(|(_, v)| {
                    decode::<Session>("sessions", v.value()).map_or(true, |s| s.expires_at <= now)
                })
                .map(|(k, _)| k.value().to_vec())
                .collect();
            for k in &dead {
                t.remove(k.as_slice())?;
            }
            dead.len()
        };
        wtx.commit()?;
        Ok(n)
    }
}
