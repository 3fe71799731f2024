//! The shared brand layout: head (colour scheme, dark mode, type scale), the brand header and
//! the footer the engine owns. Brand values are inserted escaped for both HTML and the
//! template language; the per-recipient values are placeholders (`Tags`).

use super::brand::{Brand, Palette};
use super::{Kind, Tags};

/// Escapes text for MJML/HTML and keeps braces from being read as template syntax.
pub(crate) fn esc(s: &str) -> String {
    super::attr_escape(s)
        .replace('{', "&#123;")
        .replace('}', "&#125;")
}

/// The class the footer section carries; templates may not mention it.
pub(crate) const FOOTER_CLASS: &str = "ms-footer";

/// What goes before the template's body.
pub(crate) fn head(brand: &Brand, tags: &mut Tags) -> String {
    let p = brand.palette();
    let font = esc(&brand.font_stack);
    let lang = esc(&brand.lang);
    let title = tags.layout("{{ subject }}");
    let preview = tags.layout("{{ preheader }}");
    // invisible padding so clients do not pull body text into the inbox preview
    let filler = "\u{034f}\u{200c}\u{a0}".repeat(40);
    let style = style(&p);
    let header = header(brand, &p);
    format!(
        r##"<mjml lang="{lang}" dir="ltr">
<mj-head>
<mj-title>{title}</mj-title>
<mj-preview>{preview}{filler}</mj-preview>
<mj-raw><meta name="color-scheme" content="light dark"><meta name="supported-color-schemes" content="light dark"></mj-raw>
<mj-attributes>
<mj-all font-family="{font}" />
<mj-section background-color="{card}" padding="0" css-class="ms-card" />
<mj-column padding="0" />
<mj-text font-size="16px" line-height="1.6" color="{text}" padding="0 28px 16px" css-class="ms-t" />
<mj-button background-color="{button}" color="{on_button}" font-size="16px" font-weight="600" border-radius="6px" inner-padding="14px 26px" padding="8px 28px 24px" align="left" css-class="ms-btn" />
<mj-table font-size="15px" line-height="1.5" color="{text}" padding="0 28px 16px" cellpadding="6px" css-class="ms-t" />
<mj-divider border-color="{rule}" border-width="1px" padding="8px 28px 16px" />
<mj-image padding="0 28px 16px" />
<mj-class name="h1" font-size="26px" line-height="1.3" font-weight="700" padding="28px 28px 12px" />
<mj-class name="h2" font-size="19px" line-height="1.35" font-weight="700" padding="12px 28px 8px" />
<mj-class name="eyebrow" font-size="13px" font-weight="700" letter-spacing="1px" color="{accent_text}" padding="28px 28px 0" css-class="ms-t ms-eyebrow" />
<mj-class name="small" font-size="14px" color="{muted}" css-class="ms-t ms-muted" />
<mj-class name="panel" background-color="{panel}" css-class="ms-panel" padding="16px 0 4px" />
<mj-class name="secondary" background-color="{card}" color="{link}" border="2px solid {link}" css-class="ms-btn2" />
</mj-attributes>
<mj-style>{style}</mj-style>
</mj-head>
<mj-body background-color="{page}" width="600px" css-class="ms-page">
{header}
"##,
        card = p.card.hex(),
        text = p.text.hex(),
        button = p.button.hex(),
        on_button = p.on_button.hex(),
        rule = p.rule.hex(),
        accent_text = p.accent_text.hex(),
        muted = p.muted.hex(),
        panel = p.panel.hex(),
        link = p.link.hex(),
        page = p.page.hex(),
    )
}

fn style(p: &Palette) -> String {
    format!(
        r#":root {{ color-scheme: light dark; supported-color-schemes: light dark; }}
a {{ color: {link}; }}
.ms-t a, .ms-foot a {{ color: {link}; text-decoration: underline; }}
.ms-btn a, .ms-btn2 a {{ text-decoration: none; }}
.ms-t ul, .ms-t ol {{ padding-left: 20px; margin: 0 0 8px; }}
.ms-t li {{ margin: 0 0 6px; }}
.ms-t p {{ margin: 0 0 12px; }}
.ms-t table td {{ vertical-align: top; }}
@media (prefers-color-scheme: dark) {{
  body, .ms-page, .ms-top, .ms-top > table, .ms-footer, .ms-footer > table {{ background: {dpage} !important; background-color: {dpage} !important; }}
  .ms-card, .ms-card > table {{ background: {dcard} !important; background-color: {dcard} !important; }}
  .ms-panel, .ms-panel > table {{ background: {dpanel} !important; background-color: {dpanel} !important; }}
  .ms-t div, .ms-t table, .ms-t td, .ms-t th, .ms-t li {{ color: {dtext} !important; }}
  .ms-muted div, .ms-foot div {{ color: {dmuted} !important; }}
  .ms-eyebrow div {{ color: {daccent} !important; }}
  .ms-t a, .ms-foot a, .ms-btn2 a {{ color: {dlink} !important; }}
  .ms-btn2 td {{ background: {dcard} !important; border-color: {dlink} !important; }}
}}"#,
        link = p.link.hex(),
        dpage = p.dark_page.hex(),
        dcard = p.dark_card.hex(),
        dpanel = p.dark_panel.hex(),
        dtext = p.dark_text.hex(),
        dmuted = p.dark_muted.hex(),
        daccent = p.dark_accent_text.hex(),
        dlink = p.dark_link.hex(),
    )
}

