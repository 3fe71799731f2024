//! The brand a template is dressed in (from settings), and the colour arithmetic that keeps
//! every text/background pair of the layout at WCAG AA contrast whatever colours are chosen.

use super::TemplateError;
use std::collections::BTreeMap;

/// Brand settings, read from `brand_*` options and `postal_address`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Brand {
    pub company_name: String,
    /// Physical postal address; lines separated by newlines or " | ".
    pub postal_address: String,
    pub logo_url: String,
    pub primary_color: Rgb,
    pub accent_color: Rgb,
    pub font_stack: String,
    /// (label, https URL) pairs shown as text links in the footer.
    pub social_links: Vec<(String, String)>,
    pub website: String,
    pub support_email: String,
    pub lang: String,
}

/// The option keys, their defaults and meaning; `config::OPTIONS` lists the same.
pub const DEFAULT_PRIMARY: &str = "#1d4e89";
pub const DEFAULT_ACCENT: &str = "#b45309";
pub const DEFAULT_FONTS: &str = "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";

impl Default for Brand {
    fn default() -> Self {
        Brand {
            company_name: String::new(),
            postal_address: String::new(),
            logo_url: String::new(),
            primary_color: Rgb::parse(DEFAULT_PRIMARY).unwrap_or(Rgb(29, 78, 137)),
            accent_color: Rgb::parse(DEFAULT_ACCENT).unwrap_or(Rgb(180, 83, 9)),
            font_stack: DEFAULT_FONTS.into(),
            social_links: Vec::new(),
            website: String::new(),
            support_email: String::new(),
            lang: "en".into(),
        }
    }
}

fn brand_err(key: &str, message: String) -> TemplateError {
    TemplateError::brand(key, message)
}

