use super::*;

fn links() -> Arc<dyn LinkBuilder> {
    Arc::new(PlainLinks {
        base_url: "https://mail.academy.example".into(),
    })
}

fn source(body: &str) -> TemplateSource {
    TemplateSource {
        subject: "Hello {{ contact.first_name | default(\"there\") }}".into(),
        preheader: "Your {{ campaign.programme }} update".into(),
        body: body.into(),
        body_line: 1,
        reason: None,
    }
}

const BODY: &str = r#"<mj-section><mj-column>
<mj-text mj-class="h1">Hi {{ contact.first_name | default("there") }},</mj-text>
<mj-text>Your company: {{ contact.company | default("—") }}. Plan: {{ contact.attributes.plan | default("none") }}</mj-text>
<mj-button href="{{ tracked("https://academy.example/courses?a=1&b=2") }}">See the courses</mj-button>
</mj-column></mj-section>
"#;

fn ann() -> ContactVars {
    ContactVars {
        email: "ann@example.org".into(),
        first_name: "<b>Ann</b>".into(),
        company: "Fox & Co".into(),
        ..ContactVars::default()
    }
}

fn campaign() -> Value {
    Value::from_serialize(serde_json::json!({"programme": "PMP"}))
}

fn target() -> LinkTarget {
    LinkTarget {
        campaign_id: "c7".into(),
        contact_id: 42,
        email: "ann@example.org".into(),
        message: None,
    }
}

#[test]
fn compiles_once_and_renders_many_recipients_with_escaping() {
    let t = compile(&source(BODY), &Brand::sample(), Kind::Bulk).unwrap();
    let null = serde_json::Value::Null;
    let a = ann();
    let r = t
        .render(
            &Recipient {
                contact: &a,
                data: &null,
                target: target(),
            },
            &campaign(),
            &links(),
        )
        .unwrap();
    assert_eq!(r.subject, "Hello <b>Ann</b>"); // subject is plain text, not HTML
    assert_eq!(r.preheader, "Your PMP update");
    assert!(
        r.html.contains("Hi &lt;b&gt;Ann&lt;&#x2f;b&gt;,"),
        "escaped in HTML"
    );
    assert!(r.html.contains("Fox &amp; Co"));
    assert!(r.html.contains("Plan: none"));
    assert!(r.html.contains(r#"lang="en""#));
    assert!(
        r.html
            .contains(r#"<meta name="color-scheme" content="light dark""#)
    );
    assert!(r.html.contains("prefers-color-scheme: dark"));
    assert!(r.html.contains("Your PMP update"), "preheader in the body");
    assert!(r.html.contains("<title>Hello &lt;b&gt;Ann"));
    // per-recipient links
    assert!(
        r.html.contains("https://mail.academy.example/u/c7/42"),
        "unsubscribe"
    );
    assert!(
        r.html
            .contains("https://mail.academy.example/preferences/c7/42")
    );
    assert!(
        r.html.contains("https://mail.academy.example/r/c7/42?u=https%3A%2F%2Facademy.example%2Fcourses%3Fa%3D1%26b%3D2"),
        "tracked link"
    );
    assert!(r.html.contains("14 Carver Street"), "postal address");
    assert!(!r.html.contains("fonts.googleapis") && !r.html.contains("mailjet"));
    // text part: unescaped, links as "text (url)", no preheader filler, no markup
    assert!(r.text.contains("Hi <b>Ann</b>,"), "{}", r.text);
    assert!(
        r.text
            .contains("See the courses (https://mail.academy.example/r/c7/42?u="),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("Unsubscribe (https://mail.academy.example/u/c7/42)"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("Your PMP update"), "{}", r.text);
    assert!(!r.text.contains('<') || r.text.contains("<b>Ann</b>"));
    // another recipient through the same compiled template
    let b = ContactVars {
        email: "bo@example.org".into(),
        ..ContactVars::default()
    };
    let r2 = t
        .render(
            &Recipient {
                contact: &b,
                data: &null,
                target: LinkTarget {
                    contact_id: 43,
                    ..target()
                },
            },
            &campaign(),
            &links(),
        )
        .unwrap();
    assert_eq!(r2.subject, "Hello there");
    assert!(r2.html.contains("Hi there,") && r2.html.contains("/u/c7/43"));
}

#[test]
fn template_syntax_errors_are_located_in_the_original_source() {
    let body = "<mj-section><mj-column>\n<mj-text>ok</mj-text>\n<mj-text>Hi {{ contact.first_name | default(\"x\" }}</mj-text>\n</mj-column></mj-section>";
    let mut src = source(body);
    src.body_line = 12; // as if after 11 lines of front matter
    let e = compile(&src, &Brand::sample(), Kind::Bulk).unwrap_err();
    assert_eq!((e.part, e.line), (Part::Body, Some(14)), "{e}");
    assert!(e.column.is_some(), "{e}");
    let e = compile(
        &TemplateSource {
            subject: "Hi {% if %}".into(),
            ..source(BODY)
        },
        &Brand::sample(),
        Kind::Bulk,
    )
    .unwrap_err();
    assert_eq!(e.part, Part::Subject, "{e}");
    let e = compile(&source("<mj-section><mj-column>\n  <mj-text>{% include \"x\" %}</mj-text></mj-column></mj-section>"), &Brand::sample(), Kind::Bulk).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(12)), "{e}");
    let e = compile(&source("<mj-section><mj-column><mj-text>{% set unsubscribe_url = '' %}</mj-text></mj-column></mj-section>"), &Brand::sample(), Kind::Bulk).unwrap_err();
    assert!(e.message.contains("unsubscribe_url"), "{e}");
}

#[test]
fn invalid_mjml_is_located_in_the_original_source() {
    let body = "<mj-section><mj-column>\n<mj-text>fine</mj-text>\n  <mj-text>Hello {{ contact.first_name | default(\"x\") }} <b>bold</mj-text>\n</mj-column></mj-section>";
    let e = compile(&source(body), &Brand::sample(), Kind::Bulk).unwrap_err();
    assert_eq!(e.part, Part::Body, "{e}");
    assert!(e.message.starts_with("invalid MJML"), "{e}");
    assert!(e.line.is_some_and(|l| (3..=4).contains(&l)), "{e}");
    let body = "<mj-section><mj-column>\n<mj-text>a < b</mj-text>\n</mj-column></mj-section>";
    let e = compile(&source(body), &Brand::sample(), Kind::Bulk).unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    // a placeholder in an attribute MJML replaces is reported, not silently lost
    let body = "<mj-section><mj-column>\n<mj-image src=\"https://a.example/x.png\" alt=\"\" width=\"{{ campaign.w }}\" />\n</mj-column></mj-section>";
    let e = compile(&source(body), &Brand::sample(), Kind::Bulk).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(55)), "{e}");
}

