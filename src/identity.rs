//! Who is calling: the identity a transport establishes for a call (unix peer credentials, a
//! verified client certificate, or none), and the listener it came through.

use std::fmt;

/// The identity of a caller, as its transport established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A unix-socket peer, from the kernel's peer credentials.
    Unix {
        /// The caller's user id.
        uid: u32,
        /// The caller's primary group id.
        gid: u32,
        /// The caller's process id, when the kernel reports it.
        pid: Option<i32>,
    },
    /// A TLS peer with a client certificate verified against the configured CA.
    Certificate {
        /// The subject common name, if any.
        cn: Option<String>,
        /// DNS names, URIs and e-mail addresses from the subject alternative names.
        sans: Vec<String>,
    },
    /// A transport that identifies nobody (plain loopback TCP).
    Anonymous,
}

impl Identity {
    /// The identity in a verified client certificate (DER). A certificate that cannot be
    /// parsed yields an identity with no names, which no client rule matches.
    pub fn from_certificate_der(der: &[u8]) -> Self {
        use x509_parser::extensions::GeneralName;
        let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der) else {
            return Identity::Certificate {
                cn: None,
                sans: Vec::new(),
            };
        };
        // A subject with several CNs names nobody by CN: which one a rule should see is
        // ambiguous (its SANs still count).
        let mut cns = certificate.subject().iter_common_name();
        let cn = match (cns.next(), cns.next()) {
            (Some(cn), None) => cn.as_str().ok().map(str::to_owned),
            _ => None,
        };
        let sans = certificate
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(s)
                        | GeneralName::URI(s)
                        | GeneralName::RFC822Name(s) => Some((*s).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Identity::Certificate { cn, sans }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Unix { uid, gid, pid } => {
                write!(f, "uid={uid} gid={gid}")?;
                if let Some(pid) = pid {
                    write!(f, " pid={pid}")?;
                }
                Ok(())
            }
            Identity::Certificate { cn, sans } => {
                write!(f, "cert")?;
                if let Some(cn) = cn {
                    write!(f, " CN={}", cn.escape_debug())?;
                }
                if !sans.is_empty() {
                    write!(f, " SAN={}", sans.join(",").escape_debug())?;
                }
                Ok(())
            }
            Identity::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// A call's caller: its identity and the listener it came through.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub identity: Identity,
    /// Through which listener (`unix:/run/signet.sock`, `tls:0.0.0.0:50443`, …).
    pub listener: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `spooler.internal` with subject CN `spooler`, and with a
    /// second CN `admin` when `two_cns`. rcgen writes one attribute per type, so the second is
    /// written as an OU whose type (2.5.4.11) is then turned into CN (2.5.4.3), the same length
    /// in DER; the signature no longer verifies, which only the TLS layer checks, before this.
    fn certificate(two_cns: bool) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["spooler.internal".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "spooler");
        if two_cns {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationalUnitName, "admin");
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let mut der = params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec();
        if two_cns {
            // In the issuer and in the subject (the same name: self-signed).
            let ou = [0x06, 0x03, 0x55, 0x04, 0x0b];
            while let Some(at) = der.windows(ou.len()).position(|w| w == ou) {
                der[at + 4] = 0x03;
            }
        }
        der
    }

    fn names(der: &[u8]) -> (Option<String>, Vec<String>) {
        match Identity::from_certificate_der(der) {
            Identity::Certificate { cn, sans } => (cn, sans),
            other => panic!("a certificate identity: {other}"),
        }
    }

    #[test]
    fn a_certificate_names_its_one_cn_and_its_sans() {
        let (cn, sans) = names(&certificate(false));
        assert_eq!(cn.as_deref(), Some("spooler"));
        assert_eq!(sans, ["spooler.internal"]);
    }

    #[test]
    fn several_cns_name_nobody_by_cn() {
        let (cn, sans) = names(&certificate(true));
        assert_eq!(cn, None);
        assert_eq!(sans, ["spooler.internal"], "its SANs still count");
    }
}
