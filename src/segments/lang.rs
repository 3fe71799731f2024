//! The segment filter language: lexer, parser and typed AST. See the module documentation of
//! [`crate::segments`] for the language itself. Parsing is pure (no store, no clock); every
//! error is a [`FilterError`] located at a line and column of the input.

use crate::model::{EngagementKind, Id, MembershipStatus};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 10_000;
/// Deepest nesting of parentheses and `not`s.
const MAX_DEPTH: usize = 64;
/// Longest duration accepted (100 years), in seconds.
const MAX_DURATION: i64 = 100 * 366 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterErrorKind {
    Syntax,
    UnknownField,
    UnknownFunction,
    Type,
    Duration,
    Date,
    TooLong,
}

/// A filter that does not parse, with where: 1-based line and column (in characters), the
/// 0-based character offset, and the line with a caret under the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct FilterError {
    pub kind: FilterErrorKind,
    pub message: String,
    pub offset: usize,
    pub line: usize,
    pub column: usize,
    pub excerpt: String,
}

impl FilterError {
    fn at(src: &str, byte: usize, kind: FilterErrorKind, message: impl Into<String>) -> Self {
        let byte = byte.min(src.len());
        let byte = (0..=byte)
            .rev()
            .find(|b| src.is_char_boundary(*b))
            .unwrap_or(0);
        let before = &src[..byte];
        let offset = before.chars().count();
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = before.matches('\n').count() + 1;
        let column = src[line_start..byte].chars().count() + 1;
        let line_end = src[line_start..]
            .find('\n')
            .map(|i| line_start + i)
            .unwrap_or(src.len());
        let text: String = src[line_start..line_end]
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let excerpt = format!("{text}\n{}^", " ".repeat(column - 1));
        FilterError {
            kind,
            message: message.into(),
            offset,
            line,
            column,
            excerpt,
        }
    }
}

// ---------------------------------------------------------------------------------------
// AST

/// The contact text fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Email,
    EmailDomain,
    FirstName,
    LastName,
    Company,
    Phone,
}

/// A test on a text value (case-insensitive; values are lower-cased here).
#[derive(Debug, Clone, PartialEq)]
pub enum TextTest {
    /// Equal to one of these.
    AnyOf(Vec<String>),
    Contains(String),
    StartsWith(String),
    /// Not empty.
    Exists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    Created,
    Updated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// An attribute literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttrTest {
    /// `=`, `<`, `<=`, `>`, `>=` (`!=` is parsed as `not =`).
    Cmp(CmpOp, Literal),
    AnyOf(Vec<Literal>),
    Contains(String),
    StartsWith(String),
    Exists,
}

/// One test of a contact.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    Text(TextField, TextTest),
    /// Owned by one of these users.
    Owner(Vec<Id>),
    HasOwner,
    /// The time is in `[from, to)` (unix seconds; `None`: unbounded).
    Time {
        field: TimeField,
        from: Option<i64>,
        to: Option<i64>,
    },
    /// Created/updated within the last this many seconds (resolved against the clock when
    /// the filter is evaluated).
    TimeWithin(TimeField, i64),
    /// Has one of these tags (lower-cased).
    Tag(TextTest),
    /// A membership of one of `lists` with one of `statuses`.
    List {
        lists: Vec<Id>,
        statuses: Vec<MembershipStatus>,
    },
    Attr {
        key: String,
        test: AttrTest,
    },
    /// An active (latest record not withdrawn) consent for this purpose (lower-cased).
    Consent(String),
    /// The last such event is within this many seconds.
    EngagedWithin(EngagementKind, i64),
    Never(EngagementKind),
    /// CRM: holds a certification that expires between now and this many seconds from now.
    CertExpiring(i64),
    /// CRM: holds an unexpired certification whose name contains this (lower-cased).
    Certified(String),
    /// CRM: the highest score of the leads converted into the contact or sharing its address.
    LeadScore(CmpOp, f64),
}