#[test]
fn missing_variables_fail_validation_with_a_location_but_defaults_pass() {
    let body = "<mj-section><mj-column>\n<mj-text>Dear {{ contact.first_name }},</mj-text>\n</mj-column></mj-section>";
    let t = compile(&source(body), &Brand::sample(), Kind::Bulk).unwrap();
    let sample = Sample {
        contact: ann(),
        campaign: serde_json::json!({"programme": "PMP"}),
        data: serde_json::json!({}),
    };
    // the full sample has a first name; a contact with only an email does not
    let e = t.validate(&sample).unwrap_err();
    assert_eq!((e.part, e.line), (Part::Body, Some(2)), "{e}");
    assert!(
        e.message.contains("only an email") && e.message.contains("default"),
        "{e}"
    );
    // an undefined campaign variable
    let body = "<mj-section><mj-column>\n<mj-text>x</mj-text>\n<mj-text>{{ campaign.venue }}</mj-text>\n</mj-column></mj-section>";
    let e = compile(&source(body), &Brand::sample(), Kind::Bulk)
        .unwrap()
        .validate(&sample)
        .unwrap_err();
    assert_eq!((e.line, e.column), (Some(3), Some(10)), "{e}");
    // the defaults version passes, and sending is lenient
    let t = compile(&source(BODY), &Brand::sample(), Kind::Bulk).unwrap();
    t.validate(&sample).unwrap();
}

#[test]
fn the_footer_cannot_be_removed_or_hidden() {
    let brand = Brand::sample();
    for (body, line) in [
        (
            "<mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section>\n<mj-raw><style>.ms-footer { display:none }</style></mj-raw>",
            2,
        ),
        (
            "<mj-section><mj-column>\n<mj-raw><style>div { DISPLAY : none; }</style></mj-raw></mj-column></mj-section>",
            2,
        ),
        (
            "<mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section>\n<mj-raw><style>table { opacity: 0 }</style></mj-raw>",
            2,
        ),
        (
            "<mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section>\n\n<mj-raw><!-- </mj-raw>",
            3,
        ),
    ] {
        let e = compile(&source(body), &brand, Kind::Bulk).unwrap_err();
        assert_eq!((e.part, e.line), (Part::Body, Some(line)), "{body}: {e}");
    }
    // inline styles on the template's own elements are fine
    let body = "<mj-section><mj-column><mj-text><span style=\"display:none\">x</span> <span style=\"opacity:0.8\">y</span></mj-text></mj-column></mj-section>";
    compile(&source(body), &brand, Kind::Bulk).unwrap();
    // an unclosed element that would swallow the footer is an error
    let body = "<mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section>\n<mj-raw><div style=\"display:none\"></mj-raw>";
    assert!(compile(&source(body), &brand, Kind::Bulk).is_err());
}

