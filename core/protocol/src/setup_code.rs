//! Setup codes: the short text (and QR code) a host shows so a phone or `perch node run
//! --setup-code CODE` can find the host, pin its key and pair without manual approval.
//!
//! A code carries the host's addresses and port, the SHA-256 fingerprint of its Ed25519 key,
//! and a single-use bootstrap token. The token is what lets the device skip approval, so a
//! code is a secret for as long as its token is unused and unexpired; the fingerprint is what
//! stops a look-alike host on the LAN from catching the device.
//!
//! # Format (version 1)
//!
//! Binary layout, big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `1` |
//! | 1 | flags: bit 0 = the token is 32 bytes (else 16); bit 1 = the port is [`DEFAULT_PORT`] and omitted; bit 2 = the host serves TLS (the node dials `wss://`, pinned to the fingerprint); other bits must be 0 |
//! | 0 or 2 | port (absent when flag bit 1 is set) |
//! | 1 | address count, 1..=8 |
//! | 5 or 17 each | family tag (`4` or `6`) then the address octets, in the order a node tries them |
//! | 32 | host key fingerprint (SHA-256 of the raw Ed25519 public key) |
//! | 16 or 32 | bootstrap token, raw bytes |
//! | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Text: `PERCH1-` then the bytes in Crockford base32 (`0-9 A-Z` without `I L O U`, most
//! significant bit first, no padding, unused tail bits zero), in groups of six joined by `-`.
//! Decoding ignores case, spaces and dashes and reads `O` as `0` and `I`/`L` as `1`. The
//! CRC-32 catches every single mistyped character (a burst of at most 5 bits) and every swap
//! of two neighbours (at most 10 bits), so a typo is refused rather than read as another host.
//!
//! Hosts mint 128-bit (16-byte) bootstrap tokens ([`BOOTSTRAP_TOKEN_BYTES`]) so one IPv4
//! address on the default port gives 96 base32 characters (118 with prefix and dashes);
//! 32-byte tokens are accepted too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::DEFAULT_PORT;

/// The binary layout version this build writes and reads.
pub const VERSION: u8 = 1;
/// The text before every code; the `1` names this text encoding (base32 + CRC-32 trailer).
pub const PREFIX: &str = "PERCH1";
/// Most addresses one code carries, enough for every interface of a home machine.
pub const MAX_ADDRESSES: usize = 8;
/// Bytes of randomness in a bootstrap token a host mints (128 bits keeps the code short).
pub const BOOTSTRAP_TOKEN_BYTES: usize = 16;
/// Base32 characters per dash-separated group, short enough to read aloud.
const GROUP: usize = 6;
/// The Crockford base32 alphabet: digits and letters without I, L, O and U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Flag bit 0: the bootstrap token is 32 bytes rather than 16.
const FLAG_LONG_TOKEN: u8 = 0b01;
/// Flag bit 1: the port is the default and not written.
const FLAG_DEFAULT_PORT: u8 = 0b10;
/// Flag bit 2: the host serves TLS, issued by the key of the fingerprint.
const FLAG_TLS: u8 = 0b100;
/// Tag of an IPv4 address.
const TAG_V4: u8 = 4;
/// Tag of an IPv6 address.
const TAG_V6: u8 = 6;
/// Length of the CRC-32 trailer.
const CHECKSUM_LEN: usize = 4;
/// Fewest bytes a valid code can have (one IPv4 address, default port, 16-byte token).
const MIN_BYTES: usize = 1 + 1 + 1 + 5 + 32 + 16 + CHECKSUM_LEN;
/// Most base32 symbols any valid code can have (8 IPv6 addresses, a port, 32-byte token);
/// input beyond this is refused before doing any work on it.
const MAX_SYMBOLS: usize = ((1 + 1 + 2 + 1 + 8 * 17 + 32 + 32 + CHECKSUM_LEN) * 8).div_ceil(5);