impl Pred {
    /// Whether the test reads CRM records rather than the contact row.
    pub fn is_crm(&self) -> bool {
        matches!(
            self,
            Pred::CertExpiring(_) | Pred::Certified(_) | Pred::LeadScore(..)
        )
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The empty filter: every contact.
    All,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Pred(Pred),
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num {
        value: f64,
        int: Option<u64>,
    },
    /// Seconds.
    Duration(i64),
    /// `[start, end)` in unix seconds: a whole day for `YYYY-MM-DD`, one second otherwise.
    Date(i64, i64),
    Op(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Str(s) => format!("the text \"{s}\""),
            Tok::Num { value, .. } => format!("the number {value}"),
            Tok::Duration(_) => "a duration".into(),
            Tok::Date(..) => "a date".into(),
            Tok::Op(o) => format!("'{}'", o.symbol()),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Comma => "','".into(),
            Tok::Eof => "the end of the filter".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offset of the first character.
    at: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, FilterError> {
    let err = |at: usize, kind, msg: String| FilterError::at(src, at, kind, msg);
    let b: Vec<(usize, char)> = src.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let (at, c) = b[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = b.get(i + 1).map(|x| x.1);
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = simple {
            out.push(Token { tok: t, at });
            i += 1;
            continue;
        }
        let op = match (c, next) {
            ('=', Some('=')) => Some((CmpOp::Eq, 2)),
            ('!', Some('=')) | ('<', Some('>')) => Some((CmpOp::Ne, 2)),
            ('<', Some('=')) => Some((CmpOp::Le, 2)),
            ('>', Some('=')) => Some((CmpOp::Ge, 2)),
            ('=', _) => Some((CmpOp::Eq, 1)),
            ('<', _) => Some((CmpOp::Lt, 1)),
            ('>', _) => Some((CmpOp::Gt, 1)),
            _ => None,
        };
        if let Some((op, len)) = op {
            out.push(Token {
                tok: Tok::Op(op),
                at,
            });
            i += len;
            continue;
        }
        match (c, next) {
            ('!', _) => {
                return Err(err(
                    at,
                    FilterErrorKind::Syntax,
                    "'!' is not an operator here: write 'not' to negate, or '!=' for \"not equal\""
                        .into(),
                ));
            }
            ('&' | '|', _) => {
                let word = if c == '&' { "and" } else { "or" };
                return Err(err(
                    at,
                    FilterErrorKind::Syntax,
                    format!("'{c}' is not an operator: write '{word}'"),
                ));
            }
            _ => {}
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            let mut j = i + 1;
            let mut closed = false;
            while j < b.len() {
                let ch = b[j].1;
                if ch == c {
                    closed = true;
                    j += 1;
                    break;
                }
                if ch == '\\' {
                    match b.get(j + 1).map(|x| x.1) {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(e @ ('\\' | '"' | '\'')) => s.push(e),
                        _ => {
                            return Err(err(
                                b[j].0,
                                FilterErrorKind::Syntax,
                                "unknown escape in text: use \\\" \\' \\\\ \\n or \\t".into(),
                            ));
                        }
                    }
                    j += 2;
                    continue;
                }
                s.push(ch);
                j += 1;
            }
            if !closed {
                return Err(err(
                    at,
                    FilterErrorKind::Syntax,
                    "this quote is never closed".into(),
                ));
            }
            out.push(Token {
                tok: Tok::Str(s),
                at,
            });
            i = j;
            continue;
        }
        let starts_value =
            c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit()));
        if starts_value {
            let mut j = i + 1;
            while j < b.len()
                && (b[j].1.is_ascii_alphanumeric() || matches!(b[j].1, '.' | ':' | '-' | '+'))
            {
                j += 1;
            }
            let end = b.get(j).map(|x| x.0).unwrap_or(src.len());
            let word = &src[at..end];
            out.push(Token {
                tok: value_word(src, at, word)?,
                at,
            });
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i + 1;
            while j < b.len() && (b[j].1.is_alphanumeric() || matches!(b[j].1, '_' | '.' | '-')) {
                j += 1;
            }
            let end = b.get(j).map(|x| x.0).unwrap_or(src.len());
            out.push(Token {
                tok: Tok::Ident(src[at..end].to_string()),
                at,
            });
            i = j;
            continue;
        }
        return Err(err(
            at,
            FilterErrorKind::Syntax,
            format!("unexpected character '{}'", c.escape_default()),
        ));
    }
    out.push(Token {
        tok: Tok::Eof,
        at: src.len(),
    });
    Ok(out)
}

/// A word that starts with a digit (or `-digit`): a number, a duration or a date.
fn value_word(src: &str, at: usize, w: &str) -> Result<Tok, FilterError> {
    let digits = w.trim_start_matches('-');
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        if let Ok(v) = w.parse::<f64>()
            && v.is_finite()
        {
            let int = (!w.starts_with('-') && !w.contains('.'))
                .then(|| w.parse::<u64>().ok())
                .flatten();
            return Ok(Tok::Num { value: v, int });
        }
        return Err(FilterError::at(
            src,
            at,
            FilterErrorKind::Syntax,
            format!("'{w}' is not a number"),
        ));
    }
    let num_end = w.bytes().take_while(|c| c.is_ascii_digit()).count();
    if num_end > 0 && num_end < w.len() && w[num_end..].bytes().all(|c| c.is_ascii_alphabetic()) {
        let unit = &w[num_end..];
        let secs = match unit {
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => {
                return Err(FilterError::at(
                    src,
                    at + num_end,
                    FilterErrorKind::Duration,
                    format!(
                        "unknown duration unit '{unit}' in '{w}': use h (hours), d (days), w (weeks) or y (years), e.g. 90d"
                    ),
                ));
            }
        };
        let n: i64 = w[..num_end].parse().unwrap_or(i64::MAX);
        return match n.checked_mul(secs) {
            Some(s) if s <= MAX_DURATION => Ok(Tok::Duration(s)),
            _ => Err(FilterError::at(
                src,
                at,
                FilterErrorKind::Duration,
                format!("the duration '{w}' is longer than 100 years"),
            )),
        };
    }
    let looks_like_date = w.len() >= 10
        && w.as_bytes()[4] == b'-'
        && w.as_bytes()[7] == b'-'
        && w[..4].bytes().all(|c| c.is_ascii_digit());
    if looks_like_date {
        let bad = || {
            FilterError::at(
                src,
                at,
                FilterErrorKind::Date,
                format!(
                    "'{w}' is not a valid date: use YYYY-MM-DD (UTC) or an RFC 3339 time such as 2026-01-01T09:00:00Z"
                ),
            )
        };
        if w.len() == 10 {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            let d = time::Date::parse(w, &fmt).map_err(|_| bad())?;
            let start = d.midnight().assume_utc().unix_timestamp();
            return Ok(Tok::Date(start, start + 86_400));
        }
        let t = OffsetDateTime::parse(w, &Rfc3339).map_err(|_| bad())?;
        let s = t.unix_timestamp();
        return Ok(Tok::Date(s, s + 1));
    }
    Err(FilterError::at(
        src,
        at,
        FilterErrorKind::Syntax,
        format!("'{w}' is not a number, a duration (90d) or a date (2026-01-01)"),
    ))
}

