//! The operational answers every keyshift service gives the same way:
//! `GET /healthz`, `GET /metrics` and `GET /version`, and the plain and JSON
//! responses the other operational routes are built from.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// Renders the Prometheus exposition; supplied by the binary, which owns the
/// exporter (libraries only record through the `metrics` facade).
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Which routes a listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Every route: the one listener when no `admin_listen` is set, or the
    /// admin listener itself.
    All,
    /// The public routes only, beside an admin listener: the operational
    /// routes that describe the service (`/metrics`; the verifier's `/keys`
    /// and `/migration`) answer 404 here. `/healthz` and `/readyz` stay,
    /// for load balancer probes.
    Public,
}

impl Exposure {
    /// Whether the operational routes are answered.
    pub const fn ops(self) -> bool {
        matches!(self, Exposure::All)
    }
}

/// The content type of the Prometheus text exposition format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `text/plain` response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// A pretty-printed JSON response that no cache keeps (state, not content).
pub fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// What build a service runs: the workspace version and the git commit it
/// was built from (`unknown` when built without git; see `build.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BuildInfo {
    /// The package version (`Cargo.toml`).
    pub version: &'static str,
    /// The abbreviated commit, or `unknown`.
    pub git_sha: &'static str,
}

/// This build: one value for every service of the binary.
pub const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    git_sha: env!("KEYSHIFT_GIT_SHA"),
};

#[derive(serde::Serialize)]
struct VersionBody {
    service: &'static str,
    #[serde(flatten)]
    build: BuildInfo,
}

/// `GET /version`: `{"service", "version", "git_sha"}` of [`BUILD`];
/// `service` names who answers (`issuer`, `verifier`).
pub fn version(service: &'static str) -> Response<Full<Bytes>> {
    json(&VersionBody {
        service,
        build: BUILD,
    })
}

/// Liveness: the process answers.
pub fn healthz() -> Response<Full<Bytes>> {
    text(StatusCode::OK, "ok\n")
}

/// The Prometheus text exposition.
pub fn metrics(render: &RenderMetrics) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(render())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::BodyExt;

    #[tokio::test]
    async fn metrics_answer_the_rendered_text_with_prometheus_content_type() {
        let render: RenderMetrics = Arc::new(|| "up 1\n".to_owned());
        let resp = metrics(&render);
        assert_eq!(resp.headers()[CONTENT_TYPE], PROMETHEUS_TEXT);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, "up 1\n");
        let resp = json(&serde_json::json!({"a": 1}));
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(healthz().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn version_names_the_service_the_version_and_a_commit() {
        let body = version("issuer")
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["service"], "issuer");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        let sha = v["git_sha"].as_str().expect("git_sha");
        assert!(
            sha == "unknown" || (sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit())),
            "{sha}"
        );
    }
}