/// Why a setup code could not be read (or written); each says what the user should check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupCodeError {
    /// Nothing but spaces and dashes was given.
    #[error("the setup code is empty")]
    Empty,
    /// The text does not start with `PERCH1`.
    #[error("this is not a Perch setup code (it should start with {PREFIX})")]
    BadPrefix,
    /// A character that no setup code contains.
    #[error("{ch:?} is not a setup-code character")]
    BadCharacter {
        /// The offending character as typed.
        ch: char,
    },
    /// The code ends early: part of it was not copied.
    #[error("the setup code is incomplete; copy all of it")]
    Truncated,
    /// The checksum does not match: the code was mistyped or altered.
    #[error("the setup code has a typo (its checksum does not match)")]
    ChecksumMismatch,
    /// The code was made by a newer (or unknown) host version.
    #[error("setup code version {0} is not supported; update Perch")]
    UnsupportedVersion(u8),
    /// The code uses flag bits this build does not know.
    #[error("setup code flags {0:#04x} are not supported; update Perch")]
    UnsupportedFlags(u8),
    /// An address with a family tag other than IPv4 or IPv6.
    #[error("setup code address family {0} is not supported")]
    UnknownAddressFamily(u8),
    /// The code lists no address to connect to.
    #[error("the setup code lists no host address")]
    NoAddresses,
    /// More than [`MAX_ADDRESSES`] addresses.
    #[error("the setup code lists more than {MAX_ADDRESSES} addresses")]
    TooManyAddresses,
    /// Bytes after the last field, or text longer than any setup code.
    #[error("the setup code is longer than it should be")]
    TrailingData,
    /// (Encoding only) the bootstrap token is not base64url of 16 or 32 bytes.
    #[error("the bootstrap token must be base64url (no padding) of 16 or 32 bytes")]
    BadToken,
}

/// Everything a device needs to find, trust and join a host; see the module docs for the
/// wire format.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode {
    /// Layout version; [`VERSION`] for codes this build writes.
    pub version: u8,
    /// Host addresses in the order a node should try them (1..=[`MAX_ADDRESSES`]).
    pub addresses: Vec<IpAddr>,
    /// Gateway port.
    pub port: u16,
    /// SHA-256 of the host's raw Ed25519 public key, which the node pins.
    pub fingerprint: [u8; 32],
    /// The single-use bootstrap token, base64url without padding of 16 (or 32) bytes.
    pub bootstrap_token: String,
    /// The host serves TLS: the node dials `wss://` (its certificate is issued by the key of
    /// [`SetupCode::fingerprint`]).
    pub tls: bool,
}

/// Redacts the token, so a code never leaks through a log line.
impl std::fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupCode")
            .field("version", &self.version)
            .field("addresses", &self.addresses)
            .field("port", &self.port)
            .field("fingerprint", &self.fingerprint_hex())
            .field("bootstrap_token", &"<redacted>")
            .field("tls", &self.tls)
            .finish()
    }
}

impl SetupCode {
    /// A version-1 code, so callers need not spell the version out.
    pub fn new(
        addresses: Vec<IpAddr>,
        port: u16,
        fingerprint: [u8; 32],
        bootstrap_token: String,
    ) -> Self {
        SetupCode {
            version: VERSION,
            addresses,
            port,
            fingerprint,
            bootstrap_token,
            tls: false,
        }
    }

    /// The same code for a host that serves (or does not serve) TLS.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// The text to show, type or put in a QR code: `PERCH1-XXXXXX-XXXXXX-...`, upper case
    /// (so a QR code can use its compact alphanumeric mode). Fails only for a code that could
    /// not be decoded again (wrong version, 0 or more than 8 addresses, malformed token).
    pub fn encode(&self) -> Result<String, SetupCodeError> {
        let bytes = self.to_bytes()?;
        let symbols = to_base32(&bytes);
        let mut out = String::with_capacity(PREFIX.len() + symbols.len() * 7 / 6 + 1);
        out.push_str(PREFIX);
        for group in symbols.chunks(GROUP) {
            out.push('-');
            out.extend(group.iter().map(|&b| char::from(b)));
        }
        Ok(out)
    }

    /// Reads a code as a person might type it: any case, with or without spaces and dashes,
    /// `O`/`I`/`L` for `0`/`1`/`1`.
    pub fn decode(s: &str) -> Result<SetupCode, SetupCodeError> {
        let symbols = normalized_symbols(s)?;
        let (bytes, clean_tail) = from_base32(&symbols);
        if clean_tail
            && let Some((body, sum)) = bytes.split_last_chunk::<CHECKSUM_LEN>()
            && crc32fast::hash(body).to_be_bytes() == *sum
        {
            return parse_body(body);
        }
        // Not a well-formed code: tell a short copy apart from a typo where the header allows.
        let short = bytes.len() < MIN_BYTES
            || declared_len(&bytes).is_some_and(|expected| bytes.len() < expected);
        Err(if short {
            SetupCodeError::Truncated
        } else {
            SetupCodeError::ChecksumMismatch
        })
    }

