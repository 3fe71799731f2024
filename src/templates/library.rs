//! The template library shipped in the binary (`templates/<category>/<name>.mjml`): TOML front
//! matter between `+++` lines (name, kind, subject, preheader, sample data), then the MJML
//! body. See templates/README.md for the format.

use super::{Kind, Part, Sample, TemplateError, TemplateSource};

#[derive(rust_embed::RustEmbed)]
#[folder = "$CARGO_MANIFEST_DIR/templates/"]
struct Files;

/// One template of the library (or any file in the same format).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LibraryTemplate {
    /// `category/name`, from the path.
    pub id: String,
    pub category: String,
    pub name: String,
    pub description: String,
    pub kind: Kind,
    #[serde(skip)]
    pub source: TemplateSource,
    pub sample: Sample,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    name: String,
    #[serde(default)]
    description: String,
    kind: Kind,
    subject: String,
    #[serde(default)]
    preheader: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    sample: Option<SampleToml>,
}

#[derive(serde::Deserialize)]
struct SampleToml {
    #[serde(default)]
    contact: Option<toml::Value>,
    #[serde(default)]
    campaign: Option<toml::Value>,
    #[serde(default)]
    data: Option<toml::Value>,
}

fn to_json(v: Option<toml::Value>) -> serde_json::Value {
    v.and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(serde_json::Value::Object(Default::default()))
}

/// Parses a template file. `id` is `category/name`.
pub fn parse(id: &str, text: &str) -> Result<LibraryTemplate, TemplateError> {
    let fm_err =
        |line: Option<(usize, usize)>, m: String| TemplateError::at(Part::FrontMatter, line, m);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("+++\n")
        .or_else(|| text.strip_prefix("+++\r\n"))
    else {
        return Err(fm_err(
            Some((1, 1)),
            "a template file starts with a '+++' line, then TOML front matter, then '+++'".into(),
        ));
    };
    let Some(end) = rest.find("\n+++") else {
        return Err(fm_err(
            None,
            "the front matter is not closed by a '+++' line".into(),
        ));
    };
    let fm_text = &rest[..end + 1];
    let after = &rest[end + 4..];
    let body_start_line = 1 + fm_text.matches('\n').count() + 2;
    let body = after
        .strip_prefix("\r\n")
        .or_else(|| after.strip_prefix('\n'))
        .unwrap_or(after);
    let fm: FrontMatter = toml::from_str(fm_text).map_err(|e| {
        let pos = e
            .span()
            .map(|s| super::line_col(fm_text, s.start))
            .map(|(l, c)| (l + 1, c));
        fm_err(pos, e.message().to_string())
    })?;
    let (category, name_part) = id.split_once('/').unwrap_or(("custom", id));
    let sample = match fm.sample {
        Some(s) => {
            let contact = to_json(s.contact);
            Sample {
                contact: serde_json::from_value(contact)
                    .map_err(|e| fm_err(None, format!("sample.contact: {e}")))?,
                campaign: to_json(s.campaign),
                data: to_json(s.data),
            }
        }
        None => Sample::default(),
    };
    Ok(LibraryTemplate {
        id: id.to_string(),
        category: category.to_string(),
        name: if fm.name.is_empty() {
            name_part.to_string()
        } else {
            fm.name
        },
        description: fm.description,
        kind: fm.kind,
        source: TemplateSource {
            subject: fm.subject,
            preheader: fm.preheader,
            body: body.to_string(),
            body_line: body_start_line,
            reason: fm.reason,
        },
        sample,
    })
}

/// Every template shipped in the binary, sorted by id. A template that fails to parse is
/// reported (the library test keeps that from shipping).
pub fn all() -> Vec<Result<LibraryTemplate, (String, TemplateError)>> {
    let mut ids: Vec<String> = Files::iter()
        .filter(|p| p.ends_with(".mjml"))
        .map(|p| p.to_string())
        .collect();
    ids.sort();
    ids.into_iter()
        .filter_map(|path| {
            let file = Files::get(&path)?;
            let id = path.trim_end_matches(".mjml").to_string();
            let text = String::from_utf8_lossy(&file.data).into_owned();
            Some(parse(&id, &text).map_err(|e| (path.clone(), e)))
        })
        .collect()
}

