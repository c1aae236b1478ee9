//! The keyshift processes under test: the harness's config file, starting
//! and stopping `keyshift issuer|verifier`, and signalling processes by id.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use keyshift_core::config::{DEFAULT_FAILED_AUTH_LIMIT, DEFAULT_TOKEN_TTL};
use keyshift_core::fs::write_atomic;
use keyshift_core::Phase;
use keyshift_testkit::config::FILE_NAME;
use keyshift_testkit::{Client, ConfigToml, Log, Service, StartError};
use nix::sys::signal::Signal;

use crate::http;
use crate::token::Credentials;

/// The scopes every harness client has.
const SCOPES: [&str; 2] = ["read", "write"];

/// `issuer.failed_auth_limit` of the load test: it sends only its own
/// clients' right secrets, so no run comes near it.
const LOAD_TEST_FAILED_AUTH_LIMIT: u32 = 1000;
/// `verifier.leeway` of the soak: 1 s, so a token minted with a 1 s
/// lifetime counts as expired 2 s later (issuer and verifier share this
/// machine's clock: there is no skew to allow for).
pub const SOAK_LEEWAY: Duration = Duration::from_secs(1);

/// The `iss` of the legacy issuer's tokens ([`crate::legacy`]), listed in
/// `[verifier.legacy] issuers` with `""` (tokens without `iss`).
pub const LEGACY_ISS: &str = "legacy-auth";
/// `[gateway] issuer`: the `iss` of the tokens the gateway signs.
const GATEWAY_ISS: &str = "http://loadtest.keyshift";
/// The `audience` of the gateway's route: the upstream's.
pub const GATEWAY_AUDIENCE: &str = "https://upstream.loadtest";
/// The name of the gateway's one route (its `route` metric label).
pub const GATEWAY_ROUTE: &str = "loadtest";

/// What the harness's config holds besides the phase and the addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `[[issuer.clients]]` stored as sha256 hashes.
    pub clients: Vec<Credentials>,
    /// More `[[issuer.clients]]`, with ready hashes (the token-endpoint
    /// capacity's clients, one per hash kind).
    pub hashed_clients: Vec<Client>,
    /// `[verifier.legacy]` on (`--legacy-issuer`).
    pub legacy_profile: bool,
    /// `[gateway]` with one verify-and-sign route to this upstream (`--through-gateway`).
    pub gateway_upstream: Option<SocketAddr>,
    /// `issuer.failed_auth_limit`.
    pub failed_auth_limit: u32,
    /// `issuer.token_ttl`.
    pub token_ttl: Duration,
    /// `verifier.leeway`; `None`: keyshift's default.
    pub leeway: Option<Duration>,
}

impl Settings {
    /// The load test's: its clients, a failed-auth limit no run reaches,
    /// keyshift's default token lifetime and leeway.
    pub fn load_test(clients: Vec<Credentials>) -> Settings {
        Settings {
            clients,
            hashed_clients: Vec::new(),
            legacy_profile: false,
            gateway_upstream: None,
            failed_auth_limit: LOAD_TEST_FAILED_AUTH_LIMIT,
            token_ttl: DEFAULT_TOKEN_TTL,
            leeway: None,
        }
    }

    /// The soak's: its clients (a guesser among them), keyshift's default
    /// failed-auth limit (the guesser must meet the real one), and
    /// [`SOAK_LEEWAY`].
    pub fn soak(clients: Vec<Credentials>) -> Settings {
        Settings {
            clients,
            hashed_clients: Vec::new(),
            legacy_profile: false,
            gateway_upstream: None,
            failed_auth_limit: DEFAULT_FAILED_AUTH_LIMIT,
            token_ttl: DEFAULT_TOKEN_TTL,
            leeway: Some(SOAK_LEEWAY),
        }
    }
}