// ---------------------------------------------------------------------------------------
// Names

/// The fields, as written before an operator.
pub const FIELDS: &[&str] = &[
    "email",
    "email_domain",
    "first_name",
    "last_name",
    "company",
    "phone",
    "owner",
    "created_at",
    "updated_at",
    "tag",
    "list",
    "attributes.KEY",
    "lead_score",
];

/// The functions, as written with their argument.
pub const FUNCTIONS: &[&str] = &[
    "created_within(30d)",
    "updated_within(30d)",
    "opened_within(90d)",
    "clicked_within(30d)",
    "sent_within(7d)",
    "never_opened",
    "never_clicked",
    "never_sent",
    "subscribed(LIST)",
    "unsubscribed(LIST)",
    "list_status(LIST)",
    "consent(\"PURPOSE\")",
    "certification_expires_within(60d)",
    "certified(\"NAME\")",
];

fn bare(name: &str) -> &str {
    name.split(['(', '.']).next().unwrap_or(name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known field or function name, if one is close enough to be a typo.
fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    let (d, best) = FIELDS
        .iter()
        .chain(FUNCTIONS.iter())
        .map(|cand| (edit_distance(&lower, bare(cand)), *cand))
        .min_by_key(|(d, _)| *d)?;
    (d <= (lower.chars().count() / 3).max(2)).then_some(best)
}

fn unknown(src: &str, at: usize, name: &str, function: bool) -> FilterError {
    let (kind, what) = if function {
        (FilterErrorKind::UnknownFunction, "function")
    } else {
        (FilterErrorKind::UnknownField, "field")
    };
    let hint = match suggest(name) {
        Some(s) => format!(" (did you mean {s}?)"),
        None => format!(
            " (fields: {}; functions: {})",
            FIELDS.join(", "),
            FUNCTIONS.join(", ")
        ),
    };
    FilterError::at(src, at, kind, format!("unknown {what} '{name}'{hint}"))
}

// ---------------------------------------------------------------------------------------
// Parser

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn is_kw(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "contains",
    "starts_with",
    "exists",
    "true",
    "false",
];

/// Parses a filter into its AST. Never panics; bad input is a located [`FilterError`].
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    if src.len() > MAX_FILTER_LEN {
        return Err(FilterError::at(
            src,
            MAX_FILTER_LEN,
            FilterErrorKind::TooLong,
            format!("the filter is longer than {MAX_FILTER_LEN} characters"),
        ));
    }
    let toks = lex(src)?;
    if toks.len() == 1 {
        return Ok(Expr::All);
    }
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        let msg = if t.tok == Tok::RParen {
            "this ')' closes nothing".to_string()
        } else {
            format!(
                "expected 'and', 'or' or the end of the filter, found {}",
                t.tok.describe()
            )
        };
        return Err(p.err_here(FilterErrorKind::Syntax, msg));
    }
    Ok(e)
}