fn header(brand: &Brand, p: &Palette) -> String {
    let name = esc(&brand.company_name);
    let href = if brand.website.is_empty() {
        String::new()
    } else {
        format!(r#" href="{}""#, esc(&brand.website))
    };
    let mark = if brand.logo_url.is_empty() {
        format!(
            r#"<mj-text font-size="20px" font-weight="700" padding="20px 28px" color="{}" css-class="ms-t">{name}</mj-text>"#,
            p.text.hex()
        )
    } else {
        format!(
            r#"<mj-image src="{}" alt="{name}" width="160px" align="left" padding="22px 28px"{href} />"#,
            esc(&brand.logo_url)
        )
    };
    format!(
        r#"<mj-section padding="24px 0 0" background-color="{page}" css-class="ms-top"><mj-column><mj-spacer height="1px" /></mj-column></mj-section>
<mj-section border-top="4px solid {accent}" border-bottom="1px solid {rule}"><mj-column>{mark}</mj-column></mj-section>
"#,
        page = p.page.hex(),
        accent = p.accent.hex(),
        rule = p.rule.hex(),
    )
}

/// What goes after the template's body: the closing of the card and the footer. `reason`
/// says why the recipient gets the email.
pub(crate) fn footer(brand: &Brand, kind: Kind, reason: Option<&str>, tags: &mut Tags) -> String {
    let p = brand.palette();
    let name = esc(&brand.company_name);
    let default_reason = match kind {
        Kind::Bulk => format!(
            "You are receiving this email because you subscribed to news and programme updates from {name}."
        ),
        Kind::Transactional => format!(
            "This is a service email about your account, bookings or certifications with {name}. You receive it even if you unsubscribed from our newsletters."
        ),
    };
    let reason = reason.map(esc).unwrap_or(default_reason);
    let address = brand
        .address_lines()
        .iter()
        .map(|l| esc(l))
        .collect::<Vec<_>>()
        .join("<br />");
    let unsubscribe = tags.layout("{{ unsubscribe_url }}");
    tags.mark_unsubscribe();
    let preferences = tags.layout("{{ preferences_url }}");
    let view = tags.layout("{{ view_in_browser_url }}");
    let unsubscribe_label = match kind {
        Kind::Bulk => "Unsubscribe",
        Kind::Transactional => "Unsubscribe from marketing email",
    };
    let mut social = brand
        .social_links
        .iter()
        .map(|(l, u)| format!(r#"<a href="{}">{}</a>"#, esc(u), esc(l)))
        .collect::<Vec<_>>();
    if !brand.website.is_empty() {
        social.insert(
            0,
            format!(
                r#"<a href="{}">{}</a>"#,
                esc(&brand.website),
                display_host(&brand.website)
            ),
        );
    }
    let social = if social.is_empty() {
        String::new()
    } else {
        format!("<p>{}</p>", social.join(" &#183; "))
    };
    let support = if brand.support_email.is_empty() {
        String::new()
    } else {
        let e = esc(&brand.support_email);
        format!(r#" Questions? Write to <a href="mailto:{e}">{e}</a>."#)
    };
    format!(
        r#"
<mj-section padding="24px 0 36px" background-color="{page}" css-class="{FOOTER_CLASS}"><mj-column>
<mj-text css-class="ms-foot" font-size="13px" line-height="1.6" color="{muted}" padding="0 28px" align="center"><p style="margin:0 0 10px;">{reason}{support}</p>
<p style="margin:0 0 10px;"><a href="{unsubscribe}" style="color:{link};">{unsubscribe_label}</a> &#183; <a href="{preferences}" style="color:{link};">Email preferences</a> &#183; <a href="{view}" style="color:{link};">View in browser</a></p>
{social}<p style="margin:0;">{name}<br />{address}</p></mj-text>
</mj-column></mj-section>
</mj-body>
</mjml>
"#,
        page = p.page.hex(),
        muted = p.muted.hex(),
        link = p.link.hex(),
    )
}

fn display_host(url: &str) -> String {
    esc(url
        .split_once("://")
        .map(|(_, r)| r.trim_end_matches('/'))
        .unwrap_or(url))
}
