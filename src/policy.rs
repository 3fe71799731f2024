//! Row-level access: the one place that decides who may see and change what. Services call
//! it for every record they read or write, and hand its [`Scope`] to search and counts so that
//! lists, counts and exports are filtered the same way as single reads. Nothing here knows
//! about HTTP; a record the actor may not see is reported as not found.
//!
//! Roles: admins and managers see and change everything, except that a manager with a team
//! sees and assigns only the CRM records (leads, accounts, opportunities, activities) of the
//! team's members and the unassigned ones; sales people see what they own (and unassigned
//! leads); marketing sees contacts and leads but no amounts; viewers only read.

use crate::crm::model::Kind;
use crate::model::{ApiToken, Contact, Id, Role};
pub use crate::search::Scope;

/// Who is acting: a logged-in user or the user behind an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Id,
    pub email: String,
    pub role: Role,
    /// The client address the request came from (recorded in the audit trail).
    pub ip: Option<String>,
    /// The members of the user's team (the user included); empty without a team.
    pub team: Vec<Id>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "change",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The record is outside the actor's scope: callers answer as if it did not exist.
    #[error("not found")]
    NotVisible,
    #[error("the {role} role may not {verb} {what}")]
    Forbidden {
        role: Role,
        verb: &'static str,
        what: &'static str,
    },
}

fn forbid(actor: &Actor, action: Action, what: &'static str) -> Denied {
    Denied::Forbidden {
        role: actor.role,
        verb: action.verb(),
        what,
    }
}

/// Which CRM records of one kind an actor sees: all of them, those they own (and, for
/// leads, the unassigned ones), or those of their team and the unassigned ones. Lists,
/// counts and the pipeline board filter by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmScope {
    All,
    Owned { user: Id, unassigned: bool },
    Team { users: Vec<Id> },
}

impl CrmScope {
    pub fn allows(&self, owner: Option<Id>) -> bool {
        match self {
            CrmScope::All => true,
            CrmScope::Owned { user, unassigned } => {
                owner == Some(*user) || (*unassigned && owner.is_none())
            }
            CrmScope::Team { users } => owner.is_none_or(|o| users.contains(&o)),
        }
    }
}

impl Actor {
    /// The CRM records of `kind` this actor sees. Sales see what they own, plus unassigned
    /// leads; everybody else sees everything (marketing without opportunity amounts).
    pub fn crm_scope(&self, kind: Kind) -> CrmScope {
        match self.role {
            Role::Sales => CrmScope::Owned {
                user: self.user_id,
                unassigned: kind == Kind::Lead,
            },
            Role::Manager if !self.team.is_empty() => CrmScope::Team {
                users: self.team.clone(),
            },
            _ => CrmScope::All,
        }
    }

    /// What a role may do with a kind of CRM record at all: viewers only read, marketing
    /// does not change opportunities.
    pub fn check_crm_kind(&self, kind: Kind, action: Action) -> Result<(), Denied> {
        match (self.role, action) {
            (_, Action::Read) => Ok(()),
            (Role::Viewer, _) => Err(forbid(self, action, kind.plural())),
            (Role::Marketing, _) if kind == Kind::Opportunity => {
                Err(forbid(self, action, kind.plural()))
            }
            _ => Ok(()),
        }
    }

    /// Checks an action on an existing CRM record with this owner; a record outside the
    /// actor's scope is not visible.
    pub fn check_crm(&self, kind: Kind, owner: Option<Id>, action: Action) -> Result<(), Denied> {
        if !self.crm_scope(kind).allows(owner) {
            return Err(Denied::NotVisible);
        }
        self.check_crm_kind(kind, action)
    }

    /// Whether the actor may give a CRM record this owner: sales only themselves (or leave a
    /// lead unassigned); admins, managers and marketing anybody.
    pub fn check_assign_crm(&self, kind: Kind, owner: Option<Id>) -> Result<(), Denied> {
        match self.role {
            Role::Manager if !self.team.is_empty() => {
                if self.crm_scope(kind).allows(owner) {
                    Ok(())
                } else {
                    Err(forbid(self, Action::Update, "records outside the team"))
                }
            }
            Role::Admin | Role::Manager | Role::Marketing => Ok(()),
            Role::Sales if owner == Some(self.user_id) => Ok(()),
            Role::Sales if owner.is_none() && kind == Kind::Lead => Ok(()),
            _ => Err(forbid(self, Action::Update, "record ownership")),
        }
    }

