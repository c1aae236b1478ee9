//! `keyshift clients import --from F.json|F.csv`: an export of an old client
//! store (id, secret hash, scopes) printed as `[[issuer.clients]]` tables.
//!
//! Every row is checked as the config loader checks it, by the loader
//! itself: the tables are parsed back as a config and each hash is parsed
//! fully as the issuer parses it. A value that is not a hash (a plain-text
//! secret) stops the import naming its row, and nothing is printed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use keyshift_core::secret::{SecretHash, SecretHashError};
use keyshift_core::Config;
use keyshift_issuer::auth::ClientHash;

/// Flags of `keyshift clients import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The export: JSON (an array of {id, secret_hash, scopes}, or
    /// {"clients": [...]}) or CSV with a header row naming id, secret_hash
    /// and scopes (space-delimited).
    #[arg(long)]
    from: PathBuf,
    /// The export's format; by default from the file's extension.
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// The formats an export can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON.
    Json,
    /// CSV (RFC 4180).
    Csv,
}

/// The columns (JSON members) a row has.
const COLUMNS: [&str; 3] = ["id", "secret_hash", "scopes"];

/// Column names that mean the export holds secrets in plain text.
const PLAIN_SECRET_COLUMNS: [&str; 4] = ["secret", "client_secret", "password", "plain_secret"];

/// One client of the export; `row` names it in messages (the CSV line, or
/// the JSON array position from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    row: String,
    id: String,
    secret_hash: String,
    scopes: Vec<String>,
}

/// Prints the `[[issuer.clients]]` tables of an export.
pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.from)
        .with_context(|| format!("--from: cannot read {}", args.from.display()))?;
    let format = match args.format {
        Some(f) => f,
        None => format_of(&args.from)?,
    };
    let rows = match format {
        Format::Json => parse_json(&text),
        Format::Csv => parse_csv(&text),
    }
    .with_context(|| args.from.display().to_string())?;
    let tables = render(&rows, &args.from).with_context(|| args.from.display().to_string())?;
    print!("{tables}");
    Ok(())
}

fn format_of(path: &Path) -> anyhow::Result<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => Ok(Format::Json),
        Some(e) if e.eq_ignore_ascii_case("csv") => Ok(Format::Csv),
        _ => bail!(
            "--from: cannot tell the format of {} from its extension; add --format json or --format csv",
            path.display()
        ),
    }
}

/// Refuses a column that is not one of [`COLUMNS`], with the reason.
fn check_column(name: &str, row: &str) -> anyhow::Result<()> {
    if COLUMNS.contains(&name) {
        return Ok(());
    }
    if PLAIN_SECRET_COLUMNS.contains(&name.to_ascii_lowercase().as_str()) {
        bail!("{row}: column `{name}` holds plain-text secrets, which are refused: export the store's hashes (secret_hash)");
    }
    bail!("{row}: unknown column `{name}` (expected id, secret_hash, scopes)")
}

