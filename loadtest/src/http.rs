//! The harness's own HTTP: a client that only talks to loopback, with
//! connect and total timeouts and no proxy (an `HTTP_PROXY` in the
//! environment must not divert loopback traffic), and the few GETs it makes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::prom;

/// Connect timeout of every harness request (loopback: a connect either
/// works at once or the service is not there).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Total timeout of every harness request, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body the harness reads (a `/metrics` page is a few KiB).
const MAX_BODY: usize = 4 << 20;

/// A client builder with the harness's settings (also used for goose's users).
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("keyshift-loadtest/", env!("CARGO_PKG_VERSION")))
}

/// The harness's client.
pub fn client() -> anyhow::Result<reqwest::Client> {
    builder().build().context("building the HTTP client")
}

/// Parses a loopback base URL (`http://127.0.0.1:8080`, `http://[::1]:8081/`,
/// `http://localhost:8080`) into its address. Anything else is refused: the
/// harness never sends traffic off this machine.
pub fn loopback_url(text: &str) -> anyhow::Result<SocketAddr> {
    let Some(rest) = text.strip_prefix("http://") else {
        bail!("`{text}`: expected http://<loopback address>:<port>");
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.contains('@') {
        bail!("`{text}`: give the service's base URL only (no path, no user info)");
    }
    let addr: SocketAddr = match authority.strip_prefix("localhost:") {
        Some(port) => SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port.parse()
                .with_context(|| format!("`{text}`: bad port `{port}`"))?,
        ),
        None => authority
            .parse()
            .with_context(|| format!("`{text}`: expected http://<loopback address>:<port>"))?,
    };
    ensure_loopback(addr).with_context(|| format!("`{text}`"))?;
    Ok(addr)
}

/// Refuses a non-loopback or port-0 address.
pub fn ensure_loopback(addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address; the load test only talks to this machine");
    }
    if addr.port() == 0 {
        bail!("{addr}: port 0");
    }
    Ok(())
}

/// GET `url` and return the body, which must come with a 2xx status.
pub async fn get_bytes(http: &reqwest::Client, url: &str) -> anyhow::Result<bytes::Bytes> {
    let resp = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        bail!("GET {url}: body larger than {MAX_BODY} bytes");
    }
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("GET {url}: body"))?;
    if body.len() > MAX_BODY {
        bail!("GET {url}: body larger than {MAX_BODY} bytes");
    }
    Ok(body)
}

/// GET a JSON document.
pub async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let body = get_bytes(http, url).await?;
    serde_json::from_slice(&body).with_context(|| format!("GET {url}: not JSON"))
}

/// Scrapes `http://addr/metrics`.
pub async fn scrape(http: &reqwest::Client, addr: SocketAddr) -> anyhow::Result<prom::Samples> {
    let body = get_bytes(http, &format!("http://{addr}/metrics")).await?;
    let text = std::str::from_utf8(&body).context("/metrics is not UTF-8")?;
    Ok(prom::parse(text))
}

/// The kids the issuer's JWKS lists (fetched from the issuer directly, not
/// through the harness's proxy).
pub async fn issuer_kids(
    http: &reqwest::Client,
    issuer: SocketAddr,
) -> anyhow::Result<Vec<String>> {
    let jwks = get_json(http, &format!("http://{issuer}/.well-known/jwks.json")).await?;
    let keys = jwks["keys"].as_array().context("JWKS without keys")?;
    Ok(keys
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_pass() {
        assert!(ensure_loopback("127.0.0.1:8080".parse().expect("v4")).is_ok());
        assert!(ensure_loopback("[::1]:8080".parse().expect("v6")).is_ok());
        assert!(ensure_loopback("10.0.0.1:8080".parse().expect("lan")).is_err());
        assert!(ensure_loopback("0.0.0.0:8080".parse().expect("any")).is_err());
        assert!(ensure_loopback("127.0.0.1:0".parse().expect("port 0")).is_err());
    }

    #[test]
    fn loopback_urls_parse_and_others_are_refused() {
        assert_eq!(
            loopback_url("http://127.0.0.1:8080").expect("v4").port(),
            8080
        );
        assert!(loopback_url("http://127.0.0.1:8080/").is_ok());
        assert!(loopback_url("http://[::1]:8081").is_ok());
        assert_eq!(
            loopback_url("http://localhost:9000").expect("localhost"),
            "127.0.0.1:9000".parse().expect("addr")
        );
        for bad in [
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http://10.0.0.1:8080",
            "http://example.com:80",
            "http://127.0.0.1:0",
            "http://127.0.0.1:8080/verify",
            "http://user@127.0.0.1:8080",
            "http://localhost:x",
        ] {
            assert!(loopback_url(bad).is_err(), "{bad} accepted");
        }
    }
}