    /// Opportunity amounts (and the pipeline's sums): everybody but marketing.
    pub fn sees_amounts(&self) -> bool {
        self.role != Role::Marketing
    }

    /// The pipeline's stage table: everybody reads it; admins and managers change it.
    pub fn check_stages(&self, action: Action) -> Result<(), Denied> {
        match (self.role, action) {
            (_, Action::Read) | (Role::Admin | Role::Manager, _) => Ok(()),
            _ => Err(forbid(self, action, "pipeline stages")),
        }
    }

    /// The operator at the command line (who has the data dir, and so everything).
    pub fn system() -> Actor {
        Actor {
            user_id: 0,
            email: "cli".into(),
            role: Role::Admin,
            ip: None,
            team: Vec::new(),
        }
    }

    /// The contacts this actor may see. Sales people see the contacts they own.
    pub fn contact_scope(&self) -> Scope {
        match self.role {
            Role::Admin | Role::Manager | Role::Marketing | Role::Viewer => Scope::All,
            Role::Sales => Scope::OwnedBy(self.user_id),
        }
    }

    fn in_scope(&self, c: &Contact) -> bool {
        match self.contact_scope() {
            Scope::All => true,
            Scope::OwnedBy(u) => c.owner_id == Some(u),
        }
    }

    /// Checks an action on an existing contact.
    pub fn check_contact(&self, c: &Contact, action: Action) -> Result<(), Denied> {
        if !self.in_scope(c) {
            return Err(Denied::NotVisible);
        }
        match (self.role, action) {
            (_, Action::Read) => Ok(()),
            (Role::Viewer, _) => Err(forbid(self, action, "contacts")),
            _ => Ok(()),
        }
    }

    pub fn check_create_contact(&self) -> Result<(), Denied> {
        match self.role {
            Role::Viewer => Err(forbid(self, Action::Create, "contacts")),
            _ => Ok(()),
        }
    }

    /// Who owns a contact this actor creates, when the request does not say.
    /// The command line acts as user 0, which owns nothing.
    pub fn default_owner(&self) -> Option<Id> {
        (self.user_id != 0).then_some(self.user_id)
    }

    /// Whether the actor may give a contact to another owner.
    pub fn check_assign_owner(&self, owner: Option<Id>) -> Result<(), Denied> {
        match self.role {
            Role::Admin | Role::Manager | Role::Marketing => Ok(()),
            Role::Sales if owner == Some(self.user_id) => Ok(()),
            _ => Err(forbid(self, Action::Update, "contact ownership")),
        }
    }

    /// Lists: everybody reads them; admins, managers and marketing change them.
    pub fn check_lists(&self, action: Action) -> Result<(), Denied> {
        match (self.role, action) {
            (_, Action::Read) => Ok(()),
            (Role::Admin | Role::Manager | Role::Marketing, _) => Ok(()),
            _ => Err(forbid(self, action, "lists")),
        }
    }

    /// Templates and campaigns: admins, managers and marketing write and send them; the
    /// others read them (reports included).
    pub fn check_campaigns(&self, action: Action) -> Result<(), Denied> {
        match (self.role, action) {
            (_, Action::Read) => Ok(()),
            (Role::Admin | Role::Manager | Role::Marketing, _) => Ok(()),
            _ => Err(forbid(self, action, "campaigns and templates")),
        }
    }

    /// Saved segments: everybody reads them (counts are scoped like every contact read);
    /// admins, managers and marketing create, change and delete them.
    pub fn check_segments(&self, action: Action) -> Result<(), Denied> {
        match (self.role, action) {
            (_, Action::Read) => Ok(()),
            (Role::Admin | Role::Manager | Role::Marketing, _) => Ok(()),
            _ => Err(forbid(self, action, "segments")),
        }
    }

    /// Bulk imports create and change contacts in numbers.
    pub fn check_import(&self) -> Result<(), Denied> {
        match self.role {
            Role::Admin | Role::Manager | Role::Marketing | Role::Sales => Ok(()),
            Role::Viewer => Err(forbid(self, Action::Create, "imports")),
        }
    }

    /// Sending mail (transactional API, test sends): everybody but viewers.
    pub fn check_send(&self) -> Result<(), Denied> {
        match self.role {
            Role::Viewer => Err(forbid(self, Action::Create, "messages")),
            _ => Ok(()),
        }
    }

