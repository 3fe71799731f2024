//! Streaming CSV import of contacts. Rows are read one at a time (the file is never loaded
//! whole), headers are matched case-insensitively (Mailchimp and listmonk exports are
//! recognised), bad rows are reported with their line numbers while good rows are saved, and
//! rows are de-duplicated by email (later rows update earlier ones). Batches are committed in
//! one store transaction each.

use crate::contacts::{ContactError, Contacts, WantedEvents, add_membership, empty_contact};
use crate::model::{
    Consent, EventType, Id, ImportJob, ImportMode, ImportRowError, MAX_IMPORT_ERRORS,
    MembershipStatus, normalise_email, now,
};
use crate::policy::{Action, Actor};
use std::collections::BTreeMap;
use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file has no header row")]
    NoHeader,
    #[error("the header row has no email column (looked for: email, email address, e-mail)")]
    NoEmailColumn,
    #[error("the header row is not valid CSV: {0}")]
    BadHeader(String),
    #[error(transparent)]
    Contact(#[from] ContactError),
}

/// Longest accepted row, in bytes.
pub const MAX_ROW_BYTES: usize = 64 * 1024;
const BATCH: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Email,
    FirstName,
    LastName,
    FullName,
    Company,
    Phone,
    Tags,
    /// listmonk's JSON attributes column.
    AttributesJson,
    OptinTime,
    OptinIp,
    Attribute,
    Ignore,
}

fn classify(header: &str) -> (Column, String) {
    let h = header.trim().trim_start_matches('\u{feff}').trim();
    let key: String = h
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let col = match key.as_str() {
        "email" | "email_address" | "e_mail" | "emailaddress" | "mail" | "e_mail_address" => {
            Column::Email
        }
        "first_name" | "firstname" | "fname" | "given_name" | "first" => Column::FirstName,
        "last_name" | "lastname" | "lname" | "surname" | "family_name" | "last" => Column::LastName,
        "name" | "full_name" | "fullname" => Column::FullName,
        "company" | "company_name" | "organization" | "organisation" | "org" | "account" => {
            Column::Company
        }
        "phone" | "phone_number" | "mobile" | "telephone" | "tel" => Column::Phone,
        "tags" | "tag" => Column::Tags,
        "attributes" | "attribs" => Column::AttributesJson,
        "optin_time" | "opt_in_time" | "confirm_time" => Column::OptinTime,
        "optin_ip" | "opt_in_ip" | "confirm_ip" => Column::OptinIp,
        "" => Column::Ignore,
        // listmonk / Mailchimp bookkeeping that is not about the person
        "uuid" | "leid" | "euid" | "created_at" | "updated_at" | "last_changed" => Column::Ignore,
        _ => Column::Attribute,
    };
    (col, key)
}

/// Passes bytes through and remembers where the line breaks are, so that a record's byte
/// offset can be turned into the line a person sees in an editor. (The csv crate's own line
/// counter lags by one on CRLF files: it counts the '\n' of a CRLF only when it reads the next
/// record.)
struct LineMap<R> {
    inner: R,
    offset: u64,
    breaks: std::rc::Rc<std::cell::RefCell<LineBreaks>>,
}

#[derive(Default)]
struct LineBreaks {
    before: u64,
    pending: std::collections::VecDeque<u64>,
}

impl LineBreaks {
    /// 1-based line of the record whose first byte is at `byte` (or whose leftover '\n' is).
    fn line_at(&mut self, byte: u64) -> u64 {
        while self.pending.front().is_some_and(|&b| b <= byte) {
            self.pending.pop_front();
            self.before += 1;
        }
        self.before + 1
    }
}

impl<R: Read> Read for LineMap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut breaks = self.breaks.borrow_mut();
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                breaks.pending.push_back(self.offset + i as u64);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Import options.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub mode: ImportMode,
    pub list_id: Option<Id>,
    /// Where the data came from, recorded on consents (e.g. "import:contacts.csv").
    pub source: String,
}

struct Row {
    line: u64,
    email: String,
    fields: Vec<(Column, String, String)>,
}

