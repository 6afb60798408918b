//! A minimal DER walk: just enough to read the subject common name of a certificate.
//!
//! Only certificates that already passed webpki verification (or that baton issued itself)
//! are read here, so this does not need to be a general X.509 parser.

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_VERSION: u8 = 0xa0;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_IA5_STRING: u8 = 0x16;
/// OID 2.5.4.3 (id-at-commonName), content bytes.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One tag-length-value item and what follows it.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    rest: &'a [u8],
}

/// Reads one TLV (single-byte tags, definite lengths up to 4 length bytes).
fn read_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, after) = input.split_at(count);
        input = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if input.len() < len {
        return None;
    }
    let (content, rest) = input.split_at(len);
    Some(Tlv { tag, content, rest })
}

/// Reads one TLV and checks its tag.
fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    read_tlv(input).filter(|tlv| tlv.tag == tag)
}

/// The subject common name of a DER certificate, if it has one.
pub(crate) fn subject_common_name(cert_der: &[u8]) -> Option<String> {
    let cert = expect(cert_der, TAG_SEQUENCE)?;
    let tbs = expect(cert.content, TAG_SEQUENCE)?;
    let mut fields = tbs.content;
    if read_tlv(fields)?.tag == TAG_VERSION {
        fields = read_tlv(fields)?.rest;
    }
    // serial, signature algorithm, issuer, validity; then the subject.
    for _ in 0..4 {
        fields = read_tlv(fields)?.rest;
    }
    let subject = expect(fields, TAG_SEQUENCE)?;
    common_name_in(subject.content)
}

/// Finds the common name among the relative distinguished names of a Name.
fn common_name_in(mut rdns: &[u8]) -> Option<String> {
    while !rdns.is_empty() {
        let set = expect(rdns, TAG_SET)?;
        let mut attrs = set.content;
        while !attrs.is_empty() {
            let attr = expect(attrs, TAG_SEQUENCE)?;
            let oid = expect(attr.content, TAG_OID)?;
            if oid.content == OID_COMMON_NAME {
                return string_value(oid.rest);
            }
            attrs = attr.rest;
        }
        rdns = set.rest;
    }
    None
}

/// Decodes a directory string of the kinds rcgen and common tools write.
fn string_value(input: &[u8]) -> Option<String> {
    let value = read_tlv(input)?;
    match value.tag {
        TAG_UTF8_STRING | TAG_PRINTABLE_STRING | TAG_IA5_STRING => {
            std::str::from_utf8(value.content).ok().map(str::to_owned)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_common_name_of_rcgen_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["n1".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "org");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "node-1");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_common_name(cert.der()).as_deref(), Some("node-1"));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(subject_common_name(&[]), None);
        assert_eq!(subject_common_name(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(subject_common_name(&[0x30, 0x03, 0x30, 0x01]), None);
    }
}
