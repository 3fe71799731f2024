//! Lead scoring: configurable fit rules (job title, company size, industry, country) and
//! engagement weights (campaign opens, clicks on tracked links, sign-up form submissions) with
//! exponential decay, so a lead that engaged long ago cools down. A score comes with its
//! breakdown; the stored `score` of each lead is refreshed when the lead is saved and by the
//! appliance's hourly housekeeping (decay), so lists sort by it.

use super::model::Lead;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One fit rule: `points` when the lead's `field` matches. Text fields match with `equals`
/// (case-insensitive), `contains` (case-insensitive) or `any_of`; `company_size` (a number, or
/// the lower bound of a range such as "50-200") with `min`/`max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FitRule {
    /// `job_title`, `company_size`, `industry` or `country`.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    pub points: i32,
}

/// Points per engagement event, before decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EngagementWeights {
    pub open: f64,
    /// A click on a tracked link (a page visit through it).
    pub click: f64,
    /// A sign-up form submission.
    pub form: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoringRules {
    pub fit: Vec<FitRule>,
    pub engagement: EngagementWeights,
    /// Engagement loses half its points every this many days.
    pub half_life_days: u32,
}

impl Default for ScoringRules {
    /// Rules for a training and certification company: decision makers in learning and
    /// quality roles, mid-sized companies, regulated industries, the home markets.
    fn default() -> Self {
        let text = |field: &str, contains: &str, points| FitRule {
            field: field.into(),
            equals: None,
            contains: Some(contains.into()),
            any_of: vec![],
            min: None,
            max: None,
            points,
        };
        ScoringRules {
            fit: vec![
                text("job_title", "head", 15),
                text("job_title", "director", 15),
                text("job_title", "manager", 10),
                text("job_title", "training", 10),
                text("job_title", "quality", 5),
                FitRule {
                    field: "company_size".into(),
                    equals: None,
                    contains: None,
                    any_of: vec![],
                    min: Some(50),
                    max: Some(5000),
                    points: 15,
                },
                FitRule {
                    field: "industry".into(),
                    equals: None,
                    contains: None,
                    any_of: vec![
                        "finance".into(),
                        "healthcare".into(),
                        "manufacturing".into(),
                        "energy".into(),
                    ],
                    min: None,
                    max: None,
                    points: 10,
                },
                FitRule {
                    field: "country".into(),
                    equals: None,
                    contains: None,
                    any_of: vec!["DE".into(), "AT".into(), "CH".into(), "GB".into()],
                    min: None,
                    max: None,
                    points: 5,
                },
            ],
            engagement: EngagementWeights {
                open: 1.0,
                click: 4.0,
                form: 15.0,
            },
            half_life_days: 30,
        }
    }
}

const FIELDS: [&str; 4] = ["job_title", "company_size", "industry", "country"];

impl ScoringRules {
    /// Checks the rules; the message names the rule at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.fit.len() > 200 {
            return Err("at most 200 fit rules".into());
        }
        for (i, r) in self.fit.iter().enumerate() {
            if !FIELDS.contains(&r.field.as_str()) {
                return Err(format!(
                    "fit[{i}]: unknown field '{}' (one of {})",
                    r.field,
                    FIELDS.join(", ")
                ));
            }
            let numeric = r.min.is_some() || r.max.is_some();
            let textual = r.equals.is_some() || r.contains.is_some() || !r.any_of.is_empty();
            if numeric == textual {
                return Err(format!(
                    "fit[{i}]: give either min/max (company_size) or one of equals, contains, any_of"
                ));
            }
            if numeric && r.field != "company_size" {
                return Err(format!("fit[{i}]: min/max apply to company_size only"));
            }
            if !(-1000..=1000).contains(&r.points) {
                return Err(format!("fit[{i}]: points must be between -1000 and 1000"));
            }
        }
        let w = &self.engagement;
        for (name, v) in [("open", w.open), ("click", w.click), ("form", w.form)] {
            if !v.is_finite() || !(0.0..=1000.0).contains(&v) {
                return Err(format!("engagement.{name} must be between 0 and 1000"));
            }
        }
        if !(1..=3650).contains(&self.half_life_days) {
            return Err("half_life_days must be between 1 and 3650".into());
        }
        Ok(())
    }
}

