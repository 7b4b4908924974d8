//! TLS for nginx and kamailio: a self-signed pair generated once and kept, or the operator's own pair,
//! checked before it is installed.
use anyhow::{bail, Context as _, Result};
use std::net::IpAddr;
use std::path::Path;
use x509_parser::prelude::*;

/// A certificate and its private key, PEM encoded.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generate an ECDSA P-256 self-signed certificate valid for ten years, for `sans` (names and IPs).
pub fn self_signed(sans: &[String]) -> Result<Pair> {
    let key = rcgen::KeyPair::generate().context("generating a TLS key")?;
    let mut params = rcgen::CertificateParams::new(sans.to_vec()).context("certificate names")?;
    let year = 1970
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let cn = sans.first().cloned().unwrap_or_else(|| "omnileads".into());
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "OMniLeads (self-signed by omlboot)",
    );
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The SANs (DNS names and IPs, as text) of a PEM certificate, or an error if it does not parse.
pub fn sans_of(cert_pem: &str) -> Result<Vec<String>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => out.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    out.push(IpAddr::from([b[0], b[1], b[2], b[3]]).to_string())
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// A kept self-signed certificate is reused when it parses and still covers every wanted name.
pub fn covers(cert_pem: &str, wanted: &[String]) -> bool {
    sans_of(cert_pem).is_ok_and(|have| wanted.iter().all(|w| have.contains(w)))
}

/// Check an operator's pair: both parse, the key belongs to the certificate, and it is not expired.
pub fn check_custom(cert_pem: &str, key_pem: &str) -> Result<()> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("cert_file_name: not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("cert_file_name: not an X.509 certificate: {e}"))?;
    let key = rcgen::KeyPair::from_pem(key_pem)
        .map_err(|e| anyhow::anyhow!("key_file_name: not a PKCS#8 PEM private key ({e}); convert with `openssl pkcs8 -topk8 -nocrypt`"))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        bail!("key_file_name does not match cert_file_name (the certificate's public key differs)");
    }
    if !cert.validity().is_valid() {
        bail!(
            "cert_file_name has expired or is not valid yet (valid {} to {})",
            cert.validity().not_before,
            cert.validity().not_after
        );
    }
    Ok(())
}

/// Read the operator's files (before any change to the host) and check them.
pub fn read_custom(cert: &Path, key: &Path) -> Result<Pair> {
    let cert_pem = std::fs::read_to_string(cert)
        .with_context(|| format!("cert_file_name: reading {}", cert.display()))?;
    let key_pem = std::fs::read_to_string(key)
        .with_context(|| format!("key_file_name: reading {}", key.display()))?;
    check_custom(&cert_pem, &key_pem)?;
    Ok(Pair { cert_pem, key_pem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_has_names_and_ips_and_checks_out() {
        let sans = vec![
            "oml.example.com".to_string(),
            "10.0.0.5".to_string(),
            "203.0.113.7".to_string(),
        ];
        let p = self_signed(&sans).unwrap();
        assert_eq!(sans_of(&p.cert_pem).unwrap(), sans);
        assert!(covers(&p.cert_pem, &sans[1..]));
        assert!(!covers(&p.cert_pem, &["10.9.9.9".to_string()]));
        check_custom(&p.cert_pem, &p.key_pem).unwrap();
    }

    #[test]
    fn mismatched_or_broken_pairs_are_refused() {
        let a = self_signed(&["a.example.com".into()]).unwrap();
        let b = self_signed(&["b.example.com".into()]).unwrap();
        let e = check_custom(&a.cert_pem, &b.key_pem)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
        assert!(check_custom("garbage", &a.key_pem)
            .unwrap_err()
            .to_string()
            .contains("cert_file_name"));
        assert!(check_custom(&a.cert_pem, "garbage")
            .unwrap_err()
            .to_string()
            .contains("key_file_name"));
    }
}
