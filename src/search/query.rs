//! The contact search language: free words (prefix and typo tolerant, all must match) and
//! field filters `field:value` / `field:"two words"`, negated with a leading `-`.

use super::{Fields, keyword_analyzer, name_analyzer};
use tantivy::Term;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
    /// Character offset in the query where the problem is.
    pub position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Tag,
    Company,
    Email,
    FirstName,
    LastName,
    Name,
    Phone,
    List,
    Owner,
    Account,
    Attribute,
}

const FIELD_NAMES: &str =
    "tag, company, email, first_name, last_name, name, phone, list, owner, account, attributes.KEY";

fn filter_for(name: &str) -> Option<(Filter, Option<String>)> {
    let lower = name.to_ascii_lowercase();
    let f = match lower.as_str() {
        "tag" | "tags" => Filter::Tag,
        "company" | "org" | "organisation" | "organization" => Filter::Company,
        "email" => Filter::Email,
        "first_name" | "firstname" | "first" => Filter::FirstName,
        "last_name" | "lastname" | "last" => Filter::LastName,
        "name" => Filter::Name,
        "phone" => Filter::Phone,
        "list" => Filter::List,
        "owner" => Filter::Owner,
        "account" => Filter::Account,
        _ => {
            let key = lower
                .strip_prefix("attributes.")
                .or_else(|| lower.strip_prefix("attr."))?;
            if key.is_empty() {
                return None;
            }
            return Some((Filter::Attribute, Some(key.to_string())));
        }
    };
    Some((f, None))
}

#[derive(Debug, Clone)]
struct Clause {
    negate: bool,
    filter: Option<(Filter, Option<String>)>,
    value: String,
}

/// A parsed search query, independent of any index.
#[derive(Debug, Clone, Default)]
pub struct ParsedQuery {
    clauses: Vec<Clause>,
}

impl ParsedQuery {
    /// The contacts of a CRM account (what `account:ID` finds).
    pub fn account(id: u64) -> ParsedQuery {
        ParsedQuery {
            clauses: vec![Clause {
                negate: false,
                filter: Some((Filter::Account, None)),
                value: id.to_string(),
            }],
        }
    }

    pub fn parse(input: &str) -> Result<ParsedQuery, QueryError> {
        if input.len() > 1000 {
            return Err(QueryError {
                message: "the search is longer than 1000 characters".into(),
                position: 1000,
            });
        }
        let chars: Vec<(usize, char)> = input.char_indices().collect();
        let mut i = 0;
        let mut clauses = Vec::new();
        while i < chars.len() {
            if chars[i].1.is_whitespace() {
                i += 1;
                continue;
            }
            let start = chars[i].0;
            let negate = chars[i].1 == '-';
            if negate {
                i += 1;
            }
            // read a word up to whitespace, a ':' or a quote
            let mut word = String::new();
            let mut filter = None;
            while i < chars.len() && !chars[i].1.is_whitespace() {
                let c = chars[i].1;
                if c == ':' && filter.is_none() && !word.is_empty() && !word.contains('@') {
                    let Some(f) = filter_for(&word) else {
                        return Err(QueryError {
                            message: format!(
                                "unknown search field '{word}' (known fields: {FIELD_NAMES})"
                            ),
                            position: start,
                        });
                    };
                    filter = Some(f);
                    word.clear();
                    i += 1;
                    continue;
                }
                if c == '"' {
                    let open = chars[i].0;
                    i += 1;
                    let mut closed = false;
                    while i < chars.len() {
                        if chars[i].1 == '"' {
                            closed = true;
                            i += 1;
                            break;
                        }
                        word.push(chars[i].1);
                        i += 1;
                    }
                    if !closed {
                        return Err(QueryError {
                            message: "a quote is not closed".into(),
                            position: open,
                        });
                    }
                    continue;
                }
                word.push(c);
                i += 1;
            }
            if filter.is_some() && word.trim().is_empty() {
                return Err(QueryError {
                    message: "a field filter needs a value, e.g. tag:certified".into(),
                    position: start,
                });
            }
            if let Some((Filter::List | Filter::Owner | Filter::Account, _)) = filter
                && word.trim().parse::<u64>().is_err()
            {
                return Err(QueryError {
                    message: format!("'{word}' is not a number (list, owner and account take ids)"),
                    position: start,
                });
            }
            if word.trim().is_empty() {
                continue;
            }
            clauses.push(Clause {
                negate,
                filter,
                value: word,
            });
        }
        Ok(ParsedQuery { clauses })
    }

