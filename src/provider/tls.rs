//! Whom rustls trusts when an endpoint has a `ca_cert:`, and what a
//! rustls error says about the server's certificate. A server whose
//! certificate is byte for byte one of the file's is trusted as that
//! server (its host names and validity period still checked), whatever
//! its CA flag; any other server needs a chain to the system's roots, the
//! Mozilla roots or the file's certificates. Builds no client and sends
//! nothing: `http.rs` does.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The TLS settings of a client that trusts the certificates `ca_cert`
/// (an endpoint's `ca_cert:` file) as servers' own and as roots, besides
/// the system's and the Mozilla roots.
pub(crate) fn config(
    ca_cert: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .chain(&ca_cert)
        .cloned();
    let chain = rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())?;
    let verifier = PinnedOrChain {
        pinned: ca_cert,
        chain,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // reqwest speaks HTTP/1.1 only here, as it offers when it builds the TLS.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Trusts a server certificate that is one of `pinned` for its host names
/// and validity period; any other through `chain`.
#[derive(Debug)]
struct PinnedOrChain {
    pinned: Vec<CertificateDer<'static>>,
    chain: rustls_platform_verifier::Verifier,
}

impl ServerCertVerifier for PinnedOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return self.chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        let (not_before, not_after) = validity(end_entity).ok_or(CertificateError::BadEncoding)?;
        if now.as_secs() > not_after {
            return Err(CertificateError::ExpiredContext {
                time: now,
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_after)),
            }
            .into());
        }
        if now.as_secs() < not_before {
            return Err(CertificateError::NotValidYetContext {
                time: now,
                not_before: UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_before)),
            }
            .into());
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The certificate error rustls gave among `err`'s causes; `None` when
/// there is none.
pub(crate) fn certificate_error<'e>(
    err: &'e (dyn std::error::Error + 'static),
) -> Option<&'e CertificateError> {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(rustls::Error::InvalidCertificate(problem)) = err.downcast_ref() {
            return Some(problem);
        }
        // An I/O error's `source()` skips the error it wraps: step into it.
        source = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The validity period (`notBefore`, `notAfter`) of the DER certificate
/// `der`, in seconds since 1970; `None` when it cannot be read.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xA0;
    let (certificate, _) = element(der, SEQUENCE)?;
    let (tbs, _) = element(certificate, SEQUENCE)?;
    let rest = match element(tbs, VERSION) {
        Some((_, rest)) => rest,
        None => tbs,
    };
    let (_serial, rest) = element(rest, INTEGER)?;
    let (_signature, rest) = element(rest, SEQUENCE)?;
    let (_issuer, rest) = element(rest, SEQUENCE)?;
    let (validity, _) = element(rest, SEQUENCE)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Some((not_before, not_after))
}

/// The contents of the DER element at the start of `der` when its tag is
/// `tag`, and what follows the element.
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = der.split_first()?;
    if first != tag {
        return None;
    }
    let (&length, rest) = rest.split_first()?;
    let (length, rest) = if length < 0x80 {
        (usize::from(length), rest)
    } else {
        let bytes = usize::from(length & 0x7f);
        if bytes == 0 || bytes > 4 || rest.len() < bytes {
            return None;
        }
        let (digits, rest) = rest.split_at(bytes);
        let length = digits
            .iter()
            .fold(0usize, |n, &digit| n << 8 | usize::from(digit));
        (length, rest)
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

/// The UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) at the start of `der`, in seconds since 1970, and
/// what follows it.
fn time(der: &[u8]) -> Option<(u64, &[u8])> {
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let (text, rest, century) = if let Some((text, rest)) = element(der, UTC_TIME) {
        (text, rest, true)
    } else {
        let (text, rest) = element(der, GENERALIZED_TIME)?;
        (text, rest, false)
    };
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |from: usize, to: usize| {
        digits
            .get(from..to)
            .map(|d| d.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0')))
    };
    let (year, at) = if century {
        let yy = number(0, 2)?;
        (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
    } else {
        (number(0, 4)?, 4)
    };
    if digits.len() != at + 10 {
        return None;
    }
    let month = number(at, at + 2)?;
    let day = number(at + 2, at + 4)?;
    let hour = number(at + 4, at + 6)?;
    let minute = number(at + 6, at + 8)?;
    let second = number(at + 8, at + 10)?;
    if year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_since_1970(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, rest))
}

/// Days from 1970-01-01 to the civil date `year`-`month`-`day` (Howard
/// Hinnant's algorithm), for years from 1970.
fn days_since_1970(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn issue_23_the_validity_period_is_read_in_utc_and_generalized_time() {
        // Before 2050 certificates write UTCTime, from 2050 GeneralizedTime.
        let der = certificate((2021, 1, 1), (2051, 3, 1));
        let period = validity(&der);
        assert_eq!(period, Some((1_609_459_200, 2_561_241_600)), "{period:?}");
        let der = certificate((1999, 12, 31), (2024, 2, 29));
        let period = validity(&der);
        assert_eq!(period, Some((946_598_400, 1_709_164_800)), "{period:?}");
    }

    #[test]
    fn issue_23_a_truncated_certificate_has_no_validity_period() {
        let der = certificate((2021, 1, 1), (2051, 3, 1));
        for cut in [0, 1, 4, 40, der.len() / 2] {
            let period = validity(&der[..cut]);
            assert_eq!(period, None, "cut at {cut}: {period:?}");
        }
    }

    #[test]
    fn issue_23_days_count_from_1970() {
        let days =
            [(1970, 1, 1), (2000, 3, 1), (2024, 12, 31)].map(|(y, m, d)| days_since_1970(y, m, d));
        assert_eq!(days, [0, 11_017, 20_088], "{days:?}");
    }
}
