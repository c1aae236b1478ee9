use super::*;

const SHA: &str = "sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

fn bcrypt_hash() -> String {
    bcrypt::hash_with_salt(b"old-secret", 4, *b"0123456789abcdef")
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoB)
}

fn pbkdf2_hash() -> String {
    use pbkdf2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
    pbkdf2::Pbkdf2
        .hash_password_customized(
            b"old-secret",
            None,
            None,
            pbkdf2::Params {
                rounds: 1_000,
                output_length: 32,
            },
            &salt,
        )
        .expect("pbkdf2")
        .to_string()
}

fn rendered(rows: &[Row]) -> anyhow::Result<Config> {
    let text = render(rows, Path::new("export"))?;
    let config = format!(
        "phase = \"asymmetric\"\n[issuer]\nissuer = \"http://127.0.0.1\"\naudience = \"a\"\n{text}"
    );
    Ok(Config::from_toml_str(&config, Path::new("."))?)
}

#[test]
fn a_json_export_becomes_tables_the_config_loader_reads() {
    let json = serde_json::json!({"clients": [
        {"id": "svc-bcrypt", "secret_hash": bcrypt_hash(), "scopes": ["read", "write"]},
        {"id": "svc \"quoted\"", "secret_hash": pbkdf2_hash(), "scopes": "read admin"},
        {"id": "svc-sha", "secret_hash": SHA},
    ]});
    let rows = parse_json(&json.to_string()).expect("parses");
    let cfg = rendered(&rows).expect("valid tables");
    let clients = &cfg.issuer.as_ref().expect("issuer").clients;
    assert_eq!(clients.len(), 3);
    assert_eq!(clients[0].scopes, ["read", "write"]);
    assert_eq!(clients[1].id, "svc \"quoted\"");
    assert_eq!(clients[1].scopes, ["read", "admin"]);
    assert!(clients[2].scopes.is_empty());
    assert_eq!(clients[0].secret_hash.to_config_string(), bcrypt_hash());
}

#[test]
fn a_csv_export_with_quoted_pbkdf2_hashes_and_any_column_order_imports() {
    let csv = format!(
        "scopes,id,secret_hash\r\n\"read write\",svc-a,\"{}\"\r\n,svc-b,{}\r\n\nread,\"svc \"\"c\"\"\",{SHA}",
        pbkdf2_hash(),
        bcrypt_hash()
    );
    let rows = parse_csv(&csv).expect("parses");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].row, "line 2");
    assert_eq!(rows[2].id, "svc \"c\"");
    assert_eq!(rows[2].row, "line 5");
    let cfg = rendered(&rows).expect("valid");
    let clients = &cfg.issuer.as_ref().expect("issuer").clients;
    assert_eq!(clients[0].scopes, ["read", "write"]);
    assert!(clients[1].scopes.is_empty());
}

#[test]
fn plain_text_secrets_are_refused_naming_the_row_and_nothing_is_printed() {
    let csv = format!("id,secret_hash,scopes\nsvc-a,{SHA},read\nsvc-b,hunter2,read\n");
    let rows = parse_csv(&csv).expect("parses");
    let err = render(&rows, Path::new("export")).expect_err("plain text");
    let text = err.to_string();
    assert!(
        text.contains("line 3 (client `svc-b`)") && text.contains("plain-text secrets are refused"),
        "{text}"
    );
    let err = parse_csv("id,secret,scopes\nsvc-a,hunter2,read\n").expect_err("column");
    assert!(err.to_string().contains("plain-text"), "{err}");
    let err = parse_json(r#"[{"id":"a","client_secret":"hunter2"}]"#).expect_err("member");
    assert!(err.to_string().contains("plain-text"), "{err}");
}

#[test]
fn malformed_hashes_and_rows_the_loader_refuses_name_their_row() {
    let broken_bcrypt = "$2b$04$tooshort";
    let cases = [
        (
            format!("id,secret_hash\nsvc-a,{broken_bcrypt}\n"),
            "line 2 (client `svc-a`): secret_hash",
        ),
        (
            format!("id,secret_hash,scopes\nsvc-a,{SHA},\"re ad\"x\n"),
            "line 2: `x` after a quoted field",
        ),
        (
            format!("id,secret_hash,scopes\nsvc-a,{SHA},\"a b\" \n"),
            "after a quoted field",
        ),
        (
            format!("id,secret_hash\nsvc-a,{SHA}\nsvc-a,{SHA}\n"),
            "line 3 (client `svc-a`): issuer.clients[1].id: duplicate",
        ),
        (
            format!("id,secret_hash,scopes\nsvc-a,{SHA},a\"b\n"),
            "a quote inside an unquoted field",
        ),
        (
            format!("id,secret_hash\nsvc-a,{SHA},extra\n"),
            "line 2: 3 fields, the header has 2",
        ),
        (format!("id,secret_hash\n\"svc-a,{SHA}\n"), "not closed"),
        (
            "id,scopes\nsvc-a,read\n".to_owned(),
            "needs the columns id and secret_hash",
        ),
        (
            "id,secret_hash,owner\n".to_owned(),
            "unknown column `owner`",
        ),
    ];
    for (csv, want) in cases {
        let err = parse_csv(&csv).and_then(|rows| render(&rows, Path::new("export")));
        let text = err.expect_err(&csv).to_string();
        assert!(text.contains(want), "{csv:?}: {text}");
    }
    let json_cases = [
        ("{}", "expected an array"),
        (r#"[{"id":"a"}]"#, "client 1: `secret_hash` is missing"),
        (
            r#"[{"id":1,"secret_hash":"x"}]"#,
            "client 1: `id` is not a string",
        ),
        (
            r#"[{"id":"a","secret_hash":"x","scopes":[1]}]"#,
            "other than strings",
        ),
        ("[]", "no clients"),
    ];
    for (json, want) in json_cases {
        let err = parse_json(json).and_then(|rows| render(&rows, Path::new("export")));
        let text = err.expect_err(json).to_string();
        assert!(text.contains(want), "{json}: {text}");
    }
}

#[test]
fn the_format_comes_from_the_extension_unless_given() {
    assert_eq!(format_of(Path::new("a.JSON")).expect("json"), Format::Json);
    assert_eq!(format_of(Path::new("dir/a.csv")).expect("csv"), Format::Csv);
    assert!(format_of(Path::new("export.txt")).is_err());
}