    /// The delivery log and queue: everybody reads it except sales (who see only their own
    /// records elsewhere); it holds recipients of every campaign.
    pub fn check_delivery_log(&self) -> Result<(), Denied> {
        match self.role {
            Role::Admin | Role::Manager | Role::Marketing | Role::Viewer => Ok(()),
            Role::Sales => Err(forbid(self, Action::Read, "the delivery log")),
        }
    }

    /// A sent message's status and recipients: whoever may read the delivery log, and the
    /// user who submitted it.
    pub fn check_message(&self, submitted_by: Option<Id>) -> Result<(), Denied> {
        if submitted_by == Some(self.user_id) || self.check_delivery_log().is_ok() {
            Ok(())
        } else {
            Err(Denied::NotVisible)
        }
    }

    /// Erasure (GDPR Art. 17) is irreversible: admins and managers only (managers already
    /// administer the suppression list and read the audit trail).
    pub fn check_erase(&self) -> Result<(), Denied> {
        match self.role {
            Role::Admin | Role::Manager => Ok(()),
            _ => Err(forbid(
                self,
                Action::Delete,
                "contacts' personal data (erasure)",
            )),
        }
    }

    /// The suppression list: admins, managers and marketing read and change it; viewers
    /// read it; sales (who see only their own contacts) do not.
    pub fn check_suppressions(&self, action: Action) -> Result<(), Denied> {
        match (self.role, action) {
            (Role::Admin | Role::Manager | Role::Marketing, _) => Ok(()),
            (Role::Viewer, Action::Read) => Ok(()),
            _ => Err(forbid(self, action, "the suppression list")),
        }
    }

