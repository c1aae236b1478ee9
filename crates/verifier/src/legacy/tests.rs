use serde_json::json;

use super::*;

const NOW: u64 = 1_900_000_000;
const ISS: &str = "https://iss";
const AUD: &str = "api";

fn rules() -> ClaimRules {
    ClaimRules {
        issuer: ISS.into(),
        audience: AUD.into(),
        leeway: 30,
        max_lifetime: 3600,
    }
}

fn profile(issuers: &[&str], audience_required: bool, sub: &str, scope: &str) -> LegacyProfile {
    LegacyProfile::new(
        &VerifierLegacy {
            issuers: issuers.iter().map(|s| (*s).to_owned()).collect(),
            audience_required,
            subject_claim: sub.into(),
            scope_claim: scope.into(),
            secret_files: Vec::new(),
        },
        &[],
    )
}

/// The old issuer's usual shape: another iss, no aud, a numeric user id,
/// scopes as an array.
fn old_profile() -> LegacyProfile {
    profile(&["legacy-auth", ""], false, "user_id", "scp")
}

fn read(
    p: &LegacyProfile,
    claims: serde_json::Value,
) -> Result<(Verified, Loosenings), VerifyError> {
    p.verify(claims.to_string().as_bytes(), &rules(), None, NOW)
}

fn names(l: Loosenings) -> Vec<&'static str> {
    l.iter().map(Loosening::as_str).collect()
}

#[test]
fn an_old_token_is_read_with_each_loosening_it_relies_on() {
    let (v, used) = read(
        &old_profile(),
        json!({"iss": "legacy-auth", "user_id": 42, "scp": ["read", "write"], "exp": NOW + 60}),
    )
    .expect("accepted");
    assert_eq!(v.sub(), "42");
    assert_eq!(v.client_id(), "42", "client_id falls back to the subject");
    assert_eq!(v.scope(), "read write");
    assert_eq!(v.alg, Alg::Hs256);
    assert_eq!(
        names(used),
        [
            "issuers",
            "audience_required",
            "subject_claim",
            "scope_claim"
        ]
    );

    // No iss at all, with "" listed; our own aud present: only `issuers`.
    let (_, used) = read(
        &old_profile(),
        json!({"aud": AUD, "sub": "svc", "client_id": "c", "exp": NOW + 60}),
    )
    .expect("accepted");
    assert_eq!(names(used), ["issuers"]);
}

#[test]
fn each_loosening_is_refused_where_the_profile_does_not_grant_it() {
    let strict_names = profile(&[], true, "sub", "scope");
    let cases = [
        (
            json!({"iss": "legacy-auth", "aud": AUD, "sub": "s", "exp": NOW + 60}),
            "wrong issuer",
        ),
        (
            json!({"aud": AUD, "sub": "s", "exp": NOW + 60}),
            "wrong issuer",
        ),
        (
            json!({"iss": ISS, "sub": "s", "exp": NOW + 60}),
            "wrong audience",
        ),
        (
            json!({"iss": ISS, "aud": AUD, "user_id": 1, "exp": NOW + 60}),
            "subject claim missing",
        ),
    ];
    for (claims, why) in cases {
        assert!(
            matches!(
                read(&strict_names, claims.clone()),
                Err(VerifyError::BadClaims(r)) if r.text() == why
            ),
            "{claims}"
        );
    }
    // An issuer is listed, but not this one; "" is not listed, so no iss fails too.
    let one = profile(&["legacy-auth"], false, "sub", "scope");
    for claims in [
        json!({"iss": "other", "sub": "s", "exp": NOW + 60}),
        json!({"sub": "s", "exp": NOW + 60}),
        json!({"iss": "", "sub": "s", "exp": NOW + 60}),
    ] {
        assert_eq!(
            read(&one, claims.clone()),
            Err(VerifyError::BadClaims(crate::reason!("wrong issuer"))),
            "{claims}"
        );
    }
}

#[test]
fn a_present_audience_must_match_even_when_none_is_required() {
    let p = old_profile();
    for aud in [json!("other"), json!(["x", "y"]), json!(5)] {
        let claims = json!({"iss": "legacy-auth", "aud": aud, "user_id": 1, "exp": NOW + 60});
        assert!(
            matches!(read(&p, claims), Err(VerifyError::BadClaims(_))),
            "{aud}"
        );
    }
    let listed = json!({"iss": "legacy-auth", "aud": ["x", AUD], "user_id": 1, "exp": NOW + 60});
    let (_, used) = read(&p, listed).expect("our audience in a list");
    assert!(!used.contains(Loosening::AudienceRequired));
}

#[test]
fn time_claims_are_never_loosened() {
    let p = old_profile();
    let base = |extra: serde_json::Value| {
        let mut c = json!({"iss": "legacy-auth", "user_id": 1});
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        read(&p, c)
    };
    assert_eq!(
        base(json!({})).map(|_| ()),
        Err(VerifyError::BadClaims(crate::reason!("exp is required")))
    );
    assert_eq!(
        base(json!({"exp": NOW - 31})).map(|_| ()),
        Err(VerifyError::Expired)
    );
    assert_eq!(
        base(json!({"exp": NOW + 60, "nbf": NOW + 31})).map(|_| ()),
        Err(VerifyError::NotYetValid)
    );
    assert!(matches!(
        base(json!({"exp": NOW + 7200})),
        Err(VerifyError::BadClaims(_))
    ));
}