/// What a lead did, as far as the appliance saw it.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub opens: u64,
    pub last_open: Option<OffsetDateTime>,
    pub clicks: u64,
    pub last_click: Option<OffsetDateTime>,
    /// When the person submitted a sign-up form.
    pub forms: Vec<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScorePart {
    /// `fit: job_title contains "manager"`, `engagement: 3 clicks`, …
    pub rule: String,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Score {
    pub score: i64,
    pub fit: i64,
    pub engagement: i64,
    /// Points set by hand (a score written through the API).
    pub adjustment: i64,
    pub breakdown: Vec<ScorePart>,
}

/// The leading number of "250", "50-200", "1,000+".
fn size_of(s: &str) -> Option<u64> {
    let digits: String = s
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn describe(r: &FitRule) -> String {
    match (&r.equals, &r.contains, r.any_of.is_empty(), r.min, r.max) {
        (Some(v), _, _, _, _) => format!("fit: {} is \"{v}\"", r.field),
        (_, Some(v), _, _, _) => format!("fit: {} contains \"{v}\"", r.field),
        (_, _, false, _, _) => format!("fit: {} is one of {}", r.field, r.any_of.join(", ")),
        (_, _, _, min, max) => format!(
            "fit: {} between {} and {}",
            r.field,
            min.map_or("any".into(), |m| m.to_string()),
            max.map_or("any".into(), |m| m.to_string())
        ),
    }
}

fn matches(r: &FitRule, lead: &Lead) -> bool {
    let value = match r.field.as_str() {
        "job_title" => &lead.job_title,
        "company_size" => &lead.company_size,
        "industry" => &lead.industry,
        "country" => &lead.country,
        _ => return false,
    };
    if r.min.is_some() || r.max.is_some() {
        return size_of(value)
            .is_some_and(|n| r.min.is_none_or(|m| n >= m) && r.max.is_none_or(|m| n <= m));
    }
    let v = value.trim().to_lowercase();
    if v.is_empty() {
        return false;
    }
    if let Some(e) = &r.equals {
        return v == e.trim().to_lowercase();
    }
    if let Some(c) = &r.contains {
        return v.contains(&c.trim().to_lowercase());
    }
    r.any_of.iter().any(|a| a.trim().to_lowercase() == v)
}

/// The decay factor of an event `at` as of `now`.
fn decay(at: OffsetDateTime, now: OffsetDateTime, half_life_days: u32) -> f64 {
    let days = ((now - at).whole_seconds().max(0) as f64) / 86_400.0;
    0.5f64.powf(days / f64::from(half_life_days.max(1)))
}

/// Scores a lead with its breakdown.
pub fn score(lead: &Lead, rules: &ScoringRules, a: &Activity, now: OffsetDateTime) -> Score {
    let mut breakdown = Vec::new();
    let mut fit = 0i64;
    for r in &rules.fit {
        if matches(r, lead) {
            fit += i64::from(r.points);
            breakdown.push(ScorePart {
                rule: describe(r),
                points: f64::from(r.points),
            });
        }
    }
    let w = &rules.engagement;
    let mut engagement = 0f64;
    let mut add = |rule: String, points: f64| {
        if points >= 0.05 {
            let points = (points * 10.0).round() / 10.0;
            engagement += points;
            breakdown.push(ScorePart { rule, points });
        }
    };
    if let Some(at) = a.last_open {
        add(
            format!("engagement: {} opens, the last {}", a.opens, at.date()),
            w.open * a.opens as f64 * decay(at, now, rules.half_life_days),
        );
    }
    if let Some(at) = a.last_click {
        add(
            format!("engagement: {} clicks, the last {}", a.clicks, at.date()),
            w.click * a.clicks as f64 * decay(at, now, rules.half_life_days),
        );
    }
    for at in &a.forms {
        add(
            format!("engagement: form submitted {}", at.date()),
            w.form * decay(*at, now, rules.half_life_days),
        );
    }
    let engagement = engagement.round() as i64;
    let adjustment = lead.score_adjustment;
    if adjustment != 0 {
        breakdown.push(ScorePart {
            rule: "manual adjustment".into(),
            points: adjustment as f64,
        });
    }
    Score {
        score: fit
            .saturating_add(engagement)
            .saturating_add(adjustment)
            .clamp(0, 1_000_000),
        fit,
        engagement,
        adjustment,
        breakdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> Lead {
        Lead {
            job_title: "Head of Learning & Development".into(),
            company_size: "250-500".into(),
            industry: "Finance".into(),
            country: "de".into(),
            ..Lead::blank()
        }
    }

    #[test]
    fn fit_rules_add_up_with_their_breakdown() {
        let now = time::macros::datetime!(2026-12-01 00:00 UTC);
        let s = score(&lead(), &ScoringRules::default(), &Activity::default(), now);
        // head 15, size 15, finance 10, DE 5
        assert_eq!(s.fit, 45, "{s:?}");
        assert_eq!(s.engagement, 0);
        assert_eq!(s.score, 45);
        assert!(
            s.breakdown
                .iter()
                .any(|p| p.rule == "fit: job_title contains \"head\"")
        );
        let small = Lead {
            company_size: "12".into(),
            ..lead()
        };
        assert_eq!(
            score(&small, &ScoringRules::default(), &Activity::default(), now).fit,
            30
        );
        assert_eq!(
            score(
                &Lead::blank(),
                &ScoringRules::default(),
                &Activity::default(),
                now
            )
            .score,
            0
        );
    }

    #[test]
    fn engagement_decays_by_half_life() {
        let now = time::macros::datetime!(2026-12-01 00:00 UTC);
        let rules = ScoringRules::default();
        let fresh = Activity {
            clicks: 5,
            last_click: Some(now),
            forms: vec![now],
            ..Activity::default()
        };
        // 5 clicks × 4 + one form 15, no decay yet
        assert_eq!(score(&Lead::blank(), &rules, &fresh, now).engagement, 35);
        let month_old = Activity {
            clicks: 5,
            last_click: Some(now - time::Duration::days(30)),
            forms: vec![now - time::Duration::days(60)],
            ..Activity::default()
        };
        // half of 20, a quarter of 15
        assert_eq!(
            score(&Lead::blank(), &rules, &month_old, now).engagement,
            14
        );
    }

    #[test]
    fn bad_rules_are_named() {
        let mut r = ScoringRules::default();
        r.fit[0].field = "shoe_size".into();
        assert!(r.validate().unwrap_err().contains("fit[0]"));
        let mut r = ScoringRules::default();
        r.fit.push(FitRule {
            field: "industry".into(),
            equals: None,
            contains: None,
            any_of: vec![],
            min: Some(3),
            max: None,
            points: 1,
        });
        assert!(r.validate().unwrap_err().contains("company_size only"));
        let r = ScoringRules {
            half_life_days: 0,
            ..ScoringRules::default()
        };
        assert!(r.validate().is_err());
        assert!(ScoringRules::default().validate().is_ok());
    }
}