    pub fn has_free_text(&self) -> bool {
        self.clauses.iter().any(|c| c.filter.is_none() && !c.negate)
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    pub(crate) fn clauses(&self, f: &Fields) -> Vec<(Occur, Box<dyn Query>)> {
        let mut name = name_analyzer();
        let mut keyword = keyword_analyzer();
        let mut out: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for c in &self.clauses {
            let q: Box<dyn Query> = match &c.filter {
                None => match free_text(f, &mut name, &c.value) {
                    Some(q) => q,
                    None => continue,
                },
                Some((filter, key)) => {
                    match field_filter(
                        f,
                        &mut name,
                        &mut keyword,
                        *filter,
                        key.as_deref(),
                        &c.value,
                    ) {
                        Some(q) => q,
                        None => continue,
                    }
                }
            };
            out.push((
                if c.negate {
                    Occur::MustNot
                } else {
                    Occur::Must
                },
                q,
            ));
        }
        out
    }
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

fn term(field: Field, text: &str) -> Term {
    Term::from_field_text(field, text)
}

fn boxed_term(field: Field, text: &str, boost: f32) -> Box<dyn Query> {
    let q = Box::new(TermQuery::new(
        term(field, text),
        IndexRecordOption::WithFreqs,
    ));
    if boost == 1.0 {
        q
    } else {
        Box::new(BoostQuery::new(q, boost))
    }
}

/// One free word: every token must match somewhere; exact matches on names rank highest,
/// then prefix matches, then matches within one or two typos.
fn free_text(f: &Fields, name: &mut TextAnalyzer, word: &str) -> Option<Box<dyn Query>> {
    let toks = tokens(name, word);
    if toks.is_empty() {
        return None;
    }
    let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for t in toks {
        let mut should: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Should, boxed_term(f.all, &t, 3.0)),
            (Occur::Should, boxed_term(f.last_name, &t, 2.0)),
            (Occur::Should, boxed_term(f.first_name, &t, 1.5)),
            (Occur::Should, boxed_term(f.company, &t, 1.0)),
        ];
        let len = t.chars().count();
        if len >= 2 {
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(FuzzyTermQuery::new_prefix(term(f.all, &t), 0, true)),
                    1.0,
                )),
            ));
        }
        if len >= 4 {
            let distance = if len >= 8 { 2 } else { 1 };
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(FuzzyTermQuery::new(term(f.all, &t), distance, true)),
                    0.5,
                )),
            ));
        }
        must.push((Occur::Must, Box::new(BooleanQuery::new(should))));
    }
    if must.len() == 1 {
        must.pop().map(|(_, q)| q)
    } else {
        Some(Box::new(BooleanQuery::new(must)))
    }
}

fn all_tokens_in(field: Field, toks: Vec<String>) -> Option<Box<dyn Query>> {
    let mut parts: Vec<(Occur, Box<dyn Query>)> = toks
        .iter()
        .map(|t| (Occur::Must, boxed_term(field, t, 1.0)))
        .collect();
    match parts.len() {
        0 => None,
        1 => parts.pop().map(|(_, q)| q),
        _ => Some(Box::new(BooleanQuery::new(parts))),
    }
}

fn field_filter(
    f: &Fields,
    name: &mut TextAnalyzer,
    keyword: &mut TextAnalyzer,
    filter: Filter,
    key: Option<&str>,
    value: &str,
) -> Option<Box<dyn Query>> {
    match filter {
        Filter::Tag => all_tokens_in(f.tags, tokens(keyword, value.trim())),
        Filter::Company => all_tokens_in(f.company, tokens(name, value)),
        Filter::FirstName => all_tokens_in(f.first_name, tokens(name, value)),
        Filter::LastName => all_tokens_in(f.last_name, tokens(name, value)),
        Filter::Phone => all_tokens_in(f.phone, tokens(name, value)),
        Filter::Name => {
            let toks = tokens(name, value);
            let parts: Vec<(Occur, Box<dyn Query>)> = toks
                .iter()
                .map(|t| {
                    let either: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                        (Occur::Should, boxed_term(f.first_name, t, 1.0)),
                        (Occur::Should, boxed_term(f.last_name, t, 1.0)),
                    ]));
                    (Occur::Must, either)
                })
                .collect();
            (!parts.is_empty()).then(|| Box::new(BooleanQuery::new(parts)) as Box<dyn Query>)
        }
        Filter::Email => {
            if value.contains('@') {
                all_tokens_in(f.email_raw, tokens(keyword, value.trim()))
            } else {
                all_tokens_in(f.email, tokens(name, value))
            }
        }
        Filter::List | Filter::Owner | Filter::Account => {
            let id = value.trim().parse::<u64>().ok()?;
            let field = match filter {
                Filter::List => f.list,
                Filter::Owner => f.owner,
                _ => f.account,
            };
            Some(Box::new(TermQuery::new(
                Term::from_field_u64(field, id),
                IndexRecordOption::Basic,
            )))
        }
        Filter::Attribute => {
            let kv = format!("{}={}", key.unwrap_or_default(), value.trim());
            all_tokens_in(f.attr_kv, tokens(keyword, &kv))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_words() {
        let q =
            ParsedQuery::parse(r#"smith tag:certified company:"acme corp" -tag:lapsed"#).unwrap();
        assert_eq!(q.clauses.len(), 4);
        assert!(q.has_free_text());
        assert_eq!(q.clauses[2].value, "acme corp");
        assert!(q.clauses[3].negate);
    }

    #[test]
    fn rejects_garbage_with_a_position() {
        let e = ParsedQuery::parse("smith colour:red").unwrap_err();
        assert!(e.message.contains("unknown search field 'colour'"), "{e}");
        assert_eq!(e.position, 6);
        assert!(ParsedQuery::parse("company:\"acme").is_err());
        assert!(ParsedQuery::parse("tag:").is_err());
        assert!(ParsedQuery::parse("list:abc").is_err());
        assert!(ParsedQuery::parse(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn email_with_colon_free_word_is_not_a_field() {
        let q = ParsedQuery::parse("ann@example.com").unwrap();
        assert!(q.has_free_text());
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..5000 {
            let len = (seed % 40) as usize;
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let alphabet = " \"-:tagcompany@.\t\\xyzé";
                    alphabet
                        .chars()
                        .nth((seed % alphabet.chars().count() as u64) as usize)
                        .unwrap_or(' ')
                })
                .collect();
            let _ = ParsedQuery::parse(&s);
        }
    }
}