fn parse_json(text: &str) -> anyhow::Result<Vec<Row>> {
    let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let items = match &value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(o) if o.len() == 1 && o.contains_key("clients") => {
            match &o["clients"] {
                serde_json::Value::Array(items) => items,
                _ => bail!("`clients` is not an array"),
            }
        }
        _ => bail!("expected an array of clients, or {{\"clients\": [...]}}"),
    };
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let row = format!("client {}", i + 1);
        let serde_json::Value::Object(fields) = item else {
            bail!("{row}: not an object");
        };
        for name in fields.keys() {
            check_column(name, &row)?;
        }
        let text = |name: &str| match fields.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => bail!("{row}: `{name}` is not a string"),
            None => bail!("{row}: `{name}` is missing"),
        };
        let scopes = match fields.get("scopes") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => split_scopes(s),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|s| match s {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    _ => bail!("{row}: `scopes` holds something other than strings"),
                })
                .collect::<anyhow::Result<_>>()?,
            Some(_) => bail!("{row}: `scopes` is not an array or a string"),
        };
        rows.push(Row {
            id: text("id")?,
            secret_hash: text("secret_hash")?,
            scopes,
            row,
        });
    }
    Ok(rows)
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn parse_csv(text: &str) -> anyhow::Result<Vec<Row>> {
    let records = csv_records(text)?;
    let Some((_, header)) = records.first() else {
        bail!("empty: expected a header row (id,secret_hash,scopes)");
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    for name in &header {
        check_column(name, "header")?;
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(id), Some(hash)) = (column("id"), column("secret_hash")) else {
        bail!("header: needs the columns id and secret_hash (and optionally scopes)");
    };
    let scopes = column("scopes");
    let mut rows = Vec::new();
    for (line, record) in records.iter().skip(1) {
        if record.iter().all(String::is_empty) && record.len() == 1 {
            continue; // a blank line
        }
        let row = format!("line {line}");
        if record.len() != header.len() {
            bail!(
                "{row}: {} fields, the header has {}",
                record.len(),
                header.len()
            );
        }
        let field = |i: usize| record.get(i).cloned().unwrap_or_default();
        rows.push(Row {
            id: field(id),
            secret_hash: field(hash),
            scopes: scopes.map(|i| split_scopes(&field(i))).unwrap_or_default(),
            row,
        });
    }
    Ok(rows)
}

/// RFC 4180 records with the line each starts on: comma-separated fields,
/// `"`-quoted fields may hold commas, line breaks and `""`; LF or CRLF.
fn csv_records(text: &str) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => bail!("line {line}: a quote inside an unquoted field"),
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                fields.push(std::mem::take(&mut field));
                records.push((start, std::mem::take(&mut fields)));
                was_quoted = false;
                line += 1;
                start = line;
            }
            (false, c) if was_quoted => {
                bail!("line {line}: `{c}` after a quoted field")
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        bail!("line {start}: a quoted field is not closed");
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((start, fields));
    }
    Ok(records)
}

/// The tables of `rows`, each checked: its hash fully parsed, and the whole
/// parsed back by the config loader (ids, duplicates, scopes).
fn render(rows: &[Row], from: &Path) -> anyhow::Result<String> {
    if rows.is_empty() {
        bail!("no clients");
    }
    let mut out = format!(
        "# {} clients imported from {} by `keyshift clients import`\n",
        rows.len(),
        from.display()
    );
    for r in rows {
        let who = format!("{} (client `{}`)", r.row, r.id);
        let hash = SecretHash::parse(&r.secret_hash).map_err(|e| match e {
            SecretHashError::UnknownScheme => anyhow::anyhow!(
                "{who}: secret_hash is not a hash keyshift knows; plain-text secrets are refused (sha256:, argon2id, bcrypt $2a$/$2b$/$2y$ or PBKDF2-SHA256 PHC)"
            ),
            e => anyhow::anyhow!("{who}: secret_hash: {e}"),
        })?;
        ClientHash::new(&hash).map_err(|e| anyhow::anyhow!("{who}: secret_hash: {e}"))?;
        let scopes: Vec<toml::Value> = r.scopes.iter().map(|s| s.as_str().into()).collect();
        let _ = write!(
            out,
            "\n[[issuer.clients]]\nid = {}\nsecret_hash = {}\nscopes = {}\n",
            toml::Value::from(r.id.as_str()),
            toml::Value::from(r.secret_hash.as_str()),
            toml::Value::Array(scopes),
        );
    }
    // The loader's rules, applied by the loader: a throwaway issuer section
    // around the tables.
    let probe = format!(
        "phase = \"asymmetric\"\n[issuer]\nissuer = \"http://127.0.0.1\"\naudience = \"probe\"\n{out}"
    );
    if let Err(e) = Config::from_toml_str(&probe, Path::new(".")) {
        let message = e.to_string();
        let row = e
            .field()
            .and_then(|f| f.strip_prefix("issuer.clients["))
            .and_then(|f| f.split(']').next())
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| rows.get(i));
        match row {
            Some(r) => bail!("{} (client `{}`): {message}", r.row, r.id),
            None => bail!("{message}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