    /// Outgoing webhook subscriptions carry signing secrets and see every event: admins only.
    pub fn check_webhooks(&self, action: Action) -> Result<(), Denied> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(forbid(self, action, "webhook subscriptions")),
        }
    }

    /// Import jobs are visible to whoever started them, and to admins and managers.
    pub fn sees_import(&self, started_by: Option<Id>) -> bool {
        matches!(self.role, Role::Admin | Role::Manager) || started_by == Some(self.user_id)
    }

    /// User accounts are administered by admins only.
    pub fn check_users(&self, action: Action) -> Result<(), Denied> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(forbid(self, action, "user accounts")),
        }
    }

    /// The team directory (ids, addresses and roles, to assign records to): every signed-in
    /// user may read it; only admins manage accounts (`check_users`).
    pub fn check_directory(&self) -> Result<(), Denied> {
        Ok(())
    }

    /// Everybody manages their own API tokens; admins see and revoke everybody's.
    pub fn check_token(&self, token: &ApiToken, action: Action) -> Result<(), Denied> {
        if token.user_id == self.user_id || self.role == Role::Admin {
            Ok(())
        } else {
            let _ = action;
            Err(Denied::NotVisible)
        }
    }

    pub fn sees_all_tokens(&self) -> bool {
        self.role == Role::Admin
    }

    /// The audit trail (who changed what, with before and after values): admins and
    /// managers read and export it.
    pub fn check_audit(&self) -> Result<(), Denied> {
        match self.role {
            Role::Admin | Role::Manager => Ok(()),
            _ => Err(forbid(self, Action::Read, "the audit trail")),
        }
    }

    /// Verifying the chain and redacting entries: admins only.
    pub fn check_audit_verify(&self) -> Result<(), Denied> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(forbid(self, Action::Read, "the audit chain's verification")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::now;

    fn actor(role: Role, id: Id) -> Actor {
        Actor {
            user_id: id,
            email: format!("u{id}@example.test"),
            role,
            ip: None,
            team: Vec::new(),
        }
    }

    fn contact(owner: Option<Id>) -> Contact {
        Contact {
            id: 1,
            email: "a@example.test".into(),
            first_name: String::new(),
            last_name: String::new(),
            company: String::new(),
            phone: String::new(),
            tags: vec![],
            attributes: Default::default(),
            lists: vec![],
            consents: vec![],
            owner_id: owner,
            account_id: None,
            created_at: now(),
            updated_at: now(),
            seq: 0,
        }
    }

    #[test]
    fn a_manager_with_a_team_sees_and_assigns_within_it() {
        let mut m = actor(Role::Manager, 2);
        assert_eq!(m.crm_scope(Kind::Opportunity), CrmScope::All);
        m.team = vec![2, 3];
        for kind in [Kind::Lead, Kind::Account, Kind::Opportunity, Kind::Activity] {
            let scope = m.crm_scope(kind);
            assert!(scope.allows(Some(3)) && scope.allows(Some(2)) && scope.allows(None));
            assert!(!scope.allows(Some(5)));
            assert_eq!(
                m.check_crm(kind, Some(5), Action::Read),
                Err(Denied::NotVisible)
            );
            assert!(m.check_assign_crm(kind, Some(3)).is_ok());
            assert!(m.check_assign_crm(kind, None).is_ok());
            assert!(m.check_assign_crm(kind, Some(5)).is_err());
        }
        // teams narrow managers' CRM records only: contacts stay theirs to see
        assert_eq!(m.contact_scope(), Scope::All);
        // a team means nothing to other roles
        let mut admin = actor(Role::Admin, 1);
        admin.team = vec![1];
        assert_eq!(admin.crm_scope(Kind::Lead), CrmScope::All);
    }

    #[test]
    fn sales_see_only_their_own_contacts() {
        let s = actor(Role::Sales, 7);
        assert_eq!(s.contact_scope(), Scope::OwnedBy(7));
        assert!(s.check_contact(&contact(Some(7)), Action::Update).is_ok());
        assert_eq!(
            s.check_contact(&contact(Some(8)), Action::Read),
            Err(Denied::NotVisible)
        );
        assert_eq!(
            s.check_contact(&contact(None), Action::Read),
            Err(Denied::NotVisible)
        );
        assert!(s.check_assign_owner(Some(8)).is_err());
    }

    #[test]
    fn viewers_read_but_never_write() {
        let v = actor(Role::Viewer, 2);
        assert!(v.check_contact(&contact(Some(9)), Action::Read).is_ok());
        assert!(matches!(
            v.check_contact(&contact(Some(9)), Action::Update),
            Err(Denied::Forbidden { .. })
        ));
        assert!(v.check_create_contact().is_err());
        assert!(v.check_lists(Action::Create).is_err());
        assert!(v.check_import().is_err());
    }

    #[test]
    fn crm_access_by_role() {
        let sales = actor(Role::Sales, 7);
        assert!(sales.check_crm(Kind::Lead, None, Action::Update).is_ok());
        assert!(sales.check_crm(Kind::Lead, Some(7), Action::Delete).is_ok());
        assert_eq!(
            sales.check_crm(Kind::Lead, Some(8), Action::Read),
            Err(Denied::NotVisible)
        );
        assert_eq!(
            sales.check_crm(Kind::Account, None, Action::Read),
            Err(Denied::NotVisible)
        );
        assert!(sales.check_assign_crm(Kind::Lead, None).is_ok());
        assert!(sales.check_assign_crm(Kind::Account, None).is_err());
        assert!(sales.check_assign_crm(Kind::Lead, Some(8)).is_err());
        let m = actor(Role::Marketing, 3);
        assert!(
            m.check_crm(Kind::Opportunity, Some(9), Action::Read)
                .is_ok()
        );
        assert!(
            m.check_crm(Kind::Opportunity, Some(9), Action::Update)
                .is_err()
        );
        assert!(m.check_crm(Kind::Lead, Some(9), Action::Update).is_ok());
        assert!(!m.sees_amounts());
        let v = actor(Role::Viewer, 4);
        assert!(v.check_crm(Kind::Lead, Some(9), Action::Read).is_ok());
        assert!(v.check_crm_kind(Kind::Activity, Action::Create).is_err());
        for r in [Role::Admin, Role::Manager] {
            assert!(
                actor(r, 1)
                    .check_crm(Kind::Opportunity, Some(9), Action::Delete)
                    .is_ok()
            );
            assert!(actor(r, 1).check_stages(Action::Update).is_ok());
        }
    }

    #[test]
    fn admins_and_managers_read_the_audit_trail() {
        for r in Role::ALL {
            assert_eq!(
                actor(r, 1).check_audit().is_ok(),
                matches!(r, Role::Admin | Role::Manager)
            );
            assert_eq!(actor(r, 1).check_audit_verify().is_ok(), r == Role::Admin);
        }
    }

    #[test]
    fn only_admins_manage_users() {
        for r in Role::ALL {
            assert_eq!(
                actor(r, 1).check_users(Action::Read).is_ok(),
                r == Role::Admin
            );
        }
    }
}