fn split_tags(v: &str) -> Vec<String> {
    v.split([',', ';', '|'])
        .map(|t| t.trim().trim_matches('"').trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_optin_time(v: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let v = v.trim();
    if let Ok(t) = time::OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(v, &fmt)
        .ok()
        .map(|p| p.assume_utc())
}

/// Runs an import over `input`, calling `progress` after every batch with the job so far.
/// Returns the finished job (its status is set by the caller's `job`).
pub fn run(
    contacts: &Contacts,
    actor: &Actor,
    input: impl Read,
    opts: &ImportOptions,
    job: &mut ImportJob,
    mut progress: impl FnMut(&ImportJob),
) -> Result<(), ImportError> {
    actor.check_import().map_err(ContactError::from)?;
    if let Some(l) = opts.list_id {
        actor
            .check_lists(Action::Update)
            .map_err(ContactError::from)?;
        if contacts
            .store()
            .list(l)
            .map_err(ContactError::from)?
            .is_none()
        {
            return Err(ContactError::Invalid {
                field: "list",
                message: format!("list {l} does not exist"),
            }
            .into());
        }
    }
    let breaks = std::rc::Rc::new(std::cell::RefCell::new(LineBreaks::default()));
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .buffer_capacity(256 * 1024)
        .from_reader(LineMap {
            inner: input,
            offset: 0,
            breaks: breaks.clone(),
        });
    let line_of = |pos: &csv::Position| breaks.borrow_mut().line_at(pos.byte());
    let mut record = csv::ByteRecord::new();
    let header = loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => return Err(ImportError::NoHeader),
            Ok(true) if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) => continue,
            Ok(true) => break record.clone(),
            Err(e) => return Err(ImportError::BadHeader(e.to_string())),
        }
    };
    let columns: Vec<(Column, String)> = header
        .iter()
        .map(|h| classify(&String::from_utf8_lossy(h)))
        .collect();
    let Some(email_col) = columns.iter().position(|(c, _)| *c == Column::Email) else {
        return Err(ImportError::NoEmailColumn);
    };

    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    let mut error = |job: &mut ImportJob, line: u64, message: String| {
        job.error_count += 1;
        job.skipped += 1;
        if job.errors.len() < MAX_IMPORT_ERRORS {
            job.errors.push(ImportRowError { line, message });
        }
    };
    loop {
        let line = line_of(rdr.position());
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                job.processed += 1;
                let line = e.position().map(&line_of).unwrap_or(line);
                error(job, line, format!("not valid CSV: {e}"));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map(&line_of).unwrap_or(line);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        job.processed += 1;
        if record.as_slice().len() > MAX_ROW_BYTES {
            error(
                job,
                line,
                format!("row is longer than {} KiB", MAX_ROW_BYTES / 1024),
            );
            continue;
        }
        let mut fields = Vec::with_capacity(columns.len());
        let mut bad_utf8 = false;
        for (i, raw) in record.iter().enumerate() {
            let Some((col, key)) = columns.get(i) else {
                break;
            };
            match std::str::from_utf8(raw) {
                Ok(s) => {
                    if *col != Column::Ignore && *col != Column::Email && !s.trim().is_empty() {
                        fields.push((*col, key.clone(), s.trim().to_string()));
                    }
                }
                Err(_) => {
                    bad_utf8 = true;
                    break;
                }
            }
        }
        if bad_utf8 {
            error(
                job,
                line,
                "row is not valid UTF-8 text (save the file as UTF-8)".into(),
            );
            continue;
        }
        let raw_email = record
            .get(email_col)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let email = match normalise_email(&raw_email) {
            Ok(e) => e,
            Err(m) => {
                error(job, line, m);
                continue;
            }
        };
        batch.push(Row {
            line,
            email,
            fields,
        });
        if batch.len() >= BATCH {
            flush(contacts, actor, opts, job, &mut batch, &mut error)?;
            progress(job);
        }
    }
    flush(contacts, actor, opts, job, &mut batch, &mut error)?;
    contacts
        .search_index()
        .commit()
        .map_err(ContactError::from)?;
    progress(job);
    Ok(())
}