#[test]
fn bulk_mail_needs_a_postal_address_and_the_brand_is_checked() {
    let brand = Brand {
        postal_address: " ".into(),
        ..Brand::sample()
    };
    let e = compile(&source(BODY), &brand, Kind::Bulk).unwrap_err();
    assert_eq!(e.setting.as_deref(), Some("postal_address"), "{e}");
    assert!(e.to_string().contains("MAILSTEAD_POSTAL_ADDRESS"), "{e}");
    // transactional mail may go without one
    compile(&source(BODY), &brand, Kind::Transactional).unwrap();
    // brand text cannot inject markup or template syntax
    let brand = Brand {
        company_name: "A<b>&{{ contact.email }}".into(),
        ..Brand::sample()
    };
    let t = compile(&source(BODY), &brand, Kind::Bulk).unwrap();
    let null = serde_json::Value::Null;
    let r = t
        .render(
            &Recipient {
                contact: &ann(),
                data: &null,
                target: target(),
            },
            &campaign(),
            &links(),
        )
        .unwrap();
    assert!(
        r.html
            .contains("A&lt;b&gt;&amp;&#123;&#123; contact.email &#125;&#125;"),
        "literal"
    );
    assert!(r.text.contains("A<b>&{{ contact.email }}"), "{}", r.text);
}

#[test]
fn tracked_rejects_non_web_urls_at_validation() {
    let body = "<mj-section><mj-column>\n<mj-button href=\"{{ tracked('javascript:alert(1)') }}\">x</mj-button>\n</mj-column></mj-section>";
    let t = compile(&source(body), &Brand::sample(), Kind::Bulk).unwrap();
    let e = t
        .validate(&Sample {
            contact: ann(),
            campaign: serde_json::json!({"programme": "x"}),
            data: serde_json::json!({}),
        })
        .unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("https://"), "{e}");
}

#[test]
fn conditional_sections_work_between_elements() {
    let body = "{% if contact.company %}<mj-section><mj-column><mj-text>For {{ contact.company }}</mj-text></mj-column></mj-section>{% endif %}\n<mj-section><mj-column><mj-text>{% for t in contact.tags %}[{{ t }}]{% endfor %}</mj-text></mj-column></mj-section>";
    let t = compile(&source(body), &Brand::sample(), Kind::Bulk).unwrap();
    let null = serde_json::Value::Null;
    let mut c = ann();
    c.tags = vec!["pmp".into(), "itil".into()];
    let r = t
        .render(
            &Recipient {
                contact: &c,
                data: &null,
                target: target(),
            },
            &campaign(),
            &links(),
        )
        .unwrap();
    assert!(r.html.contains("For Fox &amp; Co") && r.html.contains("[pmp][itil]"));
    assert!(
        r.text.contains("For Fox & Co") && r.text.contains("[pmp][itil]"),
        "{}",
        r.text
    );
    let c = ContactVars {
        email: "x@example.org".into(),
        ..ContactVars::default()
    };
    let r = t
        .render(
            &Recipient {
                contact: &c,
                data: &null,
                target: target(),
            },
            &campaign(),
            &links(),
        )
        .unwrap();
    assert!(!r.html.contains("For "));
}

#[test]
fn every_library_template_compiles_validates_and_meets_the_rules() {
    let all = library::all();
    assert!(all.len() >= 18, "{} templates", all.len());
    let mut categories = std::collections::BTreeSet::new();
    for t in all {
        let t = t.unwrap_or_else(|(p, e)| panic!("{p}: {e}"));
        categories.insert(t.category.clone());
        let c = compile(&t.source, &Brand::sample(), t.kind)
            .unwrap_or_else(|e| panic!("{}: {e}", t.id));
        let r = c
            .validate(&t.sample)
            .unwrap_or_else(|e| panic!("{}: {e}", t.id));
        assert!(
            !r.subject.is_empty() && r.subject.len() < 120,
            "{}: subject '{}'",
            t.id,
            r.subject
        );
        assert!(!r.preheader.is_empty(), "{}: preheader", t.id);
        assert!(r.html.contains("/u/"), "{}: unsubscribe", t.id);
        // every image has alt text; a call to action (a button) is there
        for img in r.html.split("<img").skip(1) {
            let tag = &img[..img.find('>').unwrap_or(img.len())];
            assert!(tag.contains("alt=\""), "{}: image without alt: {tag}", t.id);
        }
        assert!(
            r.html.contains("ms-btn"),
            "{}: no call-to-action button",
            t.id
        );
        assert!(r.text.len() > 400, "{}: thin text part", t.id);
        assert!(
            !r.text.contains("MSJT") && !r.html.contains("MSJT"),
            "{}",
            t.id
        );
    }
    assert_eq!(
        categories.into_iter().collect::<Vec<_>>(),
        ["marketing", "operational", "training", "welcome"]
    );
}
