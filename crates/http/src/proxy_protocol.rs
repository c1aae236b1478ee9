//! The PROXY protocol, version 2 (the binary one HAProxy, nginx `proxy_protocol`,
//! Envoy and cloud load balancers send): the header a proxy writes at the
//! start of a connection to say whose connection it is forwarding.
//!
//! Only version 2 is read; a connection that does not start with a valid
//! header is refused, never served as if it had none (a client could
//! otherwise reach the service around the proxy and be taken for it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12 bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The most bytes after the fixed 16 that a header may have: addresses
/// (at most 216 for AF_UNIX) and the TLVs proxies add (a unique id, TLS
/// details, a cloud endpoint id), with room to spare; a longer one is
/// refused rather than buffered.
pub const MAX_BODY_BYTES: usize = 1024;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The connection closed or failed before the whole header arrived.
    #[error("reading the PROXY header failed")]
    Io(#[from] std::io::Error),
    /// The first 12 bytes are not the version 2 signature (no header, a
    /// version 1 text header, or a client talking HTTP directly).
    #[error("no PROXY protocol v2 signature")]
    NoSignature,
    /// The version nibble is not 2, or the command is neither LOCAL nor PROXY.
    #[error("unsupported PROXY version or command byte {0:#04x}")]
    Unsupported(u8),
    /// The header announces more than [`MAX_BODY_BYTES`] after its fixed part.
    #[error("PROXY header of {0} bytes is longer than {MAX_BODY_BYTES}")]
    TooLong(usize),
    /// The address block is shorter than its family needs.
    #[error("PROXY header too short for its address family")]
    Truncated,
}

/// Reads one version 2 header from the start of `stream`, exactly (no byte
/// of what follows is consumed). Returns the source address it names: `None`
/// for a LOCAL command (the proxy's own health check) or an address family
/// without one (UNSPEC, UNIX), where the socket peer stands.
pub async fn read_v2<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed).await?;
    let len = body_len(&fixed)?;
    let mut body = [0u8; MAX_BODY_BYTES];
    let body = body.get_mut(..len).ok_or(ProxyHeaderError::TooLong(len))?;
    stream.read_exact(body).await?;
    source(&fixed, body)
}

/// The length of the part after the fixed 16 bytes, once those are checked.
pub fn body_len(fixed: &[u8; 16]) -> Result<usize, ProxyHeaderError> {
    if fixed[..12] != SIGNATURE {
        return Err(ProxyHeaderError::NoSignature);
    }
    let version_command = fixed[12];
    if version_command >> 4 != 2 || version_command & 0x0f > 1 {
        return Err(ProxyHeaderError::Unsupported(version_command));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_BODY_BYTES {
        return Err(ProxyHeaderError::TooLong(len));
    }
    Ok(len)
}

/// The source address of a checked header (`fixed`) and its `body`.
pub fn source(fixed: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    const LOCAL: u8 = 0;
    if fixed[12] & 0x0f == LOCAL {
        return Ok(None);
    }
    let port = |at: usize| -> Result<u16, ProxyHeaderError> {
        match body.get(at..at + 2) {
            Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(ProxyHeaderError::Truncated),
        }
    };
    // High nibble: 1 AF_INET, 2 AF_INET6 (source, destination, then ports).
    match fixed[13] >> 4 {
        1 => {
            let ip: [u8; 4] = body
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(ProxyHeaderError::Truncated)?;
            Ok(Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(ip)),
                port(8)?,
            )))
        }
        2 => {
            let ip: [u8; 16] = body
                .get(..16)
                .and_then(|b| b.try_into().ok())
                .ok_or(ProxyHeaderError::Truncated)?;
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                port(32)?,
            )))
        }
        _ => Ok(None),
    }
}

/// A version 2 PROXY header for `source` → `destination` over TCP (what a
/// proxy sends; for tests and tools).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21); // version 2, PROXY
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
        let mut r = bytes;
        read_v2(&mut r).await
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[tokio::test]
    async fn ipv4_and_ipv6_sources_are_read_and_nothing_after_the_header() {
        let mut bytes = encode_v2(addr("203.0.113.7:4711"), addr("10.0.0.1:443"));
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut r = &bytes[..];
        assert_eq!(
            read_v2(&mut r).await.expect("v4"),
            Some(addr("203.0.113.7:4711"))
        );
        assert_eq!(r, b"GET / HTTP/1.1\r\n", "the request is left for hyper");
        let v6 = encode_v2(addr("[2001:db8::7]:4711"), addr("[2001:db8::1]:443"));
        assert_eq!(
            read(&v6).await.expect("v6"),
            Some(addr("[2001:db8::7]:4711"))
        );
    }

    #[tokio::test]
    async fn local_commands_and_unspecified_families_name_no_source() {
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.expect("local"), None);
        let mut unspec = SIGNATURE.to_vec();
        unspec.extend_from_slice(&[0x21, 0x00, 0, 3, 1, 2, 3]);
        assert_eq!(read(&unspec).await.expect("unspec"), None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let good = encode_v2(addr("203.0.113.7:1"), addr("10.0.0.1:2"));
        // A client speaking HTTP, and PROXY v1's text form.
        assert!(matches!(
            read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await,
            Err(ProxyHeaderError::NoSignature)
        ));
        assert!(matches!(
            read(b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2\r\n").await,
            Err(ProxyHeaderError::NoSignature)
        ));
        let mut v1 = good.clone();
        v1[12] = 0x11;
        assert!(matches!(
            read(&v1).await,
            Err(ProxyHeaderError::Unsupported(0x11))
        ));
        let mut long = good.clone();
        long[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert!(matches!(
            read(&long).await,
            Err(ProxyHeaderError::TooLong(2000))
        ));
        let mut short = good.clone();
        short[14..16].copy_from_slice(&3u16.to_be_bytes());
        short.truncate(19);
        assert!(matches!(
            read(&short).await,
            Err(ProxyHeaderError::Truncated)
        ));
        // Cut off before the announced length: an I/O error, not a hang.
        assert!(matches!(
            read(&good[..20]).await,
            Err(ProxyHeaderError::Io(_))
        ));
    }
}