/// A duration as the config writes it: whole seconds (`"900s"`).
fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// Writes the harness's config for `phase`; the verifier section once its JWKS URL is known.
pub fn write_config(
    dir: &Path,
    phase: Phase,
    issuer_listen: &str,
    jwks_url: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<PathBuf> {
    let mut config = ConfigToml::new(phase)
        .comment("Written by keyshift-loadtest.")
        .issuer("listen", issuer_listen)
        .issuer("issuer", "http://loadtest.keyshift")
        .issuer("audience", "https://api.loadtest")
        .issuer("token_ttl", seconds(settings.token_ttl))
        .issuer("hs256_secret_file", "hs256.secret")
        .issuer("failed_auth_limit", i64::from(settings.failed_auth_limit))
        .issuer_comment(
            "Compressed rotation timings, so a rotation fits in a phase: the next key is\n\
             published 3 s before it signs (jwks_max_age plus the 2 s margin the issuer\n\
             requires), and verifiers refresh the JWKS every second.",
        )
        .issuer("jwks_max_age", "1s")
        .issuer("key_prepublish", "3s")
        .issuer("rotate_every", "off");
    config = settings
        .clients
        .iter()
        .map(client)
        .chain(settings.hashed_clients.iter().cloned())
        .fold(config, ConfigToml::client);
    if let Some(url) = jwks_url {
        config = config
            .verifier("listen", "127.0.0.1:0")
            .verifier("issuer", "http://loadtest.keyshift")
            .verifier("audience", "https://api.loadtest")
            .verifier("jwks_url", url)
            .verifier("hs256_secret_file", "hs256.secret")
            .verifier("jwks_min_ttl", "1s")
            .verifier_comment(
                "The harness compresses the migration into minutes: it enters phase asymmetric\n\
                 while the HS256 tokens of phase transition (15m) are still valid, on purpose\n\
                 (its stragglers). A real fleet waits for GET /migration to say ready.",
            )
            .verifier("force_phase", true);
        if let Some(leeway) = settings.leeway {
            config = config.verifier("leeway", seconds(leeway));
        }
        if settings.legacy_profile {
            config = config
                .verifier_comment(
                    "--legacy-issuer: the old issuer's HS256 tokens (iss legacy-auth or none, no aud,\n\
                     a numeric sub, scopes as an array) pass in legacy, dual and transition.",
                )
                .verifier_lines(&format!(
                    "legacy = {{ issuers = [\"{LEGACY_ISS}\", \"\"], audience_required = false, subject_claim = \"sub\", scope_claim = \"scope\" }}"
                ));
        }
    }
    if let (Some(upstream), Some(_)) = (settings.gateway_upstream, jwks_url) {
        // With the verifier's section only: the gateway's route verifies with it.
        config = config.gateway_lines(&gateway_toml(upstream));
    }
    let path = dir.join(FILE_NAME);
    replace_file(&path, &config.render(), false)?;
    Ok(path)
}

/// `[gateway]` with one route, `verify = true, sign = true`, for every path
/// to `upstream`: the gateway verifies with `[verifier]` (the same phase,
/// JWKS and secret as the verifier) and signs with the issuer's key
/// directory, read only.
fn gateway_toml(upstream: SocketAddr) -> String {
    format!(
        "# --through-gateway: verify the client's token, sign an RS256 one for the upstream.\n\
         [gateway]\nlisten = \"127.0.0.1:0\"\nkey_dir = \"keys\"\nissuer = \"{GATEWAY_ISS}\"\n\n\
         [[gateway.routes]]\nname = \"{GATEWAY_ROUTE}\"\npath_prefix = \"/\"\nupstream = \"http://{upstream}\"\n\
         verify = true\nsign = true\naudience = \"{GATEWAY_AUDIENCE}\"\n"
    )
}

/// `keyshift keys generate --config F`: the issuer's first (active) key.
pub fn generate_keys(keyshift: &Path, config: &Path) -> anyhow::Result<()> {
    let out = Command::new(keyshift)
        .args(["keys", "generate", "--config"])
        .arg(config)
        .output()
        .with_context(|| format!("running {} keys generate", keyshift.display()))?;
    if !out.status.success() {
        bail!(
            "keyshift keys generate failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The config entry of one harness client (its secret stored as a sha256 hash).
fn client(c: &Credentials) -> Client {
    Client::sha256(&c.id, c.secret.as_bytes(), &SCOPES)
}

/// Writes `path` atomically with core's [`write_atomic`] (temp file, fsync,
/// rename, the temp file removed on failure), mode 0644, or the old file's
/// mode if `keep_mode`.
pub fn replace_file(path: &Path, text: &str, keep_mode: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if keep_mode {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        meta.permissions().mode() & 0o7777
    } else {
        0o644
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name", path.display()))?;
    write_atomic(dir, name, text.as_bytes(), mode)
        .with_context(|| format!("replacing {}", path.display()))
}

/// `[[issuer.clients]]` entries for `clients` (secrets as sha256 hashes).
pub fn clients_toml(clients: &[Credentials]) -> String {
    clients.iter().map(|c| client(c).to_toml()).collect()
}

/// A process the harness may signal: its id is > 1 (0 and negative ids
/// address process groups, 1 is init). Made only through `TryFrom<i64>`,
/// from a child's id or a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pid(i32);

/// A number that is not a process id the harness may signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAPid(i64);

impl std::fmt::Display for NotAPid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: not a process id (must be greater than 1)", self.0)
    }
}

impl std::error::Error for NotAPid {}

impl TryFrom<i64> for Pid {
    type Error = NotAPid;

    fn try_from(raw: i64) -> Result<Pid, NotAPid> {
        match i32::try_from(raw) {
            Ok(p) if p > 1 => Ok(Pid(p)),
            _ => Err(NotAPid(raw)),
        }
    }
}

impl Pid {
    /// An external service's pid, checked: it must exist and, where /proc
    /// tells, run `keyshift <role>` (a wrong pid must not get a SIGHUP,
    /// which ends most programs).
    pub fn ensure_role(self, role: &str) -> anyhow::Result<Pid> {
        let raw = self.0;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None)
            .with_context(|| format!("{role} pid {raw}: no such process (or not ours)"))?;
        if let Ok(cmdline) = std::fs::read(format!("/proc/{raw}/cmdline")) {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if !args.contains(&role.as_bytes()) {
                bail!(
                    "{role} pid {raw}: its command line is `{}`, not a `keyshift {role}`",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ").trim()
                );
            }
        }
        Ok(self)
    }

    /// Sends `sig`.
    pub fn signal(self, sig: Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), sig)
            .with_context(|| format!("sending {sig} to {}", self.0))
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        vm_rss_kib(&status)
    }

    /// Open file descriptors: the entries of /proc/<pid>/fd (readable for
    /// our own children). The count is bounded by the process's fd limit.
    pub fn fd_count(self) -> Option<u64> {
        let entries = std::fs::read_dir(format!("/proc/{}/fd", self.0)).ok()?;
        Some(entries.filter(|e| e.is_ok()).count() as u64)
    }
}

