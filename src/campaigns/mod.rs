//! Templates and campaigns as marketers see them: validation, the lifecycle (draft →
//! scheduled → sending ⇄ paused → finished, or cancelled), audiences, test sends and
//! reports. Sending itself is `runner`'s; the at-most-once rule is the store's
//! (`store::campaigns::queue_batch`). Nothing here knows HTTP.

pub mod report;
pub mod runner;
pub mod timeline;

use crate::audit;
use crate::compose::{self, ComposeError};
use crate::model::{
    AbTest, Audience, AuditAction, Campaign, CampaignStatus, Id, StoredTemplate, now,
};
use crate::policy::{Action, Actor, Denied};
use crate::store::{Store, StoreError, campaigns as cstore};
use crate::templates::{self, Brand, CompiledTemplate, Kind, TemplateError, TemplateSource};
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the campaign is {status}; {message}")]
    State {
        status: &'static str,
        message: String,
    },
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Outbound(#[from] crate::outbound::OutboundError),
    #[error("sending is not available in this process")]
    NoSender,
}

pub type Result<T, E = CampaignError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> CampaignError {
    CampaignError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn state(c: &Campaign, message: impl Into<String>) -> CampaignError {
    CampaignError::State {
        status: c.status.as_str(),
        message: message.into(),
    }
}

/// A template as the API takes it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub name: Option<String>,
    /// MJML: `mj-section`s for the brand layout, a whole `<mjml>` document (its `mj-body`
    /// content is used), or a template file with `+++` front matter.
    pub mjml: Option<String>,
    pub subject: Option<String>,
    pub preheader: Option<String>,
    /// Copy a template of the library (`category/name`) instead of giving `mjml`.
    pub library_id: Option<String>,
}

/// A campaign as the API takes it (create: name, subject, from, template_id and audience
/// are required; update: any of them).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    pub name: Option<String>,
    pub subject: Option<String>,
    pub preheader: Option<String>,
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub template_id: Option<Id>,
    pub audience: Option<Audience>,
    pub track_opens: Option<bool>,
    pub track_clicks: Option<bool>,
    pub ab_test: Option<AbTest>,
    /// "HH:MM": send at that local time in each recipient's time zone ("" to turn it off).
    pub local_time: Option<String>,
}

/// Parses "HH:MM" (24-hour clock).
pub fn parse_local_time(s: &str) -> Option<(i8, i8)> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