impl<'s> Parser<'s> {
    fn peek(&self) -> &Token {
        // lex always ends with Eof, and pos never moves past it
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn err_at(&self, at: usize, kind: FilterErrorKind, msg: impl Into<String>) -> FilterError {
        FilterError::at(self.src, at, kind, msg)
    }

    fn err_here(&self, kind: FilterErrorKind, msg: impl Into<String>) -> FilterError {
        self.err_at(self.peek().at, kind, msg)
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, FilterError> {
        if self.peek().tok == want {
            Ok(self.bump())
        } else {
            Err(self.err_here(
                FilterErrorKind::Syntax,
                format!("expected {what}, found {}", self.peek().tok.describe()),
            ))
        }
    }

    /// `next (kw next)*`, for `or` over `and` and `and` over `unary`.
    fn chain(
        &mut self,
        kw: &str,
        next: fn(&mut Self) -> Result<Expr, FilterError>,
        make: fn(Vec<Expr>) -> Expr,
    ) -> Result<Expr, FilterError> {
        let mut items = vec![next(self)?];
        while is_kw(&self.peek().tok, kw) {
            self.bump();
            items.push(next(self)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            make(items)
        })
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        self.chain("or", Self::and, Expr::Or)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        self.chain("and", Self::unary, Expr::And)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_here(
                FilterErrorKind::Syntax,
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        let r = if is_kw(&self.peek().tok, "not") {
            self.bump();
            self.unary().map(|e| Expr::Not(Box::new(e)))
        } else if self.peek().tok == Tok::LParen {
            let open = self.bump();
            let e = self.or()?;
            if self.peek().tok != Tok::RParen {
                let msg = if self.peek().tok == Tok::Eof {
                    "this '(' is never closed".to_string()
                } else {
                    format!(
                        "expected ')' or 'and'/'or', found {}",
                        self.peek().tok.describe()
                    )
                };
                let at = if self.peek().tok == Tok::Eof {
                    open.at
                } else {
                    self.peek().at
                };
                return Err(self.err_at(at, FilterErrorKind::Syntax, msg));
            }
            self.bump();
            Ok(e)
        } else {
            self.predicate()
        };
        self.depth -= 1;
        r
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        let t = self.bump();
        let name = match &t.tok {
            Tok::Ident(s) if !KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k)) => s.clone(),
            other => {
                return Err(self.err_at(
                    t.at,
                    FilterErrorKind::Syntax,
                    format!(
                        "expected a field (such as tag or attributes.country) or a function (such as opened_within(90d)), found {}",
                        other.describe()
                    ),
                ));
            }
        };
        let lower = name.to_lowercase();
        if self.peek().tok == Tok::LParen {
            return self.function(&lower, &name, t.at);
        }
        // functions without arguments may be written bare
        match lower.as_str() {
            "never_opened" => return Ok(Expr::Pred(Pred::Never(EngagementKind::Open))),
            "never_clicked" => return Ok(Expr::Pred(Pred::Never(EngagementKind::Click))),
            "never_sent" => return Ok(Expr::Pred(Pred::Never(EngagementKind::Sent))),
            _ => {}
        }
        if let Some(f) = FUNCTIONS.iter().find(|f| bare(f) == lower) {
            return Err(self.err_at(
                t.at,
                FilterErrorKind::Syntax,
                format!("{lower} needs an argument in parentheses, e.g. {f}"),
            ));
        }
        self.field(&lower, &name, t.at)
    }

    /// Reads the operator and value(s) after a field.
    fn condition(&mut self, field: &str) -> Result<(Cond, usize), FilterError> {
        let t = self.bump();
        let at = t.at;
        let cond = match t.tok {
            Tok::Op(op) => Cond::Cmp(op, self.value()?),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("in") => Cond::In(self.list()?),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("not") && is_kw(&self.peek().tok, "in") => {
                self.bump();
                Cond::NotIn(self.list()?)
            }
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("contains") => {
                Cond::Contains(self.value()?)
            }
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("starts_with") => {
                Cond::StartsWith(self.value()?)
            }
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("exists") => Cond::Exists,
            other => {
                return Err(self.err_at(
                    at,
                    FilterErrorKind::Syntax,
                    format!(
                        "expected an operator after {field} (=, !=, <, <=, >, >=, in, not in, contains, starts_with or exists), found {}",
                        other.describe()
                    ),
                ));
            }
        };
        Ok((cond, at))
    }

    fn value(&mut self) -> Result<Value, FilterError> {
        let t = self.bump();
        let v = match t.tok {
            Tok::Str(s) => V::Str(s),
            Tok::Num { value, int } => V::Num(value, int),
            Tok::Duration(d) => V::Duration(d),
            Tok::Date(a, b) => V::Date(a, b),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("true") => V::Bool(true),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("false") => V::Bool(false),
            Tok::Ident(ref s) => {
                return Err(self.err_at(
                    t.at,
                    FilterErrorKind::Syntax,
                    format!("expected a value, found '{s}' (put text in quotes: \"{s}\")"),
                ));
            }
            other => {
                return Err(self.err_at(
                    t.at,
                    FilterErrorKind::Syntax,
                    format!("expected a value, found {}", other.describe()),
                ));
            }
        };
        Ok(Value { v, at: t.at })
    }

    /// Values separated by commas up to `close` (the opening token already read).
    fn values_until(&mut self, close: Tok) -> Result<Vec<Value>, FilterError> {
        let mut out = Vec::new();
        if self.peek().tok == close {
            self.bump();
            return Ok(out);
        }
        loop {
            out.push(self.value()?);
            let t = &self.peek().tok;
            if *t == Tok::Comma {
                self.bump();
            } else if *t == close {
                self.bump();
                return Ok(out);
            } else {
                return Err(self.err_here(
                    FilterErrorKind::Syntax,
                    format!(
                        "expected ',' or {}, found {}",
                        close.describe(),
                        t.describe()
                    ),
                ));
            }
        }
    }

    fn list(&mut self) -> Result<Vec<Value>, FilterError> {
        self.expect(Tok::LBracket, "'[' to start a list of values")?;
        if self.peek().tok == Tok::RBracket {
            return Err(self.err_here(FilterErrorKind::Syntax, "the list of values is empty"));
        }
        self.values_until(Tok::RBracket)
    }

    fn type_err(&self, at: usize, msg: impl Into<String>) -> FilterError {
        self.err_at(at, FilterErrorKind::Type, msg)
    }

    fn text(&self, v: Value, field: &str) -> Result<String, FilterError> {
        match v.v {
            V::Str(s) => Ok(s.to_lowercase()),
            _ => Err(self.type_err(
                v.at,
                format!(
                    "{field} compares with text in quotes, e.g. {field} = \"value\"; found {}",
                    v.v.describe()
                ),
            )),
        }
    }

    fn id(&self, v: &Value, what: &str) -> Result<Id, FilterError> {
        match v.v {
            V::Num(_, Some(n)) => Ok(n),
            _ => Err(self.type_err(
                v.at,
                format!("{what} is a numeric id, e.g. 3; found {}", v.v.describe()),
            )),
        }
    }

    fn field(&mut self, lower: &str, name: &str, at: usize) -> Result<Expr, FilterError> {
        let text_field = match lower {
            "email" => Some(TextField::Email),
            "email_domain" | "domain" => Some(TextField::EmailDomain),
            "first_name" => Some(TextField::FirstName),
            "last_name" => Some(TextField::LastName),
            "company" => Some(TextField::Company),
            "phone" => Some(TextField::Phone),
            _ => None,
        };
        if let Some(f) = text_field {
            let (cond, op_at) = self.condition(lower)?;
            let test =
                |t: TextTest| -> Result<Expr, FilterError> { Ok(Expr::Pred(Pred::Text(f, t))) };
            return match cond {
                Cond::Cmp(CmpOp::Eq, v) => test(TextTest::AnyOf(vec![self.text(v, lower)?])),
                Cond::Cmp(CmpOp::Ne, v) => Ok(not(Pred::Text(
                    f,
                    TextTest::AnyOf(vec![self.text(v, lower)?]),
                ))),
                Cond::In(vs) => test(TextTest::AnyOf(self.texts(vs, lower)?)),
                Cond::NotIn(vs) => Ok(not(Pred::Text(f, TextTest::AnyOf(self.texts(vs, lower)?)))),
                Cond::Contains(v) => test(TextTest::Contains(self.text(v, lower)?)),
                Cond::StartsWith(v) => test(TextTest::StartsWith(self.text(v, lower)?)),
                Cond::Exists => test(TextTest::Exists),
                Cond::Cmp(op, _) => Err(self.type_err(
                    op_at,
                    format!(
                        "{lower} is text: compare it with =, !=, in, contains, starts_with or exists, not '{}'",
                        op.symbol()
                    ),
                )),
            };
        }
        match lower {
            "lead_score" => {
                let (cond, op_at) = self.condition(lower)?;
                match cond {
                    Cond::Cmp(
                        op,
                        Value {
                            v: V::Num(n, _), ..
                        },
                    ) => Ok(Expr::Pred(Pred::LeadScore(op, n))),
                    Cond::Cmp(_, v) => Err(self.type_err(
                        v.at,
                        format!("lead_score is a number; found {}", v.v.describe()),
                    )),
                    _ => Err(self.type_err(
                        op_at,
                        "lead_score compares with =, !=, <, <=, > or >= and a number, e.g. lead_score >= 50",
                    )),
                }
            }
            "owner" | "owner_id" => {
                let (cond, op_at) = self.condition(lower)?;
                match cond {
                    Cond::Cmp(CmpOp::Eq, v) => {
                        Ok(Expr::Pred(Pred::Owner(vec![self.id(&v, "owner")?])))
                    }
                    Cond::Cmp(CmpOp::Ne, v) => Ok(not(Pred::Owner(vec![self.id(&v, "owner")?]))),
                    Cond::In(vs) => Ok(Expr::Pred(Pred::Owner(self.ids(&vs, "owner")?))),
                    Cond::NotIn(vs) => Ok(not(Pred::Owner(self.ids(&vs, "owner")?))),
                    Cond::Exists => Ok(Expr::Pred(Pred::HasOwner)),
                    _ => Err(self.type_err(
                        op_at,
                        "owner is a user id: compare it with =, !=, in or exists",
                    )),
                }
            }
            "created_at" | "updated_at" => {
                let field = if lower == "created_at" {
                    TimeField::Created
                } else {
                    TimeField::Updated
                };
                let (cond, op_at) = self.condition(lower)?;
                let Cond::Cmp(op, v) = cond else {
                    return Err(self.type_err(
                        op_at,
                        format!("{lower} is a time: compare it with =, !=, <, <=, > or >= and a date such as 2026-01-01, or use {}_within(30d)", &lower[..7]),
                    ));
                };
                let V::Date(start, end) = v.v else {
                    return Err(self.type_err(
                        v.at,
                        format!("{lower} compares with a date such as 2026-01-01 (UTC) or 2026-01-01T09:00:00Z; found {}", v.v.describe()),
                    ));
                };
                let range = |from, to| Pred::Time { field, from, to };
                Ok(match op {
                    CmpOp::Eq => Expr::Pred(range(Some(start), Some(end))),
                    CmpOp::Ne => not(range(Some(start), Some(end))),
                    CmpOp::Lt => Expr::Pred(range(None, Some(start))),
                    CmpOp::Le => Expr::Pred(range(None, Some(end))),
                    CmpOp::Gt => Expr::Pred(range(Some(end), None)),
                    CmpOp::Ge => Expr::Pred(range(Some(start), None)),
                })
            }
            "tag" | "tags" => {
                let (cond, op_at) = self.condition(lower)?;
                let tag =
                    |t: TextTest| -> Result<Expr, FilterError> { Ok(Expr::Pred(Pred::Tag(t))) };
                match cond {
                    Cond::Cmp(CmpOp::Eq, v) => tag(TextTest::AnyOf(vec![self.text(v, "tag")?])),
                    Cond::Cmp(CmpOp::Ne, v) => Ok(not(Pred::Tag(TextTest::AnyOf(vec![self.text(v, "tag")?])))),
                    Cond::In(vs) => tag(TextTest::AnyOf(self.texts(vs, "tag")?)),
                    Cond::NotIn(vs) => Ok(not(Pred::Tag(TextTest::AnyOf(self.texts(vs, "tag")?)))),
                    Cond::Contains(v) => tag(TextTest::Contains(self.text(v, "tag")?)),
                    Cond::StartsWith(v) => tag(TextTest::StartsWith(self.text(v, "tag")?)),
                    Cond::Exists => tag(TextTest::Exists),
                    Cond::Cmp(op, _) => Err(self.type_err(
                        op_at,
                        format!("tag compares with =, !=, in, contains, starts_with or exists, not '{}'", op.symbol()),
                    )),
                }
            }
            "list" | "lists" => {
                let (cond, op_at) = self.condition(lower)?;
                let on = |lists| Pred::List {
                    lists,
                    statuses: vec![MembershipStatus::Confirmed, MembershipStatus::Unconfirmed],
                };
                match cond {
                    Cond::Cmp(CmpOp::Eq, v) => Ok(Expr::Pred(on(vec![self.id(&v, "a list")?]))),
                    Cond::Cmp(CmpOp::Ne, v) => Ok(not(on(vec![self.id(&v, "a list")?]))),
                    Cond::In(vs) => Ok(Expr::Pred(on(self.ids(&vs, "a list")?))),
                    Cond::NotIn(vs) => Ok(not(on(self.ids(&vs, "a list")?))),
                    _ => Err(self.type_err(
                        op_at,
                        "list compares with a list id: list = 3, list != 3 or list in [1, 2]",
                    )),
                }
            }
            _ => {
                let key = lower
                    .strip_prefix("attributes.")
                    .or_else(|| lower.strip_prefix("attribute."))
                    .or_else(|| lower.strip_prefix("attr."));
                match key {
                    Some(k) if !k.is_empty() => {
                        // attribute names keep their case
                        let key = name[name.len() - k.len()..].to_string();
                        self.attribute(key)
                    }
                    Some(_) => Err(self.err_at(
                        at,
                        FilterErrorKind::UnknownField,
                        "name the attribute after the dot, e.g. attributes.country",
                    )),
                    None => Err(unknown(self.src, at, name, false)),
                }
            }
        }
    }

    fn texts(&self, vs: Vec<Value>, field: &str) -> Result<Vec<String>, FilterError> {
        vs.into_iter().map(|v| self.text(v, field)).collect()
    }

    fn ids(&self, vs: &[Value], what: &str) -> Result<Vec<Id>, FilterError> {
        vs.iter().map(|v| self.id(v, what)).collect()
    }

    fn literal(&self, v: Value, key: &str) -> Result<Literal, FilterError> {
        match v.v {
            V::Str(s) => Ok(Literal::Str(s)),
            V::Num(n, _) => Ok(Literal::Num(n)),
            V::Bool(b) => Ok(Literal::Bool(b)),
            other => Err(self.type_err(
                v.at,
                format!(
                    "attributes.{key} compares with text in quotes, a number or true/false; found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn attribute(&mut self, key: String) -> Result<Expr, FilterError> {
        let (cond, _) = self.condition(&format!("attributes.{key}"))?;
        let attr = |test| Pred::Attr {
            key: key.clone(),
            test,
        };
        let text = |p: &Self, v: Value| match v.v {
            V::Str(s) => Ok(s),
            other => Err(p.type_err(
                v.at,
                format!(
                    "contains and starts_with compare with text in quotes; found {}",
                    other.describe()
                ),
            )),
        };
        Ok(match cond {
            Cond::Cmp(CmpOp::Ne, v) => not(attr(AttrTest::Cmp(CmpOp::Eq, self.literal(v, &key)?))),
            Cond::Cmp(op, v) => {
                let lit = self.literal(v.clone(), &key)?;
                if matches!(lit, Literal::Bool(_)) && op != CmpOp::Eq {
                    return Err(self.type_err(v.at, "true and false compare only with = and !="));
                }
                Expr::Pred(attr(AttrTest::Cmp(op, lit)))
            }
            Cond::In(vs) => Expr::Pred(attr(AttrTest::AnyOf(
                vs.into_iter()
                    .map(|v| self.literal(v, &key))
                    .collect::<Result<_, _>>()?,
            ))),
            Cond::NotIn(vs) => not(attr(AttrTest::AnyOf(
                vs.into_iter()
                    .map(|v| self.literal(v, &key))
                    .collect::<Result<_, _>>()?,
            ))),
            Cond::Contains(v) => {
                Expr::Pred(attr(AttrTest::Contains(text(self, v)?.to_lowercase())))
            }
            Cond::StartsWith(v) => {
                Expr::Pred(attr(AttrTest::StartsWith(text(self, v)?.to_lowercase())))
            }
            Cond::Exists => Expr::Pred(attr(AttrTest::Exists)),
        })
    }

    fn args(&mut self) -> Result<Vec<Value>, FilterError> {
        self.expect(Tok::LParen, "'('")?;
        self.values_until(Tok::RParen)
    }

    fn one_arg(&mut self, name: &str, example: &str) -> Result<Value, FilterError> {
        let open = self.peek().at;
        let mut args = self.args()?;
        if args.len() != 1 {
            return Err(self.err_at(
                args.get(1).map(|a| a.at).unwrap_or(open),
                FilterErrorKind::Syntax,
                format!("{name} takes one argument, e.g. {example}"),
            ));
        }
        Ok(args.remove(0))
    }

    fn duration_arg(&mut self, name: &str, example: &str) -> Result<i64, FilterError> {
        let v = self.one_arg(name, example)?;
        match v.v {
            V::Duration(d) => Ok(d),
            V::Num(..) => Err(self.err_at(
                v.at,
                FilterErrorKind::Duration,
                format!("give the duration a unit (h, d, w or y), e.g. {example}"),
            )),
            other => Err(self.type_err(
                v.at,
                format!(
                    "{name} takes a duration such as 90d; found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn function(&mut self, lower: &str, name: &str, at: usize) -> Result<Expr, FilterError> {
        let within = |kind| move |d| Expr::Pred(Pred::EngagedWithin(kind, d));
        match lower {
            "created_within" => {
                let d = self.duration_arg(lower, "created_within(30d)")?;
                Ok(Expr::Pred(Pred::TimeWithin(TimeField::Created, d)))
            }
            "updated_within" => {
                let d = self.duration_arg(lower, "updated_within(30d)")?;
                Ok(Expr::Pred(Pred::TimeWithin(TimeField::Updated, d)))
            }
            "opened_within" => self
                .duration_arg(lower, "opened_within(90d)")
                .map(within(EngagementKind::Open)),
            "clicked_within" => self
                .duration_arg(lower, "clicked_within(30d)")
                .map(within(EngagementKind::Click)),
            "sent_within" => self
                .duration_arg(lower, "sent_within(7d)")
                .map(within(EngagementKind::Sent)),
            "never_opened" | "never_clicked" | "never_sent" => {
                let args_at = self.peek().at;
                if !self.args()?.is_empty() {
                    return Err(self.err_at(
                        args_at,
                        FilterErrorKind::Syntax,
                        format!("{lower} takes no argument"),
                    ));
                }
                let kind = match lower {
                    "never_opened" => EngagementKind::Open,
                    "never_clicked" => EngagementKind::Click,
                    _ => EngagementKind::Sent,
                };
                Ok(Expr::Pred(Pred::Never(kind)))
            }
            "subscribed" | "unsubscribed" | "pending" => {
                let v = self.one_arg(lower, &format!("{lower}(3)"))?;
                let list = self.id(&v, "the list")?;
                let status = match lower {
                    "subscribed" => MembershipStatus::Confirmed,
                    "unsubscribed" => MembershipStatus::Unsubscribed,
                    _ => MembershipStatus::Unconfirmed,
                };
                Ok(Expr::Pred(Pred::List {
                    lists: vec![list],
                    statuses: vec![status],
                }))
            }
            "list_status" => {
                let v = self.one_arg(lower, "list_status(3) = \"pending\"")?;
                let list = self.id(&v, "the list")?;
                let (cond, op_at) = self.condition("list_status(…)")?;
                let (negate, values) = match cond {
                    Cond::Cmp(CmpOp::Eq, v) => (false, vec![v]),
                    Cond::Cmp(CmpOp::Ne, v) => (true, vec![v]),
                    Cond::In(vs) => (false, vs),
                    Cond::NotIn(vs) => (true, vs),
                    _ => {
                        return Err(self.type_err(
                            op_at,
                            "list_status(…) compares with =, !=, in or not in and \"subscribed\", \"pending\" or \"unsubscribed\"",
                        ));
                    }
                };
                let mut statuses = Vec::new();
                for v in values {
                    let at = v.at;
                    let s = self.text(v, "list_status(…)")?;
                    statuses.push(match s.as_str() {
                        "subscribed" | "confirmed" => MembershipStatus::Confirmed,
                        "pending" | "unconfirmed" => MembershipStatus::Unconfirmed,
                        "unsubscribed" => MembershipStatus::Unsubscribed,
                        _ => {
                            return Err(self.type_err(
                                at,
                                format!("unknown list status \"{s}\": use \"subscribed\", \"pending\" or \"unsubscribed\""),
                            ));
                        }
                    });
                }
                let p = Pred::List {
                    lists: vec![list],
                    statuses,
                };
                Ok(if negate { not(p) } else { Expr::Pred(p) })
            }
            "consent" => {
                let v = self.one_arg(lower, "consent(\"marketing\")")?;
                let purpose = self.text(v, "consent(…)")?;
                Ok(Expr::Pred(Pred::Consent(purpose)))
            }
            "certification_expires_within" => {
                let d = self.duration_arg(lower, "certification_expires_within(60d)")?;
                Ok(Expr::Pred(Pred::CertExpiring(d)))
            }
            "certified" => {
                let v = self.one_arg(lower, "certified(\"ITIL\")")?;
                let name = self.text(v, "certified(…)")?;
                Ok(Expr::Pred(Pred::Certified(name)))
            }
            _ => Err(unknown(self.src, at, name, true)),
        }
    }
}

fn not(p: Pred) -> Expr {
    Expr::Not(Box::new(Expr::Pred(p)))
}

/// A literal as written, before its field decides what it may be.
#[derive(Debug, Clone)]
enum V {
    Str(String),
    Num(f64, Option<u64>),
    Bool(bool),
    Duration(i64),
    Date(i64, i64),
}

impl V {
    fn describe(&self) -> &'static str {
        match self {
            V::Str(_) => "text",
            V::Num(..) => "a number",
            V::Bool(_) => "true/false",
            V::Duration(_) => "a duration",
            V::Date(..) => "a date",
        }
    }
}

#[derive(Debug, Clone)]
struct Value {
    v: V,
    at: usize,
}

enum Cond {
    Cmp(CmpOp, Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Contains(Value),
    StartsWith(Value),
    Exists,
}
