//! Compiling a parsed filter against the row cache, and evaluating it. Compilation resolves
//! every string to interned ids and turns text tests on interned columns (names, companies,
//! domains, tags, attribute values) into bitsets over the interner, so the per-row work is a
//! few integer compares and bit lookups.

use super::cache::{AttrVal, Cache, Interner, Row, status_code};
use super::facts::Facts;
use super::lang::{AttrTest, CmpOp, Expr, Literal, Pred, TextField, TextTest, TimeField};
use crate::model::{EngagementKind, Id};
use crate::search::Scope;

/// A set of interned ids.
#[derive(Debug, Clone)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    fn from_fn(n: usize, f: impl Fn(usize) -> bool) -> Bits {
        let mut v = vec![0u64; n.div_ceil(64)];
        for i in 0..n {
            if f(i) {
                v[i / 64] |= 1 << (i % 64);
            }
        }
        Bits(v)
    }

    fn from_ids(ids: impl IntoIterator<Item = u32>) -> Bits {
        let mut v: Vec<u64> = Vec::new();
        for id in ids {
            let i = id as usize;
            if v.len() <= i / 64 {
                v.resize(i / 64 + 1, 0);
            }
            v[i / 64] |= 1 << (i % 64);
        }
        Bits(v)
    }

    #[inline]
    fn has(&self, id: u32) -> bool {
        let i = id as usize;
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Col {
    Domain,
    First,
    Last,
    Company,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum TimeCol {
    Created,
    Updated,
    Sent,
    Open,
    Click,
}

/// A text test on bytes that are not interned (email, phone).
#[derive(Debug, Clone)]
pub(crate) enum Bytes {
    AnyOf(Vec<Vec<u8>>),
    Contains(Vec<u8>),
    StartsWith(Vec<u8>),
}

impl Bytes {
    fn test(&self, s: &[u8]) -> bool {
        match self {
            Bytes::AnyOf(v) => v.iter().any(|x| x == s),
            Bytes::Contains(x) => x.is_empty() || s.windows(x.len()).any(|w| w == x.as_slice()),
            Bytes::StartsWith(x) => s.starts_with(x),
        }
    }
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Col(Col, Bits),
    /// Local part and interned domain.
    EmailIs(Vec<u8>, u32),
    Email(Bytes),
    Phone(Bytes),
    PhoneExists,
    Owner(Vec<u32>),
    HasOwner,
    /// `from <= t < to`.
    Time(TimeCol, i64, i64),
    Tags(Bits),
    HasTags,
    /// Memberships of these lists with a status in the mask (bit per status code).
    Lists(Vec<u32>, u8),
    Attr(u32, Bits),
    Consent(u32),
    /// One of these contacts (ascending): a CRM test resolved before compiling.
    Ids(Vec<Id>),
}

fn text_bits(strs: &Interner, t: &TextTest) -> Node {
    let all = strs.strs();
    let bits = match t {
        TextTest::AnyOf(v) => Bits::from_ids(v.iter().filter_map(|s| strs.get(s))),
        TextTest::Contains(x) => Bits::from_fn(all.len(), |i| all[i].contains(x.as_str())),
        TextTest::StartsWith(x) => Bits::from_fn(all.len(), |i| all[i].starts_with(x.as_str())),
        TextTest::Exists => Bits::from_fn(all.len(), |i| !all[i].is_empty()),
    };
    Node::Tags(bits)
}

fn bytes(t: &TextTest) -> Option<Bytes> {
    Some(match t {
        TextTest::AnyOf(v) => Bytes::AnyOf(v.iter().map(|s| s.as_bytes().to_vec()).collect()),
        TextTest::Contains(x) => Bytes::Contains(x.as_bytes().to_vec()),
        TextTest::StartsWith(x) => Bytes::StartsWith(x.as_bytes().to_vec()),
        TextTest::Exists => return None,
    })
}

pub(crate) fn cmp<T: PartialOrd + ?Sized>(a: &T, op: CmpOp, b: &T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }
}

/// Whether the stored attribute value `v` satisfies `v op lit`. Numbers written as text
/// compare as numbers with numbers; text compares case-insensitively.
fn attr_cmp(v: &AttrVal, op: CmpOp, lit: &Literal) -> bool {
    match (v, lit) {
        (AttrVal::Num(n), Literal::Num(x)) => cmp(n, op, x),
        (AttrVal::Str(s), Literal::Num(x)) => s.trim().parse::<f64>().is_ok_and(|n| cmp(&n, op, x)),
        (AttrVal::Num(n), Literal::Str(x)) => x.trim().parse::<f64>().is_ok_and(|x| cmp(n, op, &x)),
        (AttrVal::Str(s), Literal::Str(x)) => cmp(&**s, op, x.to_lowercase().as_str()),
        (AttrVal::Bool(b), Literal::Bool(x)) => op == CmpOp::Eq && b == x,
        (AttrVal::Str(s), Literal::Bool(x)) => op == CmpOp::Eq && *s.as_ref() == *x.to_string(),
        (AttrVal::Bool(b), Literal::Str(x)) => {
            op == CmpOp::Eq && x.eq_ignore_ascii_case(&b.to_string())
        }
        _ => false,
    }
}

fn attr_text(v: &AttrVal) -> Option<String> {
    match v {
        AttrVal::Str(s) => Some(s.to_string()),
        AttrVal::Num(n) => Some(n.to_string()),
        AttrVal::Bool(_) => None,
    }
}

/// Folds constants out of an `and` (`absorbing` false) or an `or` (`absorbing` true): the
/// absorbing constant decides the whole, the other one drops out.
fn combine(items: Vec<Node>, absorbing: bool, make: fn(Vec<Node>) -> Node) -> Node {
    let mut out = Vec::with_capacity(items.len());
    for n in items {
        match n {
            Node::Const(b) if b == absorbing => return Node::Const(absorbing),
            Node::Const(_) => {}
            n => out.push(n),
        }
    }
    match out.len() {
        0 => Node::Const(!absorbing),
        1 => out.remove(0),
        _ => make(out),
    }
}

fn u32_ids(ids: &[Id]) -> Vec<u32> {
    ids.iter().filter_map(|i| u32::try_from(*i).ok()).collect()
}

/// Compiles `e` against the cache's interners and the CRM `facts` loaded for it; `now` is the
/// unix time `*_within` counts from.
pub(crate) fn compile(e: &Expr, c: &Cache, facts: &Facts, now: i64) -> Node {
    match e {
        Expr::All => Node::Const(true),
        Expr::And(v) => combine(
            v.iter().map(|x| compile(x, c, facts, now)).collect(),
            false,
            Node::And,
        ),
        Expr::Or(v) => combine(
            v.iter().map(|x| compile(x, c, facts, now)).collect(),
            true,
            Node::Or,
        ),
        Expr::Not(x) => match compile(x, c, facts, now) {
            Node::Const(b) => Node::Const(!b),
            n => Node::Not(Box::new(n)),
        },
        Expr::Pred(p) if p.is_crm() => match facts.ids(p) {
            [] => Node::Const(false),
            ids => Node::Ids(ids.to_vec()),
        },
        Expr::Pred(p) => pred(p, c, now),
    }
}

fn pred(p: &Pred, c: &Cache, now: i64) -> Node {
    let col = |col: Col, strs: &Interner, t: &TextTest| match text_bits(strs, t) {
        Node::Tags(b) => Node::Col(col, b),
        n => n,
    };
    match p {
        Pred::Text(f, t) => match f {
            TextField::EmailDomain => col(Col::Domain, &c.domains, t),
            TextField::FirstName => col(Col::First, &c.firsts, t),
            TextField::LastName => col(Col::Last, &c.lasts, t),
            TextField::Company => col(Col::Company, &c.companies, t),
            TextField::Phone => match bytes(t) {
                Some(b) => Node::Phone(b),
                None => Node::PhoneExists,
            },
            TextField::Email => match t {
                TextTest::Exists => Node::Const(true),
                TextTest::AnyOf(v) => combine(
                    v.iter()
                        .map(|e| match e.rsplit_once('@') {
                            Some((local, domain)) => match c.domains.get(domain) {
                                Some(d) => Node::EmailIs(local.as_bytes().to_vec(), d),
                                None => Node::Const(false),
                            },
                            None => Node::Const(false),
                        })
                        .collect(),
                    true,
                    Node::Or,
                ),
                other => bytes(other).map_or(Node::Const(true), Node::Email),
            },
        },
        Pred::Owner(ids) => Node::Owner(u32_ids(ids)),
        Pred::HasOwner => Node::HasOwner,
        Pred::Time { field, from, to } => Node::Time(
            match field {
                TimeField::Created => TimeCol::Created,
                TimeField::Updated => TimeCol::Updated,
            },
            from.unwrap_or(i64::MIN),
            to.unwrap_or(i64::MAX),
        ),
        Pred::TimeWithin(field, d) => Node::Time(
            match field {
                TimeField::Created => TimeCol::Created,
                TimeField::Updated => TimeCol::Updated,
            },
            now - d,
            i64::MAX,
        ),
        Pred::Tag(TextTest::Exists) => Node::HasTags,
        Pred::Tag(t) => text_bits(&c.tags, t),
        Pred::List { lists, statuses } => {
            let mask = statuses.iter().fold(0u8, |m, s| m | 1 << status_code(*s));
            Node::Lists(u32_ids(lists), mask)
        }
        Pred::Attr { key, test } => {
            let Some(k) = c.keys.get(&key.to_lowercase()) else {
                return Node::Const(false);
            };
            let vals = c.values.vals();
            let bits = match test {
                AttrTest::Exists => Bits::from_fn(vals.len(), |_| true),
                AttrTest::Cmp(op, lit) => {
                    Bits::from_fn(vals.len(), |i| attr_cmp(&vals[i], *op, lit))
                }
                AttrTest::AnyOf(lits) => Bits::from_fn(vals.len(), |i| {
                    lits.iter().any(|l| attr_cmp(&vals[i], CmpOp::Eq, l))
                }),
                AttrTest::Contains(x) => Bits::from_fn(vals.len(), |i| {
                    attr_text(&vals[i]).is_some_and(|s| s.contains(x.as_str()))
                }),
                AttrTest::StartsWith(x) => Bits::from_fn(vals.len(), |i| {
                    attr_text(&vals[i]).is_some_and(|s| s.starts_with(x.as_str()))
                }),
            };
            Node::Attr(k, bits)
        }
        Pred::Consent(purpose) => match c.purposes.get(purpose) {
            Some(id) => Node::Consent(id),
            None => Node::Const(false),
        },
        Pred::EngagedWithin(kind, d) => {
            Node::Time(engagement_col(*kind), (now - d).max(1), i64::MAX)
        }
        // never: the time is 0
        Pred::Never(kind) => Node::Time(engagement_col(*kind), 0, 1),
        // resolved by `compile` from the facts
        Pred::CertExpiring(_) | Pred::Certified(_) | Pred::LeadScore(..) => Node::Const(false),
    }
}

fn engagement_col(k: EngagementKind) -> TimeCol {
    match k {
        EngagementKind::Sent => TimeCol::Sent,
        EngagementKind::Open => TimeCol::Open,
        EngagementKind::Click => TimeCol::Click,
    }
}

impl Node {
    pub(crate) fn eval(&self, c: &Cache, r: &Row) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::And(v) => v.iter().all(|n| n.eval(c, r)),
            Node::Or(v) => v.iter().any(|n| n.eval(c, r)),
            Node::Not(n) => !n.eval(c, r),
            Node::Col(col, bits) => bits.has(match col {
                Col::Domain => r.domain,
                Col::First => r.first,
                Col::Last => r.last,
                Col::Company => r.company,
            }),
            Node::EmailIs(local, d) => r.domain == *d && c.local(r) == local.as_slice(),
            Node::Email(t) => {
                let domain = c
                    .domains
                    .strs()
                    .get(r.domain as usize)
                    .map(|s| s.as_bytes())
                    .unwrap_or_default();
                let mut full = Vec::with_capacity(usize::from(r.local_len) + 1 + domain.len());
                full.extend_from_slice(c.local(r));
                full.push(b'@');
                full.extend_from_slice(domain);
                t.test(&full)
            }
            Node::Phone(t) => t.test(c.phone(r)),
            Node::PhoneExists => r.phone_len > 0,
            Node::Owner(ids) => r.owner != 0 && ids.contains(&r.owner),
            Node::HasOwner => r.owner != 0,
            Node::Time(col, from, to) => {
                let t = i64::from(match col {
                    TimeCol::Created => r.created,
                    TimeCol::Updated => r.updated,
                    TimeCol::Sent => r.last_sent,
                    TimeCol::Open => r.last_open,
                    TimeCol::Click => r.last_click,
                });
                *from <= t && t < *to
            }
            Node::Tags(bits) => c.tags_of(r).iter().any(|t| bits.has(*t)),
            Node::HasTags => r.n_tags > 0,
            Node::Lists(lists, mask) => c
                .lists_of(r)
                .iter()
                .any(|m| mask & (1 << (m & 3)) != 0 && lists.contains(&(m >> 2))),
            Node::Attr(key, bits) => c
                .attrs_of(r)
                .chunks_exact(2)
                .any(|kv| kv[0] == *key && bits.has(kv[1])),
            Node::Consent(p) => c.consents_of(r).contains(p),
            Node::Ids(ids) => ids.binary_search(&r.id).is_ok(),
        }
    }
}

fn in_scope(r: &Row, scope: Scope) -> bool {
    match scope {
        Scope::All => true,
        Scope::OwnedBy(u) => u32::try_from(u).is_ok_and(|u| u != 0 && r.owner == u),
    }
}

/// Counts the matching rows in scope, and collects the ids of the newest `first` of them.
pub(crate) fn count(c: &Cache, n: &Node, scope: Scope, first: usize) -> (u64, Vec<Id>) {
    let mut total = 0u64;
    let mut ids = Vec::with_capacity(first.min(1000));
    for r in c.rows.iter().rev() {
        if !r.dead && in_scope(r, scope) && n.eval(c, r) {
            total += 1;
            if ids.len() < first {
                ids.push(r.id);
            }
        }
    }
    (total, ids)
}

/// Every matching contact id, ascending.
pub(crate) fn members(c: &Cache, n: &Node) -> Vec<Id> {
    c.rows
        .iter()
        .filter(|r| !r.dead && n.eval(c, r))
        .map(|r| r.id)
        .collect()
}