#[test]
fn subjects_and_scopes_take_their_legacy_forms_and_nothing_else() {
    let p = old_profile();
    let with = |user_id: serde_json::Value, scp: serde_json::Value| {
        read(
            &p,
            json!({"iss": "legacy-auth", "user_id": user_id, "scp": scp, "exp": NOW + 60}),
        )
    };
    assert_eq!(
        with(json!(-7), json!("a b")).expect("negative").0.sub(),
        "-7"
    );
    assert_eq!(
        with(json!("alice"), json!("a b")).expect("text").0.scope(),
        "a b"
    );
    for bad_subject in [
        json!(1.5),
        json!(null),
        json!(["a"]),
        json!({"id": 1}),
        json!(true),
    ] {
        assert!(
            matches!(
                with(bad_subject.clone(), json!("a")),
                Err(VerifyError::BadClaims(_))
            ),
            "{bad_subject}"
        );
    }
    for bad_scope in [json!(["a b"]), json!([""]), json!([1]), json!(5)] {
        assert!(
            matches!(
                with(json!(1), bad_scope.clone()),
                Err(VerifyError::BadClaims(_))
            ),
            "{bad_scope}"
        );
    }
    assert!(matches!(
        with(json!("bell\u{7}"), json!("a")),
        Err(VerifyError::BadClaims(r)) if r.text() == "claims not printable"
    ));
}

#[test]
fn without_the_configured_claims_sub_and_scope_are_read_and_no_loosening_counted() {
    let p = old_profile();
    let (v, used) = read(
        &p,
        json!({"iss": ISS, "aud": AUD, "sub": "svc-a", "scope": "read", "exp": NOW + 60, "iat": NOW}),
    )
    .expect("keyshift's own shape");
    assert_eq!((v.sub(), v.scope()), ("svc-a", "read"));
    assert!(used.is_empty());
    // Both present: the configured claims win, and say so.
    let (v, used) = read(
        &p,
        json!({"iss": ISS, "aud": AUD, "sub": "svc-a", "user_id": "u1", "scope": "read", "scp": "admin", "exp": NOW + 60}),
    )
    .expect("both");
    assert_eq!((v.sub(), v.scope()), ("u1", "admin"));
    assert_eq!(names(used), ["subject_claim", "scope_claim"]);
}

#[test]
fn a_claim_the_profile_reads_given_twice_is_refused() {
    let p = old_profile();
    for dup in [
        r#"{"iss":"legacy-auth","iss":"https://iss","user_id":1,"exp":1900000060}"#,
        r#"{"iss":"legacy-auth","user_id":1,"user_id":2,"exp":1900000060}"#,
        r#"{"iss":"legacy-auth","user_id":1,"scp":"a","scp":"b","exp":1900000060}"#,
        r#"{"iss":"legacy-auth","user_id":1,"exp":1900000060,"exp":1900000061}"#,
    ] {
        assert!(
            matches!(
                p.verify(dup.as_bytes(), &rules(), None, NOW),
                Err(VerifyError::BadClaims(_))
            ),
            "{dup}"
        );
    }
    assert!(matches!(
        p.verify(b"not json", &rules(), None, NOW),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        p.verify(
            br#"{"iss":"legacy-auth","user_id":1,"exp":1900000060} x"#,
            &rules(),
            None,
            NOW
        ),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn extra_secrets_match_only_their_own_signatures() {
    let a = HmacSecret::new(vec![b'a'; 32]).expect("secret");
    let b = HmacSecret::with_floor(
        vec![b'b'; 20],
        keyshift_core::secret::SecretFloor::AllowWeak,
    )
    .expect("weak");
    let p = LegacyProfile::new(&old_profile().config, &[a.clone(), b.clone()]);
    let tag = |s: &HmacSecret| {
        let mut mac = HmacKey::new(s).mac;
        mac.update(b"input");
        mac.finalize().into_bytes().to_vec()
    };
    assert!(p.extra_secret_matches(b"input", &tag(&a)));
    assert!(p.extra_secret_matches(b"input", &tag(&b)));
    assert!(!p.extra_secret_matches(b"other", &tag(&b)));
    let other = HmacSecret::new(vec![b'c'; 32]).expect("secret");
    assert!(!p.extra_secret_matches(b"input", &tag(&other)));
    assert!(
        !old_profile().extra_secret_matches(b"input", &tag(&a)),
        "no extra secret"
    );
}

#[test]
fn loosenings_are_a_set_with_stable_label_values() {
    let set = Loosenings::NONE
        .with(Loosening::SecretFiles)
        .union(Loosenings::NONE.with(Loosening::Issuers));
    assert_eq!(names(set), ["issuers", "secret_files"]);
    assert!(Loosenings::NONE.is_empty() && !set.is_empty());
    let labels: Vec<_> = Loosening::ALL.iter().map(|l| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "issuers",
            "audience_required",
            "subject_claim",
            "scope_claim",
            "secret_files"
        ]
    );
}