/// The `VmRSS` of a /proc/<pid>/status text, in KiB.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A running `keyshift issuer|verifier`; SIGTERM (then SIGKILL) on drop.
#[derive(Debug)]
pub struct Process {
    /// Where it listens (loopback, checked).
    pub addr: SocketAddr,
    /// Its id.
    pub pid: Pid,
    _service: Service,
}

impl Process {
    /// Starts `keyshift <what> --config <config>`, its log in `log`, and
    /// waits (≤ 30 s) for its listening line.
    pub fn start(
        keyshift: &Path,
        what: &str,
        config: &Path,
        log: &Path,
    ) -> anyhow::Result<Process> {
        let mut command = Command::new(keyshift);
        command.arg(what).arg("--config").arg(config);
        let service = Service::start(command, Log::File(log.to_owned())).map_err(|e| {
            let hint = match e {
                StartError::NotListening { .. } => format!(" (see {})", log.display()),
                _ => String::new(),
            };
            anyhow::Error::new(e).context(format!("keyshift {what} did not start{hint}"))
        })?;
        let pid =
            Pid::try_from(i64::from(service.id())).with_context(|| format!("keyshift {what}"))?;
        http::ensure_loopback(service.addr)
            .with_context(|| format!("keyshift {what} listens off loopback"))?;
        Ok(Process {
            addr: service.addr,
            pid,
            _service: service,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::scratch_dir;
    use crate::token::builtin_clients;
    use keyshift_core::Config;
    use std::time::Duration;

    #[test]
    fn generated_config_is_valid_in_every_phase() {
        let dir = scratch_dir("services-config");
        let clients = builtin_clients();
        let jwks = "http://127.0.0.1:4001/.well-known/jwks.json";
        for phase in Phase::ALL {
            // As the harness writes it: the issuer's part first, then both.
            for jwks_url in [None, Some(jwks)] {
                let path = write_config(
                    &dir,
                    phase,
                    "127.0.0.1:4000",
                    jwks_url,
                    &Settings::load_test(clients.clone()),
                )
                .expect("write");
                let cfg = Config::load(&path)
                    .unwrap_or_else(|e| panic!("{phase} (jwks {jwks_url:?}): {e}"));
                assert_eq!(cfg.phase, phase);
                let issuer = cfg.issuer.as_ref().expect("[issuer]");
                assert_eq!(issuer.listen, "127.0.0.1:4000".parse().expect("addr"));
                assert_eq!(issuer.clients.len(), clients.len());
                assert_eq!(issuer.key_prepublish, Duration::from_secs(3));
                assert_eq!(issuer.token_ttl, DEFAULT_TOKEN_TTL);
                assert_eq!(
                    cfg.verifier
                        .as_ref()
                        .and_then(|v| v.jwks_url.as_ref())
                        .map(|u| u.to_string()),
                    jwks_url.map(str::to_owned)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_legacy_profile_and_the_gateway_are_written_when_asked_for() {
        let dir = scratch_dir("services-modes");
        let jwks = "http://127.0.0.1:4001/.well-known/jwks.json";
        let mut settings = Settings::load_test(builtin_clients());
        settings.legacy_profile = true;
        settings.gateway_upstream = Some("127.0.0.1:4002".parse().expect("addr"));
        settings.hashed_clients = vec![Client::sha256("cap-x", b"secret-x", &SCOPES)];
        for phase in Phase::ALL {
            let path =
                write_config(&dir, phase, "127.0.0.1:4000", Some(jwks), &settings).expect("write");
            let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{phase}: {e}"));
            let issuer = cfg.issuer.as_ref().expect("[issuer]");
            assert_eq!(issuer.clients.len(), builtin_clients().len() + 1);
            let verifier = cfg.verifier.as_ref().expect("[verifier]");
            // Phase asymmetric ignores the profile (no HS256 token passes).
            if phase.accepts(keyshift_core::Alg::Hs256) {
                let legacy = verifier.legacy.as_ref().expect("[verifier.legacy]");
                assert_eq!(legacy.issuers, [LEGACY_ISS.to_owned(), String::new()]);
                assert!(!legacy.audience_required);
            }
            let gateway = cfg.gateway.as_ref().expect("[gateway]");
            let route = &gateway.routes[0];
            assert!(route.verify && route.sign);
            assert_eq!(route.name, GATEWAY_ROUTE);
            assert_eq!(route.upstream.as_str(), "http://127.0.0.1:4002/");
            assert_eq!(
                gateway.key_dir, issuer.key_dir,
                "the issuer's keys, read only"
            );
        }
        let plain = write_config(
            &dir,
            Phase::Dual,
            "127.0.0.1:4000",
            Some(jwks),
            &Settings::load_test(builtin_clients()),
        )
        .expect("write");
        let cfg = Config::load(&plain).expect("load");
        assert!(cfg.gateway.is_none());
        assert!(cfg.verifier.as_ref().expect("[verifier]").legacy.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_are_replaced_whole_or_not_at_all() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch_dir("services-replace");
        let path = dir.join("k.toml");
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        replace_file(&path, "new", true).expect("replace");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "the mode is kept");
        // A rename over a folder fails: the temp file goes, the folder stays.
        let folder = dir.join("taken");
        std::fs::create_dir_all(folder.join("inside")).expect("mkdir");
        assert!(replace_file(&folder, "x", false).is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| keyshift_core::fs::is_temp_name(n))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(folder.join("inside").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pids_that_address_groups_or_init_are_refused() {
        assert!(Pid::try_from(0).is_err());
        assert!(Pid::try_from(1).is_err());
        assert!(Pid::try_from(-1).is_err());
        assert!(
            Pid::try_from(i64::from(u32::MAX)).is_err(),
            "would be -1: every process"
        );
        assert_eq!(
            Pid::try_from(4_294_967_297).map_err(|e| e.to_string()),
            Err("4294967297: not a process id (must be greater than 1)".to_owned())
        );
        assert!(Pid::try_from(1234).is_ok());
    }

    #[test]
    fn an_external_pid_must_run_the_named_role() {
        let me = Pid::try_from(i64::from(std::process::id())).expect("pid");
        let e = me
            .ensure_role("verifier")
            .expect_err("the test runner is no verifier");
        assert!(
            format!("{e:#}").contains("not a `keyshift verifier`"),
            "{e:#}"
        );
        let gone = Pid::try_from(i64::from(i32::MAX)).expect("pid");
        assert!(gone.ensure_role("issuer").is_err());
    }

    #[test]
    fn the_soak_config_has_the_default_failed_auth_limit_and_a_short_leeway() {
        let dir = scratch_dir("services-soak");
        let jwks = "http://127.0.0.1:4001/.well-known/jwks.json";
        let mut settings = Settings::soak(builtin_clients());
        settings.token_ttl = Duration::from_secs(1);
        let path = write_config(
            &dir,
            Phase::Transition,
            "127.0.0.1:4000",
            Some(jwks),
            &settings,
        )
        .expect("write");
        let cfg = Config::load(&path).expect("load");
        let issuer = cfg.issuer.as_ref().expect("[issuer]");
        assert_eq!(issuer.failed_auth_limit, DEFAULT_FAILED_AUTH_LIMIT);
        assert_eq!(issuer.token_ttl, Duration::from_secs(1));
        assert_eq!(
            cfg.verifier.as_ref().expect("[verifier]").leeway,
            SOAK_LEEWAY
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resident_memory_is_read_from_the_status_text() {
        let status = "Name:\tkeyshift\nVmPeak:\t  9000 kB\nVmRSS:\t   8123 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(8123));
        assert_eq!(vm_rss_kib("Name:\tkthreadd\n"), None);
        let me = Pid::try_from(i64::from(std::process::id())).expect("pid");
        assert!(me.rss_kib().is_some_and(|k| k > 0));
        assert!(
            me.fd_count().is_some_and(|n| n >= 3),
            "stdin, stdout, stderr at least"
        );
    }
}