/// One shipped template by id (`category/name`).
pub fn get(id: &str) -> Option<Result<LibraryTemplate, TemplateError>> {
    let file = Files::get(&format!("{id}.mjml"))?;
    Some(parse(id, &String::from_utf8_lossy(&file.data)))
}

/// What a campaign itself gives templates as `campaign` (see `campaigns::runner`).
const CAMPAIGN_OWN: [&str; 3] = ["id", "name", "subject"];

impl LibraryTemplate {
    /// The template as a starting point for a stored (campaign) template: a campaign only
    /// provides `campaign.id`, `name` and `subject` and no `data`, so the sample's other
    /// `campaign.*` and `data.*` values are written into the template tags as literals
    /// (`{{ tracked(campaign.portal_url) }}` → `{{ tracked("https://…") }}`), for the
    /// marketer to edit. Line numbers are unchanged.
    pub fn standalone(&self) -> TemplateSource {
        let mut s = self.source.clone();
        s.subject = inline_sample(&s.subject, &self.sample);
        s.preheader = inline_sample(&s.preheader, &self.sample);
        s.body = inline_sample(&s.body, &self.sample);
        s
    }
}

/// A JSON value as a minijinja literal.
fn literal(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "none".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) => serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()),
        J::Array(a) => format!("[{}]", a.iter().map(literal).collect::<Vec<_>>().join(", ")),
        J::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", literal(&J::String(k.clone())), literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The longest path `.key` / `[n]` at the start of `rest` that `v` has, with the value there
/// and the length of the path consumed.
fn descend<'a>(mut v: &'a serde_json::Value, rest: &str) -> (&'a serde_json::Value, usize) {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut used = 0;
    loop {
        let r = &rest[used..];
        let step = if let Some(after) = r.strip_prefix('.') {
            let n = after.find(|c: char| !ident(c)).unwrap_or(after.len());
            v.get(&after[..n]).filter(|_| n > 0).map(|x| (x, 1 + n))
        } else if let Some(after) = r.strip_prefix('[') {
            let n = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            let idx = after[..n].parse::<usize>().ok();
            idx.filter(|_| after[n..].starts_with(']'))
                .and_then(|i| v.get(i))
                .map(|x| (x, n + 2))
        } else {
            None
        };
        match step {
            Some((x, len)) => {
                v = x;
                used += len;
            }
            None => return (v, used),
        }
    }
}

/// Replaces `campaign.…` / `data.…` paths inside `{{ … }}` and `{% … %}` that the sample
/// has by its value there as a literal (`campaign.articles[0].title` → `"…"`); keys a
/// campaign provides itself (`campaign.id`, `name`, `subject`) are left alone.
pub fn inline_sample(text: &str, sample: &Sample) -> String {
    let roots = [("campaign", &sample.campaign), ("data", &sample.data)];
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let close = match from.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            _ => {
                out.push('{');
                rest = &from[1..];
                continue;
            }
        };
        let end = from.find(close).map_or(from.len(), |i| i + 2);
        let tag = &from[..end];
        let mut i = 0;
        'scan: while i < tag.len() {
            let prev = tag[..i].chars().next_back();
            if !prev.is_some_and(|p| ident(p) || p == '.') {
                for (root, values) in roots {
                    let Some(path) = tag[i..].strip_prefix(root) else {
                        continue;
                    };
                    let (v, used) = descend(values, path);
                    let key = path
                        .strip_prefix('.')
                        .map_or("", |a| &a[..a.find(|c: char| !ident(c)).unwrap_or(a.len())]);
                    let own = root == "campaign" && CAMPAIGN_OWN.contains(&key);
                    if used > 0 && !own && !path[used..].starts_with(ident) {
                        out.push_str(&literal(v));
                        i += root.len() + used;
                        continue 'scan;
                    }
                }
            }
            let c = tag[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
        rest = &from[end..];
    }
    out.push_str(rest);
    out
}