    /// The host id a node should see in the host's signed challenge.
    pub fn host_id(&self) -> String {
        crate::identity::host_id_for(&self.fingerprint_hex())
    }

    /// The fingerprint as lowercase hex, the form `HostProof::verify` returns and nodes pin.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }

    /// URLs for every address in order (IPv6 in brackets), for the node to try: `wss://` when
    /// the host serves TLS, else `ws://`.
    pub fn gateway_urls(&self) -> Vec<String> {
        let scheme = if self.tls { "wss" } else { "ws" };
        self.addresses
            .iter()
            .map(|ip| format!("{scheme}://{}", SocketAddr::new(*ip, self.port)))
            .collect()
    }

    /// The binary layout, checksum included.
    fn to_bytes(&self) -> Result<Vec<u8>, SetupCodeError> {
        if self.version != VERSION {
            return Err(SetupCodeError::UnsupportedVersion(self.version));
        }
        if self.addresses.is_empty() {
            return Err(SetupCodeError::NoAddresses);
        }
        let count =
            u8::try_from(self.addresses.len()).map_err(|_| SetupCodeError::TooManyAddresses)?;
        if usize::from(count) > MAX_ADDRESSES {
            return Err(SetupCodeError::TooManyAddresses);
        }
        let token = URL_SAFE_NO_PAD
            .decode(&self.bootstrap_token)
            .map_err(|_| SetupCodeError::BadToken)?;
        let mut flags = 0;
        match token.len() {
            16 => {}
            32 => flags |= FLAG_LONG_TOKEN,
            _ => return Err(SetupCodeError::BadToken),
        }
        if self.port == DEFAULT_PORT {
            flags |= FLAG_DEFAULT_PORT;
        }
        if self.tls {
            flags |= FLAG_TLS;
        }

        let mut out = Vec::with_capacity(MIN_BYTES + 16 * self.addresses.len() + 18);
        out.push(self.version);
        out.push(flags);
        if flags & FLAG_DEFAULT_PORT == 0 {
            out.extend_from_slice(&self.port.to_be_bytes());
        }
        out.push(count);
        for ip in &self.addresses {
            match ip {
                IpAddr::V4(v4) => {
                    out.push(TAG_V4);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.push(TAG_V6);
                    out.extend_from_slice(&v6.octets());
                }
            }
        }
        out.extend_from_slice(&self.fingerprint);
        out.extend_from_slice(&token);
        let sum = crc32fast::hash(&out);
        out.extend_from_slice(&sum.to_be_bytes());
        Ok(out)
    }
}

/// Strips separators, checks the prefix and maps the rest to 5-bit values.
fn normalized_symbols(s: &str) -> Result<Vec<u8>, SetupCodeError> {
    let mut chars = s.chars().filter(|c| !c.is_whitespace() && *c != '-');
    let mut seen_any = false;
    for expected in PREFIX.chars() {
        let Some(ch) = chars.next() else {
            // Only a piece of the prefix (or nothing at all) was given.
            return Err(if seen_any {
                SetupCodeError::Truncated
            } else {
                SetupCodeError::Empty
            });
        };
        seen_any = true;
        let ch_up = ch.to_ascii_uppercase();
        let matches = ch_up == expected || (expected == '1' && matches!(ch_up, 'I' | 'L'));
        if !matches {
            return Err(SetupCodeError::BadPrefix);
        }
    }
    let mut symbols = Vec::with_capacity(MAX_SYMBOLS.min(s.len()));
    for ch in chars {
        if symbols.len() == MAX_SYMBOLS {
            return Err(SetupCodeError::TrailingData);
        }
        symbols.push(symbol_value(ch).ok_or(SetupCodeError::BadCharacter { ch })?);
    }
    Ok(symbols)
}

/// The 5-bit value of a typed character, forgiving case and Crockford's look-alikes.
fn symbol_value(ch: char) -> Option<u8> {
    let up = match ch.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    let byte = u8::try_from(up).ok()?;
    ALPHABET
        .iter()
        .position(|&a| a == byte)
        .and_then(|i| u8::try_from(i).ok())
}

