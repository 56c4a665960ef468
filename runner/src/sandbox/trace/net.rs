//! Socket addresses a traced call passes (`connect`, `bind`, `sendto`, `sendmsg`), decoded
//! from the bytes of a `struct sockaddr` (x86_64 layouts).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A decoded address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SocketAddress {
    /// `AF_INET` / `AF_INET6`.
    Ip {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
    },
    /// `AF_UNIX`: the path, or `@name` for an abstract socket, or empty when unnamed.
    Unix(String),
}

impl SocketAddress {
    /// `inet`, `inet6` or `unix`.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Ip {
                ip: IpAddr::V4(_), ..
            } => "inet",
            Self::Ip {
                ip: IpAddr::V6(_), ..
            } => "inet6",
            Self::Unix(_) => "unix",
        }
    }

    /// Whether it stays inside the sandbox: loopback or a unix socket.
    pub fn is_local(&self) -> bool {
        match self {
            Self::Ip { ip, .. } => ip.is_loopback() || ip.to_canonical().is_loopback(),
            Self::Unix(_) => true,
        }
    }
}

/// Decodes `bytes` (a `sockaddr` of `len` bytes as the call gave it); `None` for families
/// that carry no address we report (netlink, packet, ...) or truncated structures.
pub fn decode(bytes: &[u8]) -> Option<SocketAddress> {
    let family = u16::from_le_bytes(bytes.get(0..2)?.try_into().ok()?);
    match family {
        AF_INET => {
            let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
            let octets: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            Some(SocketAddress::Ip {
                ip: IpAddr::V4(Ipv4Addr::from(octets)),
                port,
            })
        }
        AF_INET6 => {
            let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
            let octets: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            Some(SocketAddress::Ip {
                ip: IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            })
        }
        AF_UNIX => {
            let path = bytes.get(2..).unwrap_or_default();
            let text = match path.first() {
                // Abstract: a leading NUL, the name is the rest (NULs included, shown as-is).
                Some(0) => format!(
                    "@{}",
                    String::from_utf8_lossy(&path[1..]).trim_end_matches('\0')
                ),
                _ => {
                    let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
                    String::from_utf8_lossy(&path[..end]).into_owned()
                }
            };
            Some(SocketAddress::Unix(text))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_inet_inet6_and_unix() {
        let mut v4 = vec![2, 0, 0x01, 0xbb, 10, 0, 0, 1];
        v4.extend([0; 8]);
        let a = decode(&v4).unwrap();
        assert_eq!(
            a,
            SocketAddress::Ip {
                ip: "10.0.0.1".parse().unwrap(),
                port: 443
            }
        );
        assert_eq!(a.family(), "inet");
        assert!(!a.is_local());
        let mut v6 = vec![10, 0, 0, 53, 0, 0, 0, 0];
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        v6.extend([0; 4]);
        let a = decode(&v6).unwrap();
        assert_eq!(a.family(), "inet6");
        assert!(a.is_local());
        let mut unix = vec![1, 0];
        unix.extend(b"/run/airlock/oidc.sock\0junk");
        assert_eq!(
            decode(&unix),
            Some(SocketAddress::Unix("/run/airlock/oidc.sock".into()))
        );
        let mut abstract_ = vec![1, 0, 0];
        abstract_.extend(b"name");
        assert_eq!(
            decode(&abstract_),
            Some(SocketAddress::Unix("@name".into()))
        );
        // Netlink, and truncated structures, carry nothing to report.
        assert_eq!(decode(&[16, 0, 0, 0]), None);
        assert_eq!(decode(&[2, 0, 1]), None);
        assert_eq!(decode(&[]), None);
    }
}