fn flush(
    contacts: &Contacts,
    actor: &Actor,
    opts: &ImportOptions,
    job: &mut ImportJob,
    batch: &mut Vec<Row>,
    error: &mut impl FnMut(&mut ImportJob, u64, String),
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(batch);
    let mut created = 0;
    let mut updated = 0;
    let mut errors: Vec<(u64, String)> = Vec::new();
    contacts.write(false, |tx| {
        let events = WantedEvents::of(tx)?;
        let erasure = crate::store::gdpr::erasure_key_in(tx.wtx())?;
        // Rows for the same email are applied in file order: later ones update earlier ones.
        for row in rows.iter() {
            let existing = tx.id_by_email(&row.email)?;
            let mut c = match existing {
                Some(id) => {
                    if opts.mode == ImportMode::Create {
                        errors.push((
                            row.line,
                            format!(
                                "{} already exists (mode=create skips existing contacts)",
                                row.email
                            ),
                        ));
                        continue;
                    }
                    match tx.get(id)? {
                        Some(c) => c,
                        None => continue,
                    }
                }
                None => {
                    if let Some(k) = &erasure
                        && crate::store::gdpr::erased_in(tx.wtx(), k, &row.email)?
                    {
                        errors.push((
                            row.line,
                            "this address was erased at the person's request and stays suppressed; row skipped".into(),
                        ));
                        continue;
                    }
                    let mut c = empty_contact(row.email.clone());
                    c.owner_id = actor.default_owner();
                    c
                }
            };
            if existing.is_some() && actor.check_contact(&c, Action::Update).is_err() {
                errors.push((
                    row.line,
                    format!("{} exists and belongs to another user", row.email),
                ));
                continue;
            }
            let mut attrs: BTreeMap<String, serde_json::Value> = c.attributes.clone();
            let mut optin: (Option<time::OffsetDateTime>, Option<String>) = (None, None);
            let mut bad = None;
            for (col, key, value) in &row.fields {
                let text = |field: &'static str| -> Result<String, String> {
                    if value.chars().count() > 200 {
                        Err(format!("{field} is longer than 200 characters"))
                    } else if value.chars().any(char::is_control) {
                        Err(format!("{field} contains control characters"))
                    } else {
                        Ok(value.clone())
                    }
                };
                let r = match col {
                    Column::FirstName => text("first_name").map(|v| c.first_name = v),
                    Column::LastName => text("last_name").map(|v| c.last_name = v),
                    Column::FullName => text("name").map(|v| {
                        let mut parts = v.splitn(2, ' ');
                        if c.first_name.is_empty() {
                            c.first_name = parts.next().unwrap_or_default().to_string();
                        }
                        if c.last_name.is_empty() {
                            c.last_name = parts.next().unwrap_or_default().trim().to_string();
                        }
                    }),
                    Column::Company => text("company").map(|v| c.company = v),
                    Column::Phone => text("phone").map(|v| c.phone = v),
                    Column::Tags => {
                        for t in split_tags(value) {
                            if t.chars().count() <= 64
                                && !c.tags.iter().any(|o| o.eq_ignore_ascii_case(&t))
                            {
                                c.tags.push(t);
                            }
                        }
                        Ok(())
                    }
                    Column::AttributesJson => {
                        match serde_json::from_str::<serde_json::Value>(value) {
                            Ok(serde_json::Value::Object(m)) => {
                                attrs.extend(m);
                                Ok(())
                            }
                            _ => Err("the attributes column is not a JSON object".to_string()),
                        }
                    }
                    Column::OptinTime => {
                        optin.0 = parse_optin_time(value);
                        attrs.insert(key.clone(), serde_json::Value::String(value.clone()));
                        Ok(())
                    }
                    Column::OptinIp => {
                        optin.1 = Some(value.clone());
                        attrs.insert(key.clone(), serde_json::Value::String(value.clone()));
                        Ok(())
                    }
                    Column::Attribute => {
                        if value.len() > 2000 {
                            Err(format!("{key} is longer than 2000 characters"))
                        } else {
                            attrs.insert(key.clone(), serde_json::Value::String(value.clone()));
                            Ok(())
                        }
                    }
                    Column::Email | Column::Ignore => Ok(()),
                };
                if let Err(m) = r {
                    bad = Some(m);
                    break;
                }
            }
            if let Some(m) = bad {
                errors.push((row.line, m));
                continue;
            }
            c.attributes = attrs;
            if let Some(at) = optin.0
                && !c
                    .consents
                    .iter()
                    .any(|k| k.purpose == "email_marketing" && k.at == at)
            {
                c.consents.push(Consent {
                    purpose: "email_marketing".into(),
                    source: opts.source.clone(),
                    at,
                    ip: optin.1.clone(),
                    wording: None,
                    withdrawn: false,
                });
            }
            if let Some(l) = opts.list_id {
                add_membership(&mut c, l, MembershipStatus::Confirmed);
            }
            if c.id == 0 {
                let c = tx.insert(c)?;
                events.emit(tx, EventType::ContactCreated, &c)?;
                created += 1;
            } else {
                c.updated_at = now();
                let c = tx.update(c)?;
                events.emit(tx, EventType::ContactUpdated, &c)?;
                updated += 1;
            }
        }
        Ok(())
    })?;
    job.created += created;
    job.updated += updated;
    for (line, m) in errors {
        error(job, line, m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_recognised() {
        assert_eq!(classify("\u{feff}Email Address").0, Column::Email);
        assert_eq!(classify("FNAME").0, Column::FirstName);
        assert_eq!(classify("Last Name").0, Column::LastName);
        assert_eq!(classify("attributes").0, Column::AttributesJson);
        assert_eq!(
            classify("Job Title"),
            (Column::Attribute, "job_title".into())
        );
        assert_eq!(classify("OPTIN_TIME").0, Column::OptinTime);
    }

    #[test]
    fn tags_split_on_common_separators() {
        assert_eq!(split_tags("\"pmp\",\"vip\""), vec!["pmp", "vip"]);
        assert_eq!(split_tags("a;b | c"), vec!["a", "b", "c"]);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use std::sync::Arc;

    fn job() -> ImportJob {
        ImportJob::new(ImportMode::Upsert, None, None)
    }

    /// Random and mangled CSV never panics, and whatever is imported is consistent: every
    /// stored contact has a valid email and is found by the index.
    #[test]
    fn garbage_csv_never_panics_or_corrupts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::store::Store::open(dir.path()).unwrap());
        let search =
            Arc::new(crate::search::SearchIndex::open(&dir.path().join("search"), &store).unwrap());
        let contacts = Contacts::new(store.clone(), search.clone());
        let actor = Actor::system();
        let opts = ImportOptions {
            mode: ImportMode::Upsert,
            list_id: None,
            source: "fuzz".into(),
        };
        let seed_rows = "email,first_name,tags,attributes\r\na@x.test,Ann,\"t1;t2\",\"{\"\"k\"\":1}\"\nb@x.test,\"Bo\"\"b\",,\n";
        let mut state = 0x9E3779B97F4A7C15u64;
        let mut rnd = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..120 {
            let mut bytes = seed_rows.as_bytes().to_vec();
            for _ in 0..(rnd() % 12) {
                let pos = (rnd() as usize) % (bytes.len() + 1);
                match rnd() % 4 {
                    0 => bytes.insert(pos, (rnd() % 256) as u8),
                    1 if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    2 => bytes
                        .splice(
                            pos..pos,
                            b"\",\r\n\"".iter().copied().take((rnd() % 5) as usize + 1),
                        )
                        .for_each(drop),
                    _ => bytes.truncate(pos),
                }
            }
            if round % 50 == 0 {
                bytes = (0..(rnd() % 400)).map(|_| (rnd() % 256) as u8).collect();
            }
            let mut j = job();
            let _ = run(&contacts, &actor, bytes.as_slice(), &opts, &mut j, |_| {});
            assert!(j.errors.len() as u64 <= j.error_count);
        }
        let n = store.contact_count().unwrap();
        let all = contacts.search(&actor, "", None, 100).unwrap();
        assert_eq!(all.total, n);
        for c in all.items {
            assert_eq!(normalise_email(&c.email).unwrap(), c.email);
        }
    }
}