/// Bytes to Crockford base32 symbols (ASCII), most significant bit first, zero-filled tail.
fn to_base32(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut acc: u16 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[usize::from((acc >> bits) & 0x1f)]);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[usize::from((acc << (5 - bits)) & 0x1f)]);
    }
    out
}

/// 5-bit values to bytes; the flag says whether the tail was canonical (fewer than 5 spare
/// bits, all zero), which a typo in the last character can break.
fn from_base32(symbols: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(symbols.len() * 5 / 8);
    let mut acc: u16 = 0;
    let mut bits = 0u32;
    for &v in symbols {
        acc = (acc << 5) | u16::from(v & 0x1f);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Truncation keeps exactly the eight bits above the `bits` spare ones.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (out, bits < 5 && acc == 0)
}

/// Reads fields off the front of a byte slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SetupCodeError> {
        if self.rest.len() < n {
            return Err(SetupCodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, SetupCodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SetupCodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// The header fields shared by parsing and length diagnosis.
struct Header {
    flags: u8,
    port: u16,
    count: usize,
}

/// Reads version, flags, port and address count, checking each.
fn read_header(r: &mut Reader<'_>) -> Result<Header, SetupCodeError> {
    let version = r.byte()?;
    if version != VERSION {
        return Err(SetupCodeError::UnsupportedVersion(version));
    }
    let flags = r.byte()?;
    if flags & !(FLAG_LONG_TOKEN | FLAG_DEFAULT_PORT | FLAG_TLS) != 0 {
        return Err(SetupCodeError::UnsupportedFlags(flags));
    }
    let port = if flags & FLAG_DEFAULT_PORT != 0 {
        DEFAULT_PORT
    } else {
        u16::from_be_bytes(r.array()?)
    };
    let count = usize::from(r.byte()?);
    if count == 0 {
        return Err(SetupCodeError::NoAddresses);
    }
    if count > MAX_ADDRESSES {
        return Err(SetupCodeError::TooManyAddresses);
    }
    Ok(Header { flags, port, count })
}

/// Reads one family-tagged address.
fn read_address(r: &mut Reader<'_>) -> Result<IpAddr, SetupCodeError> {
    match r.byte()? {
        TAG_V4 => Ok(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))),
        TAG_V6 => Ok(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))),
        other => Err(SetupCodeError::UnknownAddressFamily(other)),
    }
}

/// Token length the flags announce.
fn token_len(flags: u8) -> usize {
    if flags & FLAG_LONG_TOKEN != 0 { 32 } else { 16 }
}

/// Parses a body whose checksum already matched.
fn parse_body(body: &[u8]) -> Result<SetupCode, SetupCodeError> {
    let mut r = Reader { rest: body };
    let header = read_header(&mut r)?;
    let addresses = (0..header.count)
        .map(|_| read_address(&mut r))
        .collect::<Result<Vec<_>, _>>()?;
    let fingerprint = r.array::<32>()?;
    let token = r.take(token_len(header.flags))?;
    if !r.rest.is_empty() {
        return Err(SetupCodeError::TrailingData);
    }
    Ok(SetupCode {
        version: VERSION,
        addresses,
        port: header.port,
        fingerprint,
        bootstrap_token: URL_SAFE_NO_PAD.encode(token),
        tls: header.flags & FLAG_TLS != 0,
    })
}