/// The unix second at which `hh:mm` happens on `date` (a UTC calendar day) in the IANA
/// `zone`; UTC when the zone is unknown.
pub fn local_due(date: time::Date, (h, m): (i8, i8), zone: Option<&str>) -> i64 {
    let civil =
        jiff::civil::date(date.year() as i16, date.month() as i8, date.day() as i8).at(h, m, 0, 0);
    let tz = zone
        .and_then(|z| jiff::tz::TimeZone::get(z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    match civil.to_zoned(tz) {
        Ok(z) => z.timestamp().as_second(),
        Err(_) => date
            .with_hms(h as u8, m as u8, 0)
            .map(|d| d.assume_utc().unix_timestamp())
            .unwrap_or(0),
    }
}

/// The earliest instant a local-time campaign for `date` sends (the first zone, UTC+14).
pub fn local_start(date: time::Date, hm: (i8, i8)) -> OffsetDateTime {
    let utc = local_due(date, hm, None);
    OffsetDateTime::from_unix_timestamp(utc - 14 * 3600).unwrap_or_else(|_| now())
}

/// Resolves a saved segment to its members (the segments service plugs in here).
pub trait SegmentResolver: Send + Sync {
    /// `None` when the segment does not exist.
    fn members(&self, segment: Id) -> Result<Option<Vec<Id>>, String>;
}

pub struct Campaigns {
    store: Arc<Store>,
    brand: Result<Brand, TemplateError>,
    tracking_enabled: bool,
    segments: std::sync::RwLock<Option<Arc<dyn SegmentResolver>>>,
    wake: tokio::sync::Notify,
}

/// A compiled template with the body it came from.
fn source_of(t: &StoredTemplate, subject: &str, preheader: &str) -> TemplateSource {
    TemplateSource {
        subject: subject.to_string(),
        preheader: preheader.to_string(),
        body: t.mjml.clone(),
        body_line: 1,
        reason: None,
    }
}

/// Splits what a user pasted into (body, line of the body, subject, preheader): a template
/// file with front matter, a whole MJML document, or body sections.
fn parse_mjml(name: &str, text: &str) -> Result<(String, Option<String>, Option<String>)> {
    if text.trim_start().starts_with("+++") {
        let t =
            templates::library::parse(&format!("custom/{name}"), text.trim_start())?.standalone();
        return Ok((t.body, Some(t.subject), Some(t.preheader)));
    }
    if let Some(start) = text.find("<mj-body") {
        let open_end = text[start..]
            .find('>')
            .map(|i| start + i + 1)
            .ok_or_else(|| invalid("mjml", "the <mj-body> tag is not closed"))?;
        let close = text
            .rfind("</mj-body>")
            .filter(|c| *c >= open_end)
            .ok_or_else(|| invalid("mjml", "<mj-body> has no matching </mj-body>"))?;
        // keep line numbers: blank out what comes before the body instead of cutting it
        let before: String = text[..open_end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        return Ok((format!("{before}{}", &text[open_end..close]), None, None));
    }
    Ok((text.to_string(), None, None))
}

/// What a stored template is validated with: a sample contact and what a campaign provides.
fn preview_sample() -> templates::Sample {
    templates::Sample {
        contact: templates::ContactVars {
            email: "ada@example.com".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            company: "Analytical Engines Ltd".into(),
            ..Default::default()
        },
        campaign: serde_json::json!({"id": 0, "name": "Preview"}),
        data: serde_json::json!({}),
    }
}

impl Campaigns {
    pub fn new(store: Arc<Store>, settings: &crate::config::Settings) -> Campaigns {
        Campaigns {
            store,
            brand: Brand::from_settings(settings),
            tracking_enabled: settings.tracking_enabled,
            segments: std::sync::RwLock::new(None),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn set_segments(&self, r: Arc<dyn SegmentResolver>) {
        if let Ok(mut s) = self.segments.write() {
            *s = Some(r);
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn tracking_enabled(&self) -> bool {
        self.tracking_enabled
    }

    fn brand(&self) -> Result<&Brand> {
        self.brand.as_ref().map_err(|e| e.clone().into())
    }

    /// Compiles a template as bulk mail with the brand (footer, postal address, unsubscribe
    /// link enforced) and validates it with sample data: every error located.
    pub fn compile(&self, source: &TemplateSource) -> Result<CompiledTemplate> {
        let compiled = templates::compile(source, self.brand()?, Kind::Bulk)?;
        compiled.validate(&preview_sample())?;
        Ok(compiled)
    }

    // ---- templates ----

    pub fn templates(&self, actor: &Actor) -> Result<Vec<StoredTemplate>> {
        actor.check_campaigns(Action::Read)?;
        Ok(self.store.templates()?)
    }

    pub fn template(&self, actor: &Actor, id: Id) -> Result<StoredTemplate> {
        actor.check_campaigns(Action::Read)?;
        self.store
            .template(id)?
            .ok_or(CampaignError::NotFound("template"))
    }

    fn template_from_input(
        &self,
        input: &TemplateInput,
        mut t: StoredTemplate,
    ) -> Result<StoredTemplate> {
        if let Some(lib) = &input.library_id {
            let l = templates::library::get(lib)
                .ok_or_else(|| invalid("library_id", format!("no library template '{lib}'")))??;
            let src = l.standalone();
            t.mjml = src.body;
            t.subject = src.subject;
            t.preheader = src.preheader;
            t.library_id = Some(lib.clone());
            if t.name.is_empty() {
                t.name = l.name;
            }
        }
        if let Some(name) = &input.name {
            t.name = name.trim().to_string();
        }
        if let Some(mjml) = &input.mjml {
            let (body, subject, preheader) = parse_mjml(&t.name, mjml)?;
            t.mjml = body;
            if let Some(s) = subject {
                t.subject = s;
            }
            if let Some(p) = preheader {
                t.preheader = p;
            }
        }
        if let Some(s) = &input.subject {
            t.subject = s.clone();
        }
        if let Some(p) = &input.preheader {
            t.preheader = p.clone();
        }
        if t.name.is_empty() {
            return Err(invalid("name", "a template needs a name"));
        }
        if t.name.chars().count() > 200 {
            return Err(invalid("name", "at most 200 characters"));
        }
        if t.mjml.trim().is_empty() {
            return Err(invalid(
                "mjml",
                "give the template's MJML (or a library_id to copy)",
            ));
        }
        if t.mjml.len() > 512 * 1024 {
            return Err(invalid("mjml", "the template is larger than 512 KiB"));
        }
        let subject = if t.subject.trim().is_empty() {
            "(subject set by the campaign)"
        } else {
            t.subject.as_str()
        };
        self.compile(&source_of(&t, subject, &t.preheader))?;
        Ok(t)
    }

    pub fn create_template(&self, actor: &Actor, input: &TemplateInput) -> Result<StoredTemplate> {
        actor.check_campaigns(Action::Create)?;
        let at = now();
        let t = StoredTemplate {
            id: 0,
            name: String::new(),
            mjml: String::new(),
            subject: String::new(),
            preheader: String::new(),
            library_id: None,
            created_by: actor.default_owner(),
            created_at: at,
            updated_at: at,
        };
        let t = self.template_from_input(input, t)?;
        self.store.write(|wtx| {
            let t = cstore::put_template_in(wtx, t)?;
            audit::Entry::new(actor, AuditAction::Create, audit::record("template", t.id))
                .changes(audit::Changes::of(None, Some(&t)))
                .append(wtx)?;
            Ok::<_, CampaignError>(t)
        })
    }

    pub fn update_template(
        &self,
        actor: &Actor,
        id: Id,
        input: &TemplateInput,
    ) -> Result<StoredTemplate> {
        actor.check_campaigns(Action::Update)?;
        let before = self
            .store
            .template(id)?
            .ok_or(CampaignError::NotFound("template"))?;
        let mut t = self.template_from_input(input, before.clone())?;
        t.updated_at = now();
        self.store.write(|wtx| {
            let t = cstore::put_template_in(wtx, t)?;
            audit::Entry::new(actor, AuditAction::Update, audit::record("template", id))
                .changes(audit::Changes::of(Some(&before), Some(&t)))
                .append(wtx)?;
            Ok::<_, CampaignError>(t)
        })
    }

    pub fn delete_template(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.check_campaigns(Action::Delete)?;
        let before = self
            .store
            .template(id)?
            .ok_or(CampaignError::NotFound("template"))?;
        if let Some(c) = self.store.campaigns()?.into_iter().find(|c| {
            c.template_id == id
                && matches!(
                    c.status,
                    CampaignStatus::Draft
                        | CampaignStatus::Scheduled
                        | CampaignStatus::Sending
                        | CampaignStatus::Paused
                )
        }) {
            return Err(invalid(
                "id",
                format!(
                    "campaign {} ({}) still uses this template",
                    c.id,
                    c.status.as_str()
                ),
            ));
        }
        self.store.write(|wtx| {
            cstore::delete_template_in(wtx, id)?;
            audit::Entry::new(actor, AuditAction::Delete, audit::record("template", id))
                .changes(audit::Changes::of(Some(&before), None))
                .append(wtx)?;
            Ok::<_, CampaignError>(())
        })
    }

    /// Renders a stored template for a preview (sample contact unless one is given).
    pub fn preview_template(
        &self,
        actor: &Actor,
        id: Id,
        contact: Option<templates::ContactVars>,
    ) -> Result<templates::Rendered> {
        let t = self.template(actor, id)?;
        let subject = if t.subject.is_empty() {
            "Preview"
        } else {
            &t.subject
        };
        let compiled = self.compile(&source_of(&t, subject, &t.preheader))?;
        let contact = contact.unwrap_or_else(|| templates::ContactVars {
            email: "ada@example.com".into(),
            first_name: "Ada".into(),
            ..Default::default()
        });
        let links: Arc<dyn templates::LinkBuilder> = Arc::new(templates::PlainLinks {
            base_url: "https://mailstead.invalid".into(),
        });
        Ok(compiled.render(
            &templates::Recipient {
                contact: &contact,
                data: &serde_json::json!({}),
                target: templates::LinkTarget::default(),
            },
            &minijinja::Value::from_serialize(serde_json::json!({"id": 0, "name": "Preview"})),
            &links,
        )?)
    }

    // ---- campaigns ----

    pub fn list(&self, actor: &Actor) -> Result<Vec<Campaign>> {
        actor.check_campaigns(Action::Read)?;
        let mut all = self.store.campaigns()?;
        all.reverse();
        Ok(all)
    }

    pub fn get(&self, actor: &Actor, id: Id) -> Result<Campaign> {
        actor.check_campaigns(Action::Read)?;
        self.store
            .campaign(id)?
            .ok_or(CampaignError::NotFound("campaign"))
    }

    fn check_audience(&self, a: &Audience) -> Result<()> {
        let kinds = usize::from(!a.lists.is_empty())
            + usize::from(a.segment.is_some())
            + usize::from(a.non_openers_of.is_some());
        if kinds != 1 {
            return Err(invalid(
                "audience",
                "give exactly one of {\"lists\": [ids]}, {\"segment\": id} or {\"non_openers_of\": campaign id}",
            ));
        }
        for l in &a.lists {
            if self.store.list(*l)?.is_none() {
                return Err(invalid(
                    "audience.lists",
                    format!("list {l} does not exist"),
                ));
            }
        }
        if let Some(s) = a.segment
            && self.segment_members(s)?.is_none()
        {
            return Err(invalid(
                "audience.segment",
                format!("segment {s} does not exist"),
            ));
        }
        if let Some(c) = a.non_openers_of {
            match self.store.campaign(c)? {
                None => {
                    return Err(invalid(
                        "audience.non_openers_of",
                        format!("campaign {c} does not exist"),
                    ));
                }
                Some(c) if c.queued == 0 => {
                    return Err(invalid(
                        "audience.non_openers_of",
                        format!("campaign {} has not sent anything yet", c.id),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn segment_members(&self, id: Id) -> Result<Option<Vec<Id>>> {
        let r = self.segments.read().ok().and_then(|s| s.clone());
        match r {
            Some(r) => r.members(id).map_err(|e| invalid("audience.segment", e)),
            None => Ok(None),
        }
    }

    fn apply_input(&self, c: &mut Campaign, input: &CampaignInput) -> Result<()> {
        if let Some(v) = &input.name {
            c.name = v.trim().to_string();
        }
        if let Some(v) = &input.subject {
            c.subject = v.trim().to_string();
        }
        if let Some(v) = &input.preheader {
            c.preheader = v.trim().to_string();
        }
        if let Some(v) = &input.from {
            c.from = v.trim().to_string();
        }
        if let Some(v) = &input.reply_to {
            c.reply_to = (!v.trim().is_empty()).then(|| v.trim().to_string());
        }
        if let Some(v) = input.template_id {
            c.template_id = v;
        }
        if let Some(v) = &input.audience {
            c.audience = v.clone();
        }
        if let Some(v) = input.track_opens {
            c.track_opens = v;
        }
        if let Some(v) = input.track_clicks {
            c.track_clicks = v;
        }
        if let Some(v) = &input.ab_test {
            c.ab_test = Some(v.clone());
        }
        if let Some(v) = &input.local_time {
            c.local_time = (!v.trim().is_empty()).then(|| v.trim().to_string());
        }
        if let Some(t) = &c.local_time
            && parse_local_time(t).is_none()
        {
            return Err(invalid(
                "local_time",
                format!("'{t}' is not a time of day such as 09:30 (24-hour HH:MM)"),
            ));
        }
        if c.name.is_empty() {
            return Err(invalid("name", "a campaign needs a name"));
        }
        if c.subject.is_empty() {
            return Err(invalid("subject", "a campaign needs a subject"));
        }
        if c.subject.chars().any(|ch| ch == '\r' || ch == '\n') {
            return Err(invalid("subject", "the subject contains a line break"));
        }
        compose::parse_mailbox("from", &c.from)?;
        if let Some(r) = &c.reply_to {
            compose::parse_mailbox("reply_to", r)?;
        }
        if self.store.template(c.template_id)?.is_none() {
            return Err(invalid(
                "template_id",
                format!("template {} does not exist", c.template_id),
            ));
        }
        self.check_audience(&c.audience)?;
        // the subject and preheader are the campaign's own text: located errors now (the
        // template and brand are checked again when sending is asked for)
        if let Err(CampaignError::Template(e)) = self.check_sendable(c)
            && matches!(
                e.part,
                templates::Part::Subject | templates::Part::Preheader
            )
        {
            return Err(e.into());
        }
        if let Some(ab) = &mut c.ab_test {
            if ab.subjects.len() < 2 || ab.subjects.len() > 5 {
                return Err(invalid("ab_test.subjects", "give 2 to 5 subject lines"));
            }
            if ab
                .subjects
                .iter()
                .any(|s| s.trim().is_empty() || s.contains('\n'))
            {
                return Err(invalid(
                    "ab_test.subjects",
                    "subject lines must be non-empty single lines",
                ));
            }
            if !(2..=50).contains(&ab.sample_percent) {
                return Err(invalid(
                    "ab_test.sample_percent",
                    "the test sample is 2 to 50 percent of the audience",
                ));
            }
            if !(1..=10_080).contains(&ab.wait_minutes) {
                return Err(invalid(
                    "ab_test.wait_minutes",
                    "wait between 1 minute and 7 days before choosing the winner",
                ));
            }
            if ab.metric != "opens" && ab.metric != "clicks" {
                return Err(invalid(
                    "ab_test.metric",
                    "the winner is chosen by \"opens\" or \"clicks\"",
                ));
            }
            ab.winner = None;
            ab.sample_done_at = None;
        }
        Ok(())
    }

    /// A draft with nothing chosen yet.
    fn blank(&self, actor: &Actor) -> Campaign {
        let at = now();
        Campaign {
            id: 0,
            name: String::new(),
            subject: String::new(),
            preheader: String::new(),
            from: String::new(),
            reply_to: None,
            template_id: 0,
            audience: Audience {
                lists: vec![],
                segment: None,
                non_openers_of: None,
            },
            status: CampaignStatus::Draft,
            track_opens: true,
            track_clicks: true,
            ab_test: None,
            local_time: None,
            scheduled_at: None,
            started_at: None,
            finished_at: None,
            audience_size: 0,
            cursor: 0,
            queued: 0,
            skipped: 0,
            last_error: None,
            created_by: actor.default_owner(),
            created_at: at,
            updated_at: at,
        }
    }

    pub fn create(&self, actor: &Actor, input: &CampaignInput) -> Result<Campaign> {
        actor.check_campaigns(Action::Create)?;
        let mut c = self.blank(actor);
        for (field, missing) in [
            ("name", input.name.is_none()),
            ("subject", input.subject.is_none()),
            ("from", input.from.is_none()),
            ("template_id", input.template_id.is_none()),
            ("audience", input.audience.is_none()),
        ] {
            if missing {
                return Err(invalid(field, "is required"));
            }
        }
        self.apply_input(&mut c, input)?;
        self.store.write(|wtx| {
            let c = cstore::put_campaign_in(wtx, c)?;
            audit::Entry::new(actor, AuditAction::Create, audit::record("campaign", c.id))
                .changes(audit::Changes::of(None, Some(&c)))
                .append(wtx)?;
            Ok::<_, CampaignError>(c)
        })
    }

    /// Changes a draft or scheduled campaign.
    pub fn update(&self, actor: &Actor, id: Id, input: &CampaignInput) -> Result<Campaign> {
        actor.check_campaigns(Action::Update)?;
        let mut before = None;
        self.store.update_campaign(id, |wtx, mut c| {
            if !matches!(c.status, CampaignStatus::Draft | CampaignStatus::Scheduled) {
                return Err(state(
                    &c,
                    "only draft and scheduled campaigns can be edited",
                ));
            }
            before = Some(c.clone());
            self.apply_input(&mut c, input)?;
            c.updated_at = now();
            audit::Entry::new(actor, AuditAction::Update, audit::record("campaign", id))
                .changes(audit::Changes::of(before.as_ref(), Some(&c)))
                .append(wtx)?;
            Ok(c)
        })
    }

    pub fn delete(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.check_campaigns(Action::Delete)?;
        self.store.write(|wtx| {
            let c = cstore::campaign_in(wtx, id)?.ok_or(CampaignError::NotFound("campaign"))?;
            if matches!(c.status, CampaignStatus::Sending | CampaignStatus::Paused) {
                return Err(state(&c, "cancel it before deleting it"));
            }
            if c.queued > 0 {
                return Err(state(
                    &c,
                    "a campaign that sent mail is kept for its report",
                ));
            }
            cstore::delete_campaign_in(wtx, id)?;
            audit::Entry::new(actor, AuditAction::Delete, audit::record("campaign", id))
                .changes(audit::Changes::of(Some(&c), None))
                .append(wtx)?;
            Ok(())
        })
    }

    /// Everything that must hold before a campaign may send: the template compiles as bulk
    /// mail (footer with postal address and unsubscribe link), every subject renders.
    pub fn check_sendable(&self, c: &Campaign) -> Result<CompiledTemplate> {
        let t = self
            .store
            .template(c.template_id)?
            .ok_or_else(|| invalid("template_id", "the campaign's template was deleted"))?;
        let compiled = self.compile(&source_of(&t, &c.subject, &c.preheader))?;
        if let Some(ab) = &c.ab_test {
            for s in &ab.subjects {
                self.compile(&source_of(&t, s, &c.preheader))?;
            }
        }
        Ok(compiled)
    }

    /// The contacts a campaign goes to, in a stable order, before per-recipient checks.
    fn resolve_audience(&self, c: &Campaign) -> Result<Vec<Id>> {
        let a = &c.audience;
        let mut ids: Vec<Id> = if let Some(s) = a.segment {
            self.segment_members(s)?
                .ok_or_else(|| invalid("audience.segment", format!("segment {s} does not exist")))?
        } else if let Some(prev) = a.non_openers_of {
            let opened: std::collections::HashSet<Id> = self
                .store
                .track_firsts(prev)?
                .into_iter()
                .filter(|(_, k, _)| *k == cstore::FIRST_OPEN || *k == cstore::FIRST_CLICK)
                .map(|(m, _, _)| m)
                .collect();
            self.store
                .campaign_messages(prev)?
                .into_iter()
                .filter(|(m, _, _)| !opened.contains(m))
                .map(|(_, contact, _)| contact)
                .collect()
        } else {
            let mut all = Vec::new();
            for l in &a.lists {
                all.extend(self.store.list_subscriber_ids(*l)?);
            }
            all
        };
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// (contact, due) in sending order: all due at once, or at the campaign's local time in
    /// each contact's zone (attribute `timezone`), earliest first.
    fn with_due_times(&self, c: &Campaign, ids: Vec<Id>) -> Result<Vec<(Id, i64)>> {
        let Some(hm) = c.local_time.as_deref().and_then(parse_local_time) else {
            return Ok(ids.into_iter().map(|id| (id, 0)).collect());
        };
        let date = c.scheduled_at.unwrap_or_else(now).date();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(5_000) {
            for contact in self.store.contacts(chunk)? {
                let zone = contact.attributes.get("timezone").and_then(|v| v.as_str());
                out.push((contact.id, local_due(date, hm, zone)));
            }
        }
        out.sort_by_key(|(id, due)| (*due, *id));
        Ok(out)
    }

    /// How many contacts an audience reaches now: its members, less the suppressed (what the
    /// editor shows while it is being chosen; the campaign fixes its audience at start).
    pub fn audience_count(&self, actor: &Actor, audience: &Audience) -> Result<u64> {
        actor.check_campaigns(Action::Read)?;
        self.check_audience(audience)?;
        let probe = Campaign {
            audience: audience.clone(),
            ..self.blank(actor)
        };
        let ids = self.resolve_audience(&probe)?;
        let mut n = 0;
        for chunk in ids.chunks(5_000) {
            let contacts = self.store.contacts(chunk)?;
            let emails: Vec<&str> = contacts.iter().map(|c| c.email.as_str()).collect();
            let suppressed = self.store.suppressed_among(&emails)?;
            n += contacts
                .iter()
                .filter(|c| !suppressed.contains(&c.email))
                .count() as u64;
        }
        Ok(n)
    }

    /// Starts sending now (from draft, or a scheduled campaign early).
    pub fn start(&self, actor: &Actor, id: Id) -> Result<Campaign> {
        actor.check_campaigns(Action::Update)?;
        let c = self.get(actor, id)?;
        if !matches!(c.status, CampaignStatus::Draft | CampaignStatus::Scheduled) {
            return Err(state(
                &c,
                "only a draft or scheduled campaign can be started",
            ));
        }
        self.begin(actor, id)
    }

    /// Takes the audience snapshot and moves the campaign to `sending` (one transaction).
    pub(crate) fn begin(&self, actor: &Actor, id: Id) -> Result<Campaign> {
        let c = self
            .store
            .campaign(id)?
            .ok_or(CampaignError::NotFound("campaign"))?;
        self.check_sendable(&c)?;
        self.check_audience(&c.audience)?;
        let audience = self.with_due_times(&c, self.resolve_audience(&c)?)?;
        let c = self.store.update_campaign(id, |wtx, mut c| {
            if !matches!(c.status, CampaignStatus::Draft | CampaignStatus::Scheduled) {
                return Err(state(
                    &c,
                    "only a draft or scheduled campaign can be started",
                ));
            }
            let before = c.clone();
            c.audience_size = cstore::snapshot_audience_in(wtx, id, &audience)?;
            c.cursor = 0;
            c.status = CampaignStatus::Sending;
            c.started_at = Some(now());
            c.updated_at = now();
            audit::Entry::new(actor, AuditAction::Update, audit::record("campaign", id))
                .changes(audit::Changes::of(Some(&before), Some(&c)))
                .detail("start")
                .append(wtx)?;
            Ok(c)
        })?;
        self.wake.notify_one();
        Ok(c)
    }

    pub fn schedule(&self, actor: &Actor, id: Id, at: OffsetDateTime) -> Result<Campaign> {
        actor.check_campaigns(Action::Update)?;
        let c = self.get(actor, id)?;
        let hm = c.local_time.as_deref().and_then(parse_local_time);
        if let Some(hm) = hm
            && local_due(at.date(), hm, None) + 12 * 3600 < now().unix_timestamp()
        {
            return Err(invalid(
                "at",
                format!(
                    "{} has passed in every time zone; give a later day",
                    at.date()
                ),
            ));
        }
        if hm.is_none() && at <= now() {
            return Err(invalid(
                "at",
                format!(
                    "{at} is in the past; give a future time (RFC 3339, e.g. 2030-01-31T09:00:00Z)"
                ),
            ));
        }
        self.check_sendable(&c)?;
        let c = self.transition(
            actor,
            id,
            "schedule",
            &[CampaignStatus::Draft, CampaignStatus::Scheduled],
            CampaignStatus::Scheduled,
            |c| c.scheduled_at = Some(at),
        )?;
        self.wake.notify_one();
        Ok(c)
    }

    pub fn pause(&self, actor: &Actor, id: Id) -> Result<Campaign> {
        self.transition(
            actor,
            id,
            "pause",
            &[CampaignStatus::Sending],
            CampaignStatus::Paused,
            |_| {},
        )
    }

    pub fn resume(&self, actor: &Actor, id: Id) -> Result<Campaign> {
        let c = self.transition(
            actor,
            id,
            "resume",
            &[CampaignStatus::Paused],
            CampaignStatus::Sending,
            |_| {},
        )?;
        self.wake.notify_one();
        Ok(c)
    }

    pub fn cancel(&self, actor: &Actor, id: Id) -> Result<Campaign> {
        self.transition(
            actor,
            id,
            "cancel",
            &[
                CampaignStatus::Draft,
                CampaignStatus::Scheduled,
                CampaignStatus::Sending,
                CampaignStatus::Paused,
            ],
            CampaignStatus::Cancelled,
            |c| c.finished_at = Some(now()),
        )
    }

    fn transition(
        &self,
        actor: &Actor,
        id: Id,
        verb: &str,
        from: &[CampaignStatus],
        to: CampaignStatus,
        also: impl FnOnce(&mut Campaign),
    ) -> Result<Campaign> {
        actor.check_campaigns(Action::Update)?;
        self.store.update_campaign(id, |wtx, mut c| {
            if !from.contains(&c.status) {
                let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
                return Err(state(
                    &c,
                    format!(
                        "only a campaign that is {} can {verb}",
                        allowed.join(" or ")
                    ),
                ));
            }
            let before = c.clone();
            c.status = to;
            c.updated_at = now();
            also(&mut c);
            audit::Entry::new(actor, AuditAction::Update, audit::record("campaign", id))
                .changes(audit::Changes::of(Some(&before), Some(&c)))
                .detail(verb)
                .append(wtx)?;
            Ok(c)
        })
    }

    /// Wakes the sender (a campaign started or resumed).
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_mjml_keeps_its_line_numbers() {
        let doc = "<mjml>\n<mj-body>\n<mj-section><mj-column><mj-text>Hi</mj-text></mj-column></mj-section>\n</mj-body>\n</mjml>";
        let (body, subject, _) = parse_mjml("x", doc).unwrap();
        assert!(subject.is_none());
        assert_eq!(
            body.lines().nth(2).map(str::trim_start),
            Some("<mj-section><mj-column><mj-text>Hi</mj-text></mj-column></mj-section>")
        );
        assert!(!body.contains("<mj-body"));
        let (body, _, _) = parse_mjml("x", "<mj-section></mj-section>").unwrap();
        assert_eq!(body, "<mj-section></mj-section>");
        assert!(parse_mjml("x", "<mjml><mj-body><mj-section>").is_err());
        let file = "+++\nname = \"Hello\"\nkind = \"bulk\"\nsubject = \"Hi there\"\n+++\n<mj-section></mj-section>\n";
        let (body, subject, _) = parse_mjml("x", file).unwrap();
        assert_eq!(subject.as_deref(), Some("Hi there"));
        assert!(body.contains("<mj-section>"));
    }

    #[test]
    fn every_library_template_copies_into_a_valid_campaign_template() {
        let brand = Brand::sample();
        for t in templates::library::all() {
            let t = t.unwrap_or_else(|(p, e)| panic!("{p}: {e}"));
            let src = t.standalone();
            let subject = if src.subject.trim().is_empty() {
                "x".to_string()
            } else {
                src.subject.clone()
            };
            let src = TemplateSource { subject, ..src };
            templates::compile(&src, &brand, Kind::Bulk)
                .and_then(|c| c.validate(&preview_sample()))
                .unwrap_or_else(|e| panic!("{}: {e}", t.id));
            assert_eq!(
                src.body.lines().count(),
                t.source.body.lines().count(),
                "{}: line numbers kept",
                t.id
            );
        }
        let s = templates::Sample {
            campaign: serde_json::json!({"name": "kept", "url": "https://x.example/a\"b", "n": 3, "items": [{"a": null}]}),
            data: serde_json::json!({"when": "Monday", "list": ["a", "b"]}),
            ..Default::default()
        };
        assert_eq!(
            templates::library::inline_sample(
                "campaign.url {{ tracked(campaign.url) }} {{ campaign.name }} {{ campaign.urls }} {% for i in campaign.items %}{{ data.when }}{% endfor %} {{ x.campaign.n }} {{ data.list[1] | upper }}",
                &s
            ),
            r#"campaign.url {{ tracked("https://x.example/a\"b") }} {{ campaign.name }} {{ campaign.urls }} {% for i in [{"a": none}] %}{{ "Monday" }}{% endfor %} {{ x.campaign.n }} {{ "b" | upper }}"#
        );
    }
}

#[cfg(test)]
mod local_time_tests {
    use super::*;

    #[test]
    fn local_send_times_follow_each_zone() {
        let date = time::macros::date!(2026 - 07 - 10);
        let nine = parse_local_time("09:00").unwrap();
        // 09:00 in Berlin in July is 07:00 UTC (CEST); in New York 13:00 UTC (EDT)
        let utc9 = time::macros::datetime!(2026-07-10 09:00 UTC).unix_timestamp();
        assert_eq!(
            local_due(date, nine, Some("Europe/Berlin")),
            utc9 - 2 * 3600
        );
        assert_eq!(
            local_due(date, nine, Some("America/New_York")),
            utc9 + 4 * 3600
        );
        assert_eq!(local_due(date, nine, None), utc9);
        assert_eq!(
            local_due(date, nine, Some("Mars/Olympus_Mons")),
            utc9,
            "unknown zone: UTC"
        );
        // winter: Berlin is UTC+1
        let jan = time::macros::date!(2026 - 01 - 15);
        let utc9_jan = time::macros::datetime!(2026-01-15 09:00 UTC).unix_timestamp();
        assert_eq!(local_due(jan, nine, Some("Europe/Berlin")), utc9_jan - 3600);
        assert_eq!(
            local_start(date, nine).unix_timestamp(),
            utc9 - 14 * 3600,
            "the first zone (UTC+14) starts the campaign"
        );
        for bad in ["9:00", "24:00", "09:60", "nine", "", "09:00:00"] {
            assert!(parse_local_time(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_local_time("23:59"), Some((23, 59)));
    }
}