impl Brand {
    /// Builds the brand from raw setting values (key → value, as in `Settings::raw`). Every
    /// problem is reported with the setting's name.
    pub fn from_values(get: &dyn Fn(&str) -> String) -> Result<Brand, TemplateError> {
        let d = Brand::default();
        let text = |k: &str, max: usize| -> Result<String, TemplateError> {
            let v = get(k).trim().to_string();
            if v.chars().count() > max {
                return Err(brand_err(k, format!("{k} is longer than {max} characters")));
            }
            if v.chars().any(|c| c.is_control() && c != '\n') {
                return Err(brand_err(k, format!("{k} contains control characters")));
            }
            Ok(v)
        };
        let url = |k: &str| -> Result<String, TemplateError> {
            let v = text(k, 500)?;
            if !v.is_empty() && !is_web_url(&v) {
                return Err(brand_err(
                    k,
                    format!("{k} must be an https:// or http:// URL, not '{v}'"),
                ));
            }
            Ok(v)
        };
        let colour = |k: &str, default: Rgb| -> Result<Rgb, TemplateError> {
            let v = text(k, 20)?;
            if v.is_empty() {
                return Ok(default);
            }
            Rgb::parse(&v).ok_or_else(|| {
                brand_err(k, format!("{k} must be a colour like #1d4e89, not '{v}'"))
            })
        };
        let font_stack = match text("brand_font_stack", 200)? {
            f if f.is_empty() => d.font_stack.clone(),
            f if f
                .chars()
                .all(|c| c.is_alphanumeric() || " ,-_'\"".contains(c)) =>
            {
                f
            }
            f => {
                return Err(brand_err(
                    "brand_font_stack",
                    format!(
                        "brand_font_stack may hold font names, commas and quotes only, not '{f}'"
                    ),
                ));
            }
        };
        let mut social_links = Vec::new();
        for item in get("brand_social_links")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let Some((label, link)) = item.split_once('=') else {
                return Err(brand_err(
                    "brand_social_links",
                    format!("brand_social_links items look like LinkedIn=https://…, not '{item}'"),
                ));
            };
            let (label, link) = (label.trim(), link.trim());
            if label.is_empty() || label.chars().count() > 40 || !is_web_url(link) {
                return Err(brand_err(
                    "brand_social_links",
                    format!("brand_social_links: '{item}' needs a short label and an https:// URL"),
                ));
            }
            social_links.push((label.to_string(), link.to_string()));
        }
        let support_email = text("brand_support_email", 254)?;
        if !support_email.is_empty()
            && (support_email.contains(char::is_whitespace) || !support_email.contains('@'))
        {
            return Err(brand_err(
                "brand_support_email",
                format!("brand_support_email is not an email address: '{support_email}'"),
            ));
        }
        let lang = match text("brand_lang", 35)? {
            l if l.is_empty() => d.lang.clone(),
            l if l.split('-').all(|p| {
                !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric())
            }) =>
            {
                l
            }
            l => {
                return Err(brand_err(
                    "brand_lang",
                    format!("brand_lang must be a language tag such as en or en-GB, not '{l}'"),
                ));
            }
        };
        Ok(Brand {
            company_name: text("brand_company_name", 120)?,
            postal_address: text("postal_address", 400)?,
            logo_url: url("brand_logo_url")?,
            primary_color: colour("brand_primary_color", d.primary_color)?,
            accent_color: colour("brand_accent_color", d.accent_color)?,
            font_stack,
            social_links,
            website: url("brand_website")?,
            support_email,
            lang,
        })
    }

    /// The brand of the settings (`brand_*` options, `postal_address`).
    pub fn from_settings(s: &crate::config::Settings) -> Result<Brand, TemplateError> {
        Brand::from_values(&|k| s.raw.get(k).map(|(v, _)| v.clone()).unwrap_or_default())
    }

    /// A complete sample brand for previews and tests: a training company.
    pub fn sample() -> Brand {
        Brand {
            company_name: "Northbridge Professional Academy".into(),
            postal_address: "Northbridge Professional Academy Ltd\n14 Carver Street\nSheffield S1 4FS\nUnited Kingdom".into(),
            logo_url: "https://academy.example/brand/logo.png".into(),
            website: "https://academy.example".into(),
            support_email: "support@academy.example".into(),
            social_links: vec![
                ("LinkedIn".into(), "https://www.linkedin.com/company/northbridge-academy-example".into()),
                ("YouTube".into(), "https://www.youtube.com/@northbridge-academy-example".into()),
            ],
            ..Brand::default()
        }
    }

    /// The postal address as lines.
    pub fn address_lines(&self) -> Vec<&str> {
        self.postal_address
            .split(['\n', '|'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The colours the layout uses, each text colour checked against its background.
    pub fn palette(&self) -> Palette {
        let card = Rgb(255, 255, 255);
        let page = Rgb(241, 243, 246);
        let text = Rgb(31, 41, 55);
        let muted = Rgb(75, 85, 99);
        let dark_page = Rgb(15, 23, 42);
        let dark_card = Rgb(30, 41, 59);
        let dark_text = Rgb(226, 232, 240);
        let dark_muted = Rgb(203, 213, 225);
        // the button keeps the brand colour unless no text colour is readable on it
        let (button, on_button) = {
            let on = best_text_on(self.primary_color);
            if contrast(on, self.primary_color) >= AA {
                (self.primary_color, on)
            } else {
                (
                    ensure_contrast(self.primary_color, Rgb(255, 255, 255), AA),
                    Rgb(255, 255, 255),
                )
            }
        };
        let panel = mix(self.primary_color, card, 0.08);
        let dark_panel = mix(self.primary_color, dark_card, 0.25);
        Palette {
            page,
            card,
            text: ensure_contrast(text, panel, AA),
            muted: ensure_contrast(ensure_contrast(muted, page, AA), card, AA),
            link: ensure_contrast(ensure_contrast(self.primary_color, panel, AA), page, AA),
            accent_text: ensure_contrast(self.accent_color, card, AA),
            accent: self.accent_color,
            button,
            on_button,
            panel,
            rule: Rgb(209, 213, 219),
            dark_page,
            dark_card,
            dark_text: ensure_contrast(dark_text, dark_panel, AA),
            dark_muted: ensure_contrast(dark_muted, dark_page, AA),
            dark_link: ensure_contrast(
                ensure_contrast(
                    mix(self.primary_color, Rgb(255, 255, 255), 0.55),
                    dark_panel,
                    AA,
                ),
                dark_card,
                AA,
            ),
            dark_accent_text: ensure_contrast(
                mix(self.accent_color, Rgb(255, 255, 255), 0.45),
                dark_card,
                AA,
            ),
            dark_panel,
        }
    }
}

pub(crate) fn is_web_url(v: &str) -> bool {
    (v.starts_with("https://") || v.starts_with("http://"))
        && v.len() > 8
        && !v.contains(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
}

/// WCAG AA for normal text.
pub const AA: f64 = 4.5;

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rgb` or `#rrggbb`.
    pub fn parse(s: &str) -> Option<Rgb> {
        let h = s.trim().strip_prefix('#')?;
        let h: String = match h.len() {
            3 => h.chars().flat_map(|c| [c, c]).collect(),
            6 => h.to_string(),
            _ => return None,
        };
        let v = u32::from_str_radix(&h, 16).ok()?;
        Some(Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8))
    }

    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Relative luminance (WCAG 2.x).
    pub fn luminance(self) -> f64 {
        let ch = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * ch(self.0) + 0.7152 * ch(self.1) + 0.0722 * ch(self.2)
    }
}

/// Contrast ratio between two colours (1 to 21).
pub fn contrast(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// `a` blended into `b`: `share` of `a`.
pub fn mix(a: Rgb, b: Rgb, share: f64) -> Rgb {
    let m = |x: u8, y: u8| (x as f64 * share + y as f64 * (1.0 - share)).round() as u8;
    Rgb(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

fn best_text_on(bg: Rgb) -> Rgb {
    let (white, ink) = (Rgb(255, 255, 255), Rgb(17, 24, 39));
    if contrast(white, bg) >= contrast(ink, bg) {
        white
    } else {
        ink
    }
}

/// `fg` moved towards black or white (whichever the background needs) until it reaches
/// `min` contrast against `bg`.
pub fn ensure_contrast(fg: Rgb, bg: Rgb, min: f64) -> Rgb {
    if contrast(fg, bg) >= min {
        return fg;
    }
    let target = if bg.luminance() > 0.18 {
        Rgb(0, 0, 0)
    } else {
        Rgb(255, 255, 255)
    };
    (1..=20)
        .map(|i| mix(target, fg, i as f64 / 20.0))
        .find(|c| contrast(*c, bg) >= min)
        .unwrap_or(target)
}

/// Every colour of the layout, light and dark.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub page: Rgb,
    pub card: Rgb,
    pub text: Rgb,
    pub muted: Rgb,
    pub link: Rgb,
    pub accent: Rgb,
    pub accent_text: Rgb,
    pub button: Rgb,
    pub on_button: Rgb,
    pub panel: Rgb,
    pub rule: Rgb,
    pub dark_page: Rgb,
    pub dark_card: Rgb,
    pub dark_text: Rgb,
    pub dark_muted: Rgb,
    pub dark_link: Rgb,
    pub dark_accent_text: Rgb,
    pub dark_panel: Rgb,
}

impl Palette {
    /// Each (name, foreground, background) pair of text the layout shows.
    pub fn text_pairs(&self) -> Vec<(&'static str, Rgb, Rgb)> {
        vec![
            ("body text on card", self.text, self.card),
            ("body text on panel", self.text, self.panel),
            ("muted text on card", self.muted, self.card),
            ("footer text on page", self.muted, self.page),
            ("link on card", self.link, self.card),
            ("link on panel", self.link, self.panel),
            ("link on page (footer)", self.link, self.page),
            ("accent text on card", self.accent_text, self.card),
            ("button label", self.on_button, self.button),
            ("dark: body text on card", self.dark_text, self.dark_card),
            ("dark: body text on panel", self.dark_text, self.dark_panel),
            ("dark: footer text on page", self.dark_muted, self.dark_page),
            ("dark: muted text on card", self.dark_muted, self.dark_card),
            ("dark: link on card", self.dark_link, self.dark_card),
            ("dark: link on panel", self.dark_link, self.dark_panel),
            ("dark: link on page", self.dark_link, self.dark_page),
            (
                "dark: accent text on card",
                self.dark_accent_text,
                self.dark_card,
            ),
        ]
    }
}

/// Sample-brand values by option key, for tests.
pub fn sample_values() -> BTreeMap<&'static str, String> {
    let b = Brand::sample();
    BTreeMap::from([
        ("brand_company_name", b.company_name),
        ("postal_address", b.postal_address),
        ("brand_logo_url", b.logo_url),
        ("brand_website", b.website),
        ("brand_support_email", b.support_email),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_ratios_match_the_wcag_formula() {
        let w = Rgb(255, 255, 255);
        let k = Rgb(0, 0, 0);
        assert!((contrast(w, k) - 21.0).abs() < 1e-9);
        assert!((contrast(w, w) - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known 4.54:1
        let g = Rgb::parse("#767676").unwrap();
        assert!((contrast(g, w) - 4.54).abs() < 0.01, "{}", contrast(g, w));
    }

    #[test]
    fn every_text_pair_meets_aa_for_the_defaults_and_for_awkward_brand_colours() {
        for (primary, accent) in [
            (DEFAULT_PRIMARY, DEFAULT_ACCENT),
            ("#facc15", "#fde047"), // yellow: unreadable as text on white
            ("#22d3ee", "#a3e635"),
            ("#000000", "#ffffff"),
            ("#ffffff", "#000000"),
            ("#7c3aed", "#db2777"),
        ] {
            let b = Brand {
                primary_color: Rgb::parse(primary).unwrap(),
                accent_color: Rgb::parse(accent).unwrap(),
                ..Brand::default()
            };
            for (what, fg, bg) in b.palette().text_pairs() {
                let r = contrast(fg, bg);
                assert!(
                    r >= AA,
                    "{primary}/{accent}: {what} {} on {} is {r:.2}:1",
                    fg.hex(),
                    bg.hex()
                );
            }
        }
        // the default brand colour itself is used as is for links and the button
        let p = Brand::default().palette();
        assert_eq!(p.button.hex(), DEFAULT_PRIMARY);
        assert_eq!(p.link.hex(), DEFAULT_PRIMARY);
    }

    #[test]
    fn brand_values_are_validated_with_the_setting_named() {
        let mut v = sample_values();
        v.insert("brand_primary_color", "blue".into());
        let e = Brand::from_values(&|k| v.get(k).cloned().unwrap_or_default()).unwrap_err();
        assert!(e.to_string().contains("brand_primary_color"), "{e}");
        let mut v = sample_values();
        v.insert("brand_logo_url", "javascript:alert(1)".into());
        assert!(Brand::from_values(&|k| v.get(k).cloned().unwrap_or_default()).is_err());
        let mut v = sample_values();
        v.insert(
            "brand_social_links",
            "LinkedIn=https://l.example/x, YouTube=https://y.example".into(),
        );
        let b = Brand::from_values(&|k| v.get(k).cloned().unwrap_or_default()).unwrap();
        assert_eq!(b.social_links.len(), 2);
        assert_eq!(b.address_lines().len(), 4);
        assert_eq!(b.lang, "en");
    }
}