/// The total length (checksum included) the header of an unverified code claims, if its
/// header is readable; running out of bytes mid-header claims "more than there is".
fn declared_len(bytes: &[u8]) -> Option<usize> {
    let walk = || -> Result<usize, SetupCodeError> {
        let mut r = Reader { rest: bytes };
        let header = read_header(&mut r)?;
        for _ in 0..header.count {
            read_address(&mut r)?;
        }
        Ok(bytes.len() - r.rest.len() + 32 + token_len(header.flags) + CHECKSUM_LEN)
    };
    match walk() {
        Ok(n) => Some(n),
        Err(SetupCodeError::Truncated) => Some(usize::MAX),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN16: &str = "AAECAwQFBgcICQoLDA0ODw"; // bytes 0..16
    const TOKEN32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"; // bytes 0..32

    fn fp() -> [u8; 32] {
        let mut f = [0u8; 32];
        for (i, b) in f.iter_mut().enumerate() {
            *b = 0xa0 ^ (i as u8).wrapping_mul(37);
        }
        f
    }

    fn lan_code() -> SetupCode {
        SetupCode::new(
            vec!["192.168.1.10".parse().unwrap()],
            DEFAULT_PORT,
            fp(),
            TOKEN16.to_string(),
        )
    }

    /// Builds a code text from an arbitrary body with a correct checksum, to reach the
    /// errors that only an authentic-looking code can produce.
    fn text_from_body(body: &[u8]) -> String {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
        let symbols = to_base32(&bytes);
        format!("{PREFIX}-{}", String::from_utf8(symbols).unwrap())
    }

    /// The body of `lan_code` (no checksum), to tweak.
    fn lan_body() -> Vec<u8> {
        let mut b = lan_code().to_bytes().unwrap();
        b.truncate(b.len() - CHECKSUM_LEN);
        b
    }

    /// Tiny deterministic PRNG (xorshift64*), so the fuzz tests repeat exactly.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn lan_example_round_trips_and_is_short() {
        let code = lan_code();
        let text = code.encode().unwrap();
        assert!(text.starts_with("PERCH1-"), "{text}");
        let payload: String = text[PREFIX.len()..].chars().filter(|c| *c != '-').collect();
        assert_eq!(payload.len(), 96, "{text}");
        assert_eq!(text.len(), 118, "{text}");
        assert!(
            text[PREFIX.len() + 1..]
                .split('-')
                .all(|g| g.len() == GROUP)
        );
        assert_eq!(SetupCode::decode(&text).unwrap(), code);
        assert_eq!(code.gateway_urls(), vec!["ws://192.168.1.10:18789"]);
        assert_eq!(code.fingerprint_hex().len(), 64);
        assert_eq!(code.host_id(), code.fingerprint_hex()[..16]);
        // Only QR alphanumeric-mode characters.
        assert!(
            text.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || c == '-')
        );
    }

    #[test]
    fn the_tls_flag_round_trips_and_picks_wss() {
        let code = lan_code().with_tls(true);
        let text = code.encode().unwrap();
        assert_ne!(text, lan_code().encode().unwrap());
        let back = SetupCode::decode(&text).unwrap();
        assert!(back.tls);
        assert_eq!(back, code);
        assert_eq!(back.gateway_urls(), vec!["wss://192.168.1.10:18789"]);
        assert!(
            !SetupCode::decode(&lan_code().encode().unwrap())
                .unwrap()
                .tls
        );
    }

    #[test]
    fn round_trips_ipv6_several_addresses_ports_and_long_tokens() {
        let cases = [
            SetupCode::new(vec!["::1".parse().unwrap()], 443, fp(), TOKEN16.into()),
            SetupCode::new(
                vec!["fe80::1ff:fe23:4567:890a".parse().unwrap()],
                DEFAULT_PORT,
                fp(),
                TOKEN32.into(),
            ),
            SetupCode::new(
                vec![
                    "10.0.0.2".parse().unwrap(),
                    "2001:db8::42".parse().unwrap(),
                    "100.64.1.2".parse().unwrap(),
                ],
                1,
                [0xff; 32],
                TOKEN32.into(),
            ),
            SetupCode::new(
                (0..8)
                    .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)))
                    .collect(),
                u16::MAX,
                [0; 32],
                TOKEN32.into(),
            ),
        ];
        for code in cases {
            let text = code.encode().unwrap();
            assert_eq!(SetupCode::decode(&text).unwrap(), code, "{text}");
        }
        let multi = SetupCode::new(
            vec!["10.0.0.2".parse().unwrap(), "2001:db8::42".parse().unwrap()],
            8080,
            fp(),
            TOKEN16.into(),
        );
        assert_eq!(
            multi.gateway_urls(),
            vec!["ws://10.0.0.2:8080", "ws://[2001:db8::42]:8080"]
        );
    }

    #[test]
    fn decoding_forgives_case_spaces_dashes_and_look_alikes() {
        let code = lan_code();
        let text = code.encode().unwrap();
        let sloppy: String = text
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(SetupCode::decode(&sloppy).unwrap(), code);
        let squashed: String = text.chars().filter(|c| *c != '-').collect();
        assert_eq!(SetupCode::decode(&format!("  {squashed}\n")).unwrap(), code);
        let with_i = text.replace('1', "I");
        assert_eq!(SetupCode::decode(&with_i).unwrap(), code);
    }

    #[test]
    fn every_error_is_reachable() {
        use SetupCodeError::*;
        assert_eq!(SetupCode::decode(""), Err(Empty));
        assert_eq!(SetupCode::decode(" - -\t"), Err(Empty));
        assert_eq!(SetupCode::decode("HELLO-WORLD"), Err(BadPrefix));
        assert_eq!(SetupCode::decode("PERCH2-ABCDEF"), Err(BadPrefix));
        assert_eq!(SetupCode::decode("perc"), Err(Truncated));
        assert_eq!(SetupCode::decode("PERCH1"), Err(Truncated));
        assert_eq!(
            SetupCode::decode("PERCH1-ABCUEF"),
            Err(BadCharacter { ch: 'U' })
        );
        assert_eq!(
            SetupCode::decode("PERCH1-AB!"),
            Err(BadCharacter { ch: '!' })
        );
        assert_eq!(
            SetupCode::decode("PERCH1-ABé"),
            Err(BadCharacter { ch: 'é' })
        );

        let text = lan_code().encode().unwrap();
        assert_eq!(SetupCode::decode(&text[..text.len() - 10]), Err(Truncated));
        let mut typo = text.clone().into_bytes();
        let i = 30; // inside the fingerprint
        typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            SetupCode::decode(std::str::from_utf8(&typo).unwrap()),
            Err(ChecksumMismatch)
        );

        let mut body = lan_body();
        body[0] = 2;
        assert_eq!(
            SetupCode::decode(&text_from_body(&body)),
            Err(UnsupportedVersion(2))
        );
        let mut body = lan_body();
        body[1] |= 0x80;
        assert_eq!(
            SetupCode::decode(&text_from_body(&body)),
            Err(UnsupportedFlags(0x82))
        );
        let mut body = lan_body();
        body[2] = 0;
        assert_eq!(SetupCode::decode(&text_from_body(&body)), Err(NoAddresses));
        let mut body = lan_body();
        body[2] = 9;
        assert_eq!(
            SetupCode::decode(&text_from_body(&body)),
            Err(TooManyAddresses)
        );
        let mut body = lan_body();
        body[3] = 5;
        assert_eq!(
            SetupCode::decode(&text_from_body(&body)),
            Err(UnknownAddressFamily(5))
        );
        let mut body = lan_body();
        body.push(0);
        assert_eq!(SetupCode::decode(&text_from_body(&body)), Err(TrailingData));
        let mut body = lan_body();
        body.pop();
        assert_eq!(SetupCode::decode(&text_from_body(&body)), Err(Truncated));
        let huge = format!("PERCH1-{}", "A".repeat(MAX_SYMBOLS + 1));
        assert_eq!(SetupCode::decode(&huge), Err(TrailingData));
    }

    #[test]
    fn encoding_refuses_codes_that_could_not_be_decoded() {
        use SetupCodeError::*;
        let mut c = lan_code();
        c.addresses.clear();
        assert_eq!(c.encode(), Err(NoAddresses));
        c.addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST); 9];
        assert_eq!(c.encode(), Err(TooManyAddresses));
        c.addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST); 300];
        assert_eq!(c.encode(), Err(TooManyAddresses));
        let mut c = lan_code();
        c.version = 7;
        assert_eq!(c.encode(), Err(UnsupportedVersion(7)));
        for bad in [
            "",
            "not base64!",
            "AAECAwQFBgcICQoLDA0ODw==",
            "AAECAwQFBgcICQoLDA0O",
        ] {
            let mut c = lan_code();
            c.bootstrap_token = bad.to_string();
            assert_eq!(c.encode(), Err(BadToken), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_token() {
        let shown = format!("{:?}", lan_code());
        assert!(!shown.contains(TOKEN16), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let codes = [
            lan_code(),
            SetupCode::new(
                vec!["10.0.0.2".parse().unwrap(), "2001:db8::42".parse().unwrap()],
                8080,
                fp(),
                TOKEN32.into(),
            ),
        ];
        let replacements: Vec<char> = ALPHABET
            .iter()
            .map(|&b| char::from(b))
            .chain("UOIL-!".chars())
            .collect();
        for code in codes {
            let text = code.encode().unwrap();
            let original: Vec<char> = text.chars().collect();
            let canonical = SetupCode::decode(&text).unwrap();
            for i in 0..original.len() {
                for &r in &replacements {
                    let mut changed = original.clone();
                    changed[i] = r;
                    let changed: String = changed.into_iter().collect();
                    match SetupCode::decode(&changed) {
                        Err(_) => {}
                        // Only a no-op edit may decode: a look-alike or a dash for a dash.
                        Ok(decoded) => {
                            assert_eq!(decoded, canonical, "{changed} decoded differently");
                            let same_value = original[i] == r
                                || (i >= PREFIX.len()
                                    && symbol_value(original[i]).is_some()
                                    && symbol_value(original[i]) == symbol_value(r))
                                || (i == PREFIX.len() - 1 && matches!(r, 'I' | 'L'));
                            assert!(same_value, "{changed} should have been refused");
                        }
                    }
                }
            }
            // Swapping neighbours is caught too.
            for i in PREFIX.len()..original.len() - 1 {
                if original[i] == original[i + 1] || original[i] == '-' || original[i + 1] == '-' {
                    continue;
                }
                let mut swapped = original.clone();
                swapped.swap(i, i + 1);
                let swapped: String = swapped.into_iter().collect();
                assert!(SetupCode::decode(&swapped).is_err(), "{swapped}");
            }
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for code in [
            lan_code(),
            SetupCode::new(
                vec!["2001:db8::42".parse().unwrap(); 3],
                9,
                fp(),
                TOKEN32.into(),
            ),
        ] {
            let text = code.encode().unwrap();
            for len in 0..text.len() {
                let cut = &text[..len];
                let err = SetupCode::decode(cut).unwrap_err();
                let expected = if len == 0 {
                    SetupCodeError::Empty
                } else {
                    SetupCodeError::Truncated
                };
                assert_eq!(err, expected, "{cut}");
            }
        }
    }

    #[test]
    fn random_strings_never_panic_or_decode() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let pool: Vec<char> = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcxyzOIlLU- \n!é€"
            .chars()
            .collect();
        for _ in 0..20_000 {
            let len = rng.below(140);
            let mut s = String::from(if rng.below(4) == 0 { "" } else { "PERCH1-" });
            for _ in 0..len {
                s.push(pool[rng.below(pool.len())]);
            }
            assert!(SetupCode::decode(&s).is_err(), "{s}");
        }
    }

    #[test]
    fn random_authentic_bodies_never_panic() {
        // Correct checksums over random bytes reach the structural parser.
        let mut rng = Rng(42);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut body = if rng.below(2) == 0 {
                lan_body()
            } else {
                vec![VERSION]
            };
            let extra = rng.below(80);
            for _ in 0..extra {
                body.push(rng.next() as u8);
            }
            if rng.below(3) == 0 && body.len() > 1 {
                let i = rng.below(body.len());
                body[i] = rng.next() as u8;
            }
            if let Ok(code) = SetupCode::decode(&text_from_body(&body)) {
                // Whatever decodes must re-encode to the same bytes.
                assert_eq!(SetupCode::decode(&code.encode().unwrap()).unwrap(), code);
                accepted += 1;
            }
        }
        // Sanity: the generator is not so wild that nothing ever parses.
        assert!(accepted > 0);
    }

    #[test]
    fn base32_matches_crockford_and_rejects_dirty_tails() {
        assert_eq!(to_base32(b""), b"");
        assert_eq!(to_base32(&[0xff]), b"ZW");
        assert_eq!(to_base32(b"foobar"), b"CSQPYRK1E8");
        let values: Vec<u8> = b"CSQPYRK1E8"
            .iter()
            .map(|&b| symbol_value(char::from(b)).unwrap())
            .collect();
        assert_eq!(from_base32(&values), (b"foobar".to_vec(), true));
        // "ZZ" carries two non-zero spare bits: not canonical.
        assert_eq!(from_base32(&[31, 31]), (vec![0xff], false));
        // Three symbols leave seven spare bits: no whole-byte input makes that.
        assert!(!from_base32(&[0, 0, 0]).1);
    }
}
