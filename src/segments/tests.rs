use super::lang::{AttrTest, CmpOp, Literal, Pred, TextField, TextTest, parse};
use super::*;
use crate::contacts::empty_contact;
use crate::model::{Consent, EngagementKind, Membership, MembershipStatus, Role};
use rand::{Rng, SeedableRng};
use time::Duration;

fn err(src: &str) -> FilterError {
    match parse(src) {
        Err(e) => e,
        Ok(e) => panic!("{src:?} parsed as {e:?}"),
    }
}

fn tag(t: &str) -> Expr {
    Expr::Pred(Pred::Tag(TextTest::AnyOf(vec![t.into()])))
}

#[test]
fn the_issue_example_parses_to_the_expected_tree() {
    let e = parse(r#"tag = "certified" and attributes.country = "DE" and not clicked_within(90d)"#)
        .unwrap();
    assert_eq!(
        e,
        Expr::And(vec![
            tag("certified"),
            Expr::Pred(Pred::Attr {
                key: "country".into(),
                test: AttrTest::Cmp(CmpOp::Eq, Literal::Str("DE".into())),
            }),
            Expr::Not(Box::new(Expr::Pred(Pred::EngagedWithin(
                EngagementKind::Click,
                90 * 86_400
            )))),
        ])
    );
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_group() {
    assert_eq!(
        parse(r#"tag = "a" or tag = "b" and tag = "c""#).unwrap(),
        Expr::Or(vec![tag("a"), Expr::And(vec![tag("b"), tag("c")])])
    );
    assert_eq!(
        parse(r#"(tag = "a" or tag = "b") AND tag = "c""#).unwrap(),
        Expr::And(vec![Expr::Or(vec![tag("a"), tag("b")]), tag("c")])
    );
    assert_eq!(
        parse(r#"not tag = "a" and tag = "b""#).unwrap(),
        Expr::And(vec![Expr::Not(Box::new(tag("a"))), tag("b")])
    );
    assert_eq!(parse("  ").unwrap(), Expr::All);
}

#[test]
fn every_operator_parses() {
    let ok = [
        r#"email = "a@b.example""#,
        r#"email_domain in ["b.example", "c.example"]"#,
        r#"first_name contains "an""#,
        r#"last_name starts_with 'Le'"#,
        r#"company != "Acme""#,
        r#"company not in ["Acme"]"#,
        "phone exists",
        "owner = 3",
        "owner in [3, 4]",
        "owner exists",
        "owner == 3 or owner <> 4",
        "created_at >= 2026-01-01",
        "updated_at < 2026-01-01T10:00:00Z",
        "created_at = 2026-02-28 or created_at != 2026-03-01 or created_at <= 2026-01-01 or created_at > 2026-01-01",
        "created_within(30d) and updated_within(12h)",
        r#"tag in ["a", "b"] or tag contains "cert" or tag exists or tag != "x""#,
        "list = 3 or list != 4 or list in [1,2]",
        "subscribed(3) or unsubscribed(3) or pending(3)",
        r#"list_status(3) = "pending" or list_status(3) in ["subscribed", "unsubscribed"]"#,
        r#"consent("marketing")"#,
        "opened_within(90d) or clicked_within(2w) or sent_within(1y) or never_opened or never_clicked() or never_sent",
        "attributes.score > 10 and attributes.score <= 20.5 and attributes.vip = true",
        r#"attr.plan in ["gold", 3, false] and attributes.x exists and attributes.y contains "z""#,
        "attributes.level >= -2",
    ];
    for src in ok {
        if let Err(e) = parse(src) {
            panic!("{src:?}: {e}\n{}", e.excerpt);
        }
    }
    assert_eq!(
        parse(r#"first_name = "ÁNN""#).unwrap(),
        Expr::Pred(Pred::Text(
            TextField::FirstName,
            TextTest::AnyOf(vec!["ánn".into()])
        ))
    );
}

#[test]
fn errors_are_typed_and_located() {
    let e = err(r#"tga = "x""#);
    assert_eq!(e.kind, FilterErrorKind::UnknownField);
    assert!(e.message.contains("did you mean tag"), "{}", e.message);
    assert_eq!((e.line, e.column, e.offset), (1, 1, 0));

    let e = err(r#"tag = "x" and opend_within(90d)"#);
    assert_eq!(e.kind, FilterErrorKind::UnknownFunction);
    assert!(e.message.contains("opened_within"), "{}", e.message);
    assert_eq!(e.column, 15);
    assert_eq!(
        e.excerpt,
        "tag = \"x\" and opend_within(90d)\n              ^"
    );

    let e = err("tag = \"x\"\n  and clicked_within(90x)");
    assert_eq!(e.kind, FilterErrorKind::Duration);
    assert_eq!((e.line, e.column), (2, 24));

    let e = err("opened_within(90)");
    assert_eq!(e.kind, FilterErrorKind::Duration);
    let e = err("opened_within(100000y)");
    assert_eq!(e.kind, FilterErrorKind::Duration);

    let e = err("created_at > \"yesterday\"");
    assert_eq!((e.kind, e.column), (FilterErrorKind::Type, 14));
    let e = err("created_at > 2026-13-01");
    assert_eq!(e.kind, FilterErrorKind::Date);
    let e = err("first_name > \"a\"");
    assert_eq!((e.kind, e.column), (FilterErrorKind::Type, 12));
    let e = err("list = \"news\"");
    assert_eq!((e.kind, e.column), (FilterErrorKind::Type, 8));
    let e = err("tag = certified");
    assert_eq!((e.kind, e.column), (FilterErrorKind::Syntax, 7));
    assert!(e.message.contains("quotes"));
    let e = err(r#"list_status(3) = "maybe""#);
    assert_eq!(e.kind, FilterErrorKind::Type);
    // CRM tests
    let e = err(r#"lead_score >= "high""#);
    assert_eq!((e.kind, e.column), (FilterErrorKind::Type, 15));
    let e = err("lead_score exists");
    assert_eq!(e.kind, FilterErrorKind::Type);
    assert!(e.message.contains("lead_score >= 50"), "{}", e.message);
    let e = err("certification_expires_within(60)");
    assert_eq!(e.kind, FilterErrorKind::Duration);
    let e = err("certified(3)");
    assert_eq!(e.kind, FilterErrorKind::Type);
    let e = err("certification_expires_within");
    assert!(e.message.contains("certification_expires_within(60d)"));
    assert_eq!(
        parse(r#"certified("ITIL") and not certification_expires_within(60d) and lead_score > 40"#)
            .unwrap(),
        Expr::And(vec![
            Expr::Pred(Pred::Certified("itil".into())),
            Expr::Not(Box::new(Expr::Pred(Pred::CertExpiring(60 * 86_400)))),
            Expr::Pred(Pred::LeadScore(CmpOp::Gt, 40.0)),
        ])
    );

    let e = err(r#"(tag = "a" or tag = "b""#);
    assert_eq!((e.kind, e.column), (FilterErrorKind::Syntax, 1));
    let e = err(r#"tag = "a")"#);
    assert_eq!(e.column, 10);
    let e = err(r#"tag = "a"#);
    assert_eq!((e.kind, e.column), (FilterErrorKind::Syntax, 7));
    let e = err(r#"tag = "a" tag = "b""#);
    assert_eq!(e.column, 11);
    let e = err("tag");
    assert_eq!(e.column, 4);
    let e = err("opened_within");
    assert!(e.message.contains("opened_within(90d)"));
    let e = err(r#"tag = "a" && tag = "b""#);
    assert!(e.message.contains("'and'"));
    let e = err(r#"é = "a" and ü"#);
    assert_eq!(e.kind, FilterErrorKind::UnknownField);
    let e = err(&"(".repeat(200));
    assert_eq!(e.kind, FilterErrorKind::Syntax);
    let e = err(&"x".repeat(lang::MAX_FILTER_LEN + 1));
    assert_eq!(e.kind, FilterErrorKind::TooLong);
    // columns count characters, not bytes
    let e = err(r#"first_name = "ÄÖÜ" and bogus = 1"#);
    assert_eq!(e.column, 24);
}

#[test]
fn random_and_mutated_input_never_panics() {
    let seeds = [
        r#"tag = "certified" and attributes.country = "DE" and not clicked_within(90d)"#,
        r#"(list = 3 or subscribed(4)) and consent("marketing") and created_at >= 2026-01-01"#,
        r#"list_status(3) in ["pending"] or attributes.score >= -1.5 or email contains "@x""#,
        "never_opened and owner in [1,2] and updated_within(12h)",
    ];
    let alphabet: Vec<char> = "()[],=!<>\"'\\ -.:_0123456789adhwytagnotrin\n\té€😀\u{0}"
        .chars()
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..20_000 {
        let s: String = if i % 2 == 0 {
            let len = rng.random_range(0..40);
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        } else {
            let mut chars: Vec<char> = seeds[i % seeds.len()].chars().collect();
            for _ in 0..rng.random_range(1..6) {
                let pos = rng.random_range(0..=chars.len());
                match rng.random_range(0..3) {
                    0 if pos < chars.len() => {
                        chars.remove(pos);
                    }
                    1 => chars.insert(pos, alphabet[rng.random_range(0..alphabet.len())]),
                    _ if pos < chars.len() => {
                        chars[pos] = alphabet[rng.random_range(0..alphabet.len())]
                    }
                    _ => {}
                }
            }
            chars.into_iter().collect()
        };
        if let Err(e) = parse(&s) {
            assert!(e.line >= 1 && e.column >= 1, "{s:?}");
            assert!(e.offset <= s.chars().count(), "{s:?}");
            assert!(e.excerpt.contains('^'));
        }
    }
}

// --- evaluation over a real store

fn actor(role: Role, id: Id) -> Actor {
    Actor {
        user_id: id,
        email: format!("u{id}@example.test"),
        role,
        ip: None,
        team: Vec::new(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    seg: Segments,
    ids: Vec<Id>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let t = now();
    let member = |list, status| Membership {
        list_id: list,
        status,
        updated_at: t,
    };
    let consent = |purpose: &str, withdrawn, at| Consent {
        purpose: purpose.into(),
        source: "form".into(),
        at,
        ip: None,
        wording: None,
        withdrawn,
    };
    let mut people = Vec::new();
    // 1: Ann, certified, DE, list 1 confirmed, marketing consent, owner 7
    let mut c = empty_contact("ann@acme.example".into());
    c.first_name = "Ann".into();
    c.company = "Acme".into();
    c.tags = vec!["Certified".into()];
    c.attributes.insert("country".into(), "DE".into());
    c.attributes.insert("score".into(), 15.into());
    c.lists = vec![member(1, MembershipStatus::Confirmed)];
    c.consents = vec![consent("marketing", false, t)];
    c.owner_id = Some(7);
    c.phone = "+49 30 1234".into();
    people.push(c);
    // 2: Bob, certified, FR, list 1 pending, consent withdrawn later, owner 8
    let mut c = empty_contact("bob@globex.example".into());
    c.first_name = "Bob".into();
    c.company = "Globex".into();
    c.tags = vec!["certified".into(), "vip".into()];
    c.attributes.insert("country".into(), "FR".into());
    c.attributes.insert("score".into(), "30".into());
    c.attributes.insert("vip".into(), true.into());
    c.lists = vec![member(1, MembershipStatus::Unconfirmed)];
    c.consents = vec![
        consent("marketing", false, t - Duration::days(10)),
        consent("Marketing", true, t - Duration::days(1)),
    ];
    c.owner_id = Some(8);
    c.created_at = t - Duration::days(400);
    people.push(c);
    // 3: Cem, no tags, DE, unsubscribed from 1, on 2; no owner
    let mut c = empty_contact("cem@acme.example".into());
    c.first_name = "Cem".into();
    c.attributes.insert("Country".into(), "de".into());
    c.lists = vec![
        member(1, MembershipStatus::Unsubscribed),
        member(2, MembershipStatus::Confirmed),
    ];
    people.push(c);
    let (ids, _) = store
        .write_contacts(|tx| -> Result<Vec<Id>, StoreError> {
            people
                .into_iter()
                .map(|c| tx.insert(c).map(|c| c.id))
                .collect()
        })
        .unwrap();
    // Ann clicked 10 days ago, Bob opened 100 days ago; Cem was only sent mail
    store
        .write(|wtx| -> Result<(), StoreError> {
            store::record_engagement_in(wtx, ids[0], EngagementKind::Sent, t - Duration::days(11))?;
            store::record_engagement_in(wtx, ids[0], EngagementKind::Open, t - Duration::days(10))?;
            store::record_engagement_in(
                wtx,
                ids[0],
                EngagementKind::Click,
                t - Duration::days(10),
            )?;
            store::record_engagement_in(
                wtx,
                ids[1],
                EngagementKind::Open,
                t - Duration::days(100),
            )?;
            store::record_engagement_in(wtx, ids[2], EngagementKind::Sent, t - Duration::days(1))?;
            Ok(())
        })
        .unwrap();
    let seg = Segments::new(store.clone());
    Fixture {
        _dir: dir,
        store,
        seg,
        ids,
    }
}

impl Fixture {
    fn names(&self, filter: &str) -> Vec<String> {
        let ids = self
            .seg
            .members(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"));
        self.store
            .contacts(&ids)
            .unwrap()
            .into_iter()
            .map(|c| c.first_name)
            .collect()
    }
}

#[test]
fn each_predicate_selects_the_right_contacts() {
    let f = fixture();
    let cases: &[(&str, &[&str])] = &[
        ("", &["Ann", "Bob", "Cem"]),
        (
            r#"tag = "certified" and attributes.country = "DE" and not clicked_within(90d)"#,
            &[],
        ),
        (
            r#"tag = "certified" and attributes.country = "DE""#,
            &["Ann"],
        ),
        (r#"tag = "CERTIFIED""#, &["Ann", "Bob"]),
        (r#"tag != "certified""#, &["Cem"]),
        (r#"tag in ["vip", "nope"]"#, &["Bob"]),
        (r#"tag contains "cert""#, &["Ann", "Bob"]),
        ("tag exists", &["Ann", "Bob"]),
        (r#"attributes.country = "de""#, &["Ann", "Cem"]),
        ("attributes.score > 20", &["Bob"]),
        ("attributes.score >= 15", &["Ann", "Bob"]),
        (r#"attributes.score < "16""#, &["Ann"]),
        ("attributes.vip = true", &["Bob"]),
        ("attributes.vip exists", &["Bob"]),
        ("not attributes.vip exists", &["Ann", "Cem"]),
        (r#"attributes.country in ["fr", "xx"]"#, &["Bob"]),
        (r#"attributes.country starts_with "f""#, &["Bob"]),
        ("attributes.missing = 1", &[]),
        (r#"email = "ann@acme.example""#, &["Ann"]),
        (r#"email contains "globex""#, &["Bob"]),
        (r#"email starts_with "ce""#, &["Cem"]),
        (r#"email_domain = "acme.example""#, &["Ann", "Cem"]),
        (r#"first_name in ["ann", "cem"]"#, &["Ann", "Cem"]),
        (r#"company = "acme""#, &["Ann"]),
        ("company exists", &["Ann", "Bob"]),
        (r#"phone contains "1234""#, &["Ann"]),
        ("phone exists", &["Ann"]),
        ("owner = 7", &["Ann"]),
        ("owner <> 7", &["Bob", "Cem"]),
        (
            r#"email in ["nobody@acme.example", "cem@acme.example", "x@unknown.example"]"#,
            &["Cem"],
        ),
        ("owner in [7, 8]", &["Ann", "Bob"]),
        ("not owner exists", &["Cem"]),
        ("created_within(30d)", &["Ann", "Cem"]),
        ("created_at < 2020-01-01", &[]),
        ("created_at >= 2020-01-01", &["Ann", "Bob", "Cem"]),
        ("list = 1", &["Ann", "Bob"]),
        ("subscribed(1)", &["Ann"]),
        ("pending(1)", &["Bob"]),
        ("unsubscribed(1)", &["Cem"]),
        (
            r#"list_status(1) in ["pending", "unsubscribed"]"#,
            &["Bob", "Cem"],
        ),
        ("list in [2, 5]", &["Cem"]),
        ("list != 1", &["Cem"]),
        (r#"consent("marketing")"#, &["Ann"]),
        (r#"consent("newsletter")"#, &[]),
        ("clicked_within(30d)", &["Ann"]),
        ("opened_within(90d)", &["Ann"]),
        ("opened_within(1y)", &["Ann", "Bob"]),
        ("never_opened", &["Cem"]),
        ("never_clicked", &["Bob", "Cem"]),
        ("sent_within(7d)", &["Cem"]),
        ("never_sent", &["Bob"]),
        (
            r#"tag = "vip" or first_name = "cem" and owner exists"#,
            &["Bob"],
        ),
        (
            r#"(tag = "vip" or first_name = "cem") and not owner exists"#,
            &["Cem"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(&f.names(filter), want, "{filter}");
    }
}

#[test]
fn counts_follow_the_scope_and_every_change() {
    let f = fixture();
    let admin = actor(Role::Admin, 1);
    let sales = actor(Role::Sales, 7);
    assert_eq!(f.seg.count(&admin, r#"tag = "certified""#).unwrap(), 2);
    assert_eq!(f.seg.count(&sales, r#"tag = "certified""#).unwrap(), 1);
    assert_eq!(f.seg.count(&actor(Role::Sales, 99), "").unwrap(), 0);
    let p = f.seg.preview(&admin, "", 2).unwrap();
    assert_eq!(p.count, 3);
    assert_eq!(
        p.contacts.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![f.ids[2], f.ids[1]],
        "newest first"
    );
    let p = f.seg.preview(&sales, "", 10).unwrap();
    assert_eq!(
        (p.count, p.contacts.len(), p.contacts[0].id),
        (1, 1, f.ids[0])
    );

    // an update, a new contact, a deletion and an engagement are seen by the next count
    f.store
        .write_contacts(|tx| -> Result<(), StoreError> {
            let mut c = tx.get(f.ids[2])?.unwrap();
            c.tags = vec!["certified".into()];
            tx.update(c)?;
            let mut n = empty_contact("dan@acme.example".into());
            n.tags = vec!["certified".into()];
            tx.insert(n)?;
            tx.delete(f.ids[0])?;
            Ok(())
        })
        .unwrap();
    assert_eq!(f.seg.count(&admin, r#"tag = "certified""#).unwrap(), 3);
    assert_eq!(f.seg.count(&sales, r#"tag = "certified""#).unwrap(), 0);
    assert_eq!(f.seg.count(&admin, "never_opened").unwrap(), 2);
    f.store
        .write(|wtx| {
            store::record_engagement_in(wtx, f.ids[2], EngagementKind::Open, now()).map(|_| ())
        })
        .unwrap();
    assert_eq!(f.seg.count(&admin, "never_opened").unwrap(), 1);
    assert_eq!(f.seg.count(&admin, "opened_within(1h)").unwrap(), 1);
    let stats = f.seg.warm().unwrap();
    assert_eq!(stats.contacts, 3);
}

#[test]
fn saved_segments_are_audited_and_only_marketers_change_them() {
    let f = fixture();
    let m = actor(Role::Marketing, 2);
    let s = f
        .seg
        .create(
            &m,
            &SegmentInput {
                name: Some(" Certified Germans ".into()),
                filter: Some(r#"tag = "certified" and attributes.country = "DE""#.into()),
            },
        )
        .unwrap();
    assert_eq!(
        (s.name.as_str(), s.created_by),
        ("Certified Germans", Some(2))
    );
    assert_eq!(f.seg.count_saved(&m, s.id).unwrap().1, 1);
    assert_eq!(f.seg.segment_members(s.id).unwrap(), vec![f.ids[0]]);
    for role in [Role::Sales, Role::Viewer] {
        let a = actor(role, 7);
        assert!(matches!(
            f.seg.create(
                &a,
                &SegmentInput {
                    name: Some("x".into()),
                    filter: None
                }
            ),
            Err(SegmentError::Denied(Denied::Forbidden { .. }))
        ));
        assert_eq!(f.seg.list(&a).unwrap().len(), 1);
        assert!(f.seg.delete(&a, s.id).is_err());
    }
    assert!(matches!(
        f.seg.update(
            &m,
            s.id,
            &SegmentInput {
                name: None,
                filter: Some("tga = 1".into())
            }
        ),
        Err(SegmentError::Filter(_))
    ));
    assert!(matches!(
        f.seg.create(
            &m,
            &SegmentInput {
                name: Some("".into()),
                filter: None
            }
        ),
        Err(SegmentError::Invalid { field: "name", .. })
    ));
    let u = f
        .seg
        .update(
            &m,
            s.id,
            &SegmentInput {
                name: None,
                filter: Some("list = 1".into()),
            },
        )
        .unwrap();
    assert_eq!(u.filter, "list = 1");
    f.seg.delete(&m, s.id).unwrap();
    assert!(matches!(f.seg.get(&m, s.id), Err(SegmentError::NotFound)));
    let audit = crate::audit::Audit::new(f.store.clone()).unwrap();
    let report = audit.verify(&actor(Role::Admin, 1)).unwrap();
    assert_eq!(report.entries, 3, "{report:?}");
}

#[test]
fn deletions_pruned_from_the_change_log_are_not_missed() {
    let f = fixture();
    let admin = actor(Role::Admin, 1);
    assert_eq!(f.seg.count(&admin, "").unwrap(), 3);
    let (_, changes) = f
        .store
        .write_contacts(|tx| tx.delete(f.ids[1]).map(|_| ()))
        .unwrap();
    // the search index applies the deletion and prunes its marker before the cache looks
    f.store.prune_tombstones(changes[0].seq()).unwrap();
    assert_eq!(f.seg.count(&admin, "").unwrap(), 2);
    assert_eq!(f.seg.members("").unwrap(), vec![f.ids[0], f.ids[2]]);
    // and a cache built after the pruning is not rebuilt at every count
    let seg = Segments::new(f.store.clone());
    assert_eq!(seg.count(&admin, "").unwrap(), 2);
    let heads = seg.cache.read().unwrap().as_ref().map(|c| c.heads).unwrap();
    assert!(
        heads.pruned <= heads.contacts,
        "the fresh cache counts as current: {heads:?}"
    );
}
