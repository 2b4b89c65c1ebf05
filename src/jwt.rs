//! JWT plumbing shared by every JWT verifier: reading the header and claims once (to choose
//! a verifier, before anything is trusted), then verifying the signature over the signing
//! input and checking the claims from that one read, each failure named by the check that
//! failed.
//!
//! The header is parsed here rather than by `jsonwebtoken::decode_header`, so that each
//! refusal is precise: `alg: none` and the key-carrying headers `jku`, `x5u`, `jwk`, `x5c`
//! get their own error instead of a generic parse failure. Those headers are refused
//! outright: keys come only from configured JWKS URLs, and a token that tries to name its own
//! key is an attack or a misconfiguration either way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::VerifyError;
use crate::jws::VerifyingKey;

/// The latest `exp` accepted: 9999-12-31T23:59:59Z, the last second `time` represents
/// without its `large-dates` feature (which another crate in the build may turn on, so the
/// bound is written out rather than left to the conversion).
pub(crate) const MAX_EXP: u64 = 253_402_300_799;

/// What a token says about itself, before anything is verified: its header and its claims,
/// read once, here. Classification chooses a verifier from them; [`verify`] then checks the
/// signature over the same bytes and the claims from this same read, so no part of the token
/// is parsed twice and no two readers of it can disagree.
pub(crate) struct Unverified {
    pub(crate) alg: Algorithm,
    pub(crate) typ: Option<String>,
    pub(crate) kid: Option<String>,
    /// Every claim; trusted only once [`verify`] has checked the signature over them.
    claims: Claims,
    /// The token's length, and where its signing input (`header.payload`) ends: [`verify`]
    /// checks it is given the token these claims were read from.
    token_len: usize,
    signing_input_end: usize,
}

impl Unverified {
    /// The `iss` claim (a string: [`inspect`] refuses any other type); never trusted.
    pub(crate) fn iss(&self) -> Option<&str> {
        self.claims.str("iss")
    }

    /// The `aud` claim as a list (a string, or strings: [`inspect`] refuses anything else;
    /// empty when absent); never trusted.
    pub(crate) fn aud(&self) -> impl Iterator<Item = &str> + Clone {
        let aud = self.claims.find("aud").and_then(|v| names(&self.claims, v));
        let (one, many) = match aud {
            Some(Names::One(s)) => (Some(s), &[][..]),
            Some(Names::Many(items)) => (None, items),
            None => (None, &[][..]),
        };
        one.into_iter().chain(many.iter().filter_map(Value::as_str))
    }

    /// The `sub` claim, if a string. Only for choosing a verifier and checking its shape
    /// before discovery; never trusted.
    pub(crate) fn sub(&self) -> Option<&str> {
        self.claims.str("sub")
    }

    /// The RFC 8693 `act` claim of an on-behalf-of token, if any (not `null`); never trusted.
    pub(crate) fn act(&self) -> Option<Cow<'_, Value>> {
        self.claim("act").filter(|v| !v.is_null())
    }

    /// An unverified claim, for choosing where the key comes from; never trusted.
    pub(crate) fn claim(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.claims.get(name)
    }

    /// An unverified string claim, for choosing where the key comes from; never trusted.
    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.str(name)
    }
}

impl std::fmt::Debug for Unverified {
    /// The header fields and the claims that choose a verifier; not the other claims (an
    /// on-behalf-of token's `obo` claim is a credential).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("alg", &self.alg)
            .field("typ", &self.typ)
            .field("kid", &self.kid)
            .field("iss", &self.iss())
            .field("aud", &self.aud().collect::<Vec<_>>())
            .field("sub", &self.sub())
            .finish_non_exhaustive()
    }
}

/// The claims of a JWT, read once into a form that costs no allocation per claim: the
/// decoded payload, and each top-level claim's name and value, a string as a span of the
/// payload (a copy only when it held escapes), a number or a boolean as it is, and a list or
/// an object as a JSON value. What is accepted is exactly what `serde_json` reads into a
/// `Map<String, Value>` (the same number rules, the same nesting limit), with one claim
/// repeated refused.
///
/// The registered claims every verifier reads are found where the read left them
/// ([`KNOWN`]); any other claim by a scan (a token carries a handful).
pub(crate) struct Claims {
    /// The decoded payload, the JSON text every span points into.
    json: String,
    /// Each claim's name and value, in the token's order; no name twice.
    entries: Vec<(Text, Item)>,
    /// Where each of the [`KNOWN`] claims is in `entries`, plus one (0: absent).
    known: [usize; KNOWN.len()],
}

/// The claims looked up on every verification, by [`known`] slot.
const KNOWN: [&str; 6] = ["exp", "nbf", "iat", "iss", "sub", "aud"];

/// The slot of `name` in [`KNOWN`]: three bytes compared as one number, no string compare.
#[inline]
fn known(name: &str) -> Option<usize> {
    let &[a, b, c] = name.as_bytes() else {
        return None;
    };
    match &[a, b, c] {
        b"exp" => Some(0),
        b"nbf" => Some(1),
        b"iat" => Some(2),
        b"iss" => Some(3),
        b"sub" => Some(4),
        b"aud" => Some(5),
        _ => None,
    }
}

/// A piece of text of the payload: where it lies, or (when unescaping changed it, so no span
/// holds it) its own copy.
enum Text {
    At(u32, u32),
    Owned(Box<str>),
}

/// One claim's value, as read.
enum Item {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(Text),
    /// A list or an object.
    Composite(Value),
}

impl std::fmt::Debug for Claims {
    /// The claim names only: a value can be a credential (an on-behalf-of token's `obo`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(name, _)| self.text(name)))
            .finish()
    }
}

impl Claims {
    fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::At(start, end) => self
                .json
                .get(*start as usize..*end as usize)
                .unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }

    #[inline]
    fn find(&self, name: &str) -> Option<&Item> {
        let at = match known(name) {
            Some(slot) => self.known[slot].checked_sub(1)?,
            None => self
                .entries
                .iter()
                .position(|(n, _)| self.text(n) == name)?,
        };
        self.entries.get(at).map(|(_, item)| item)
    }

    /// Whether the claim is there (`null` included).
    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// The claim as a JSON value (borrowed for a list or an object, built for the others).
    pub(crate) fn get(&self, name: &str) -> Option<Cow<'_, Value>> {
        Some(match self.find(name)? {
            Item::Null => Cow::Owned(Value::Null),
            Item::Bool(b) => Cow::Owned(Value::Bool(*b)),
            Item::Number(n) => Cow::Owned(Value::Number(n.clone())),
            Item::Str(t) => Cow::Owned(Value::String(self.text(t).to_owned())),
            Item::Composite(v) => Cow::Borrowed(v),
        })
    }

    /// The claim, if it is a string.
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        match self.find(name)? {
            Item::Str(t) => Some(self.text(t)),
            _ => None,
        }
    }

    /// The claim, if it is a whole number from 0 to 2^64 - 1.
    pub(crate) fn u64(&self, name: &str) -> Option<u64> {
        match self.find(name)? {
            Item::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// Reads a JWS payload (base64url of a JSON object).
    fn decode(payload: &str) -> Result<Self, VerifyError> {
        let bytes = Part::Claims.bytes(payload)?;
        // Invalid UTF-8 cannot be JSON: refused here once, not string by string.
        let json = String::from_utf8(bytes).map_err(|_| Part::Claims.not_an_object())?;
        Self::from_json(json)
    }

    /// Reads claims from their JSON text.
    pub(crate) fn from_json(json: String) -> Result<Self, VerifyError> {
        let not_an_object = VerifyError::Malformed("claims are not a JSON object");
        let mut de = serde_json::Deserializer::from_str(&json);
        let entries = serde::de::DeserializeSeed::deserialize(Entries(&json), &mut de)
            .and_then(|entries| de.end().map(|()| entries))
            .map_err(|_| not_an_object)?;
        let mut claims = Self {
            json,
            entries,
            known: [0; KNOWN.len()],
        };
        if claims.has_repeated_name() {
            return Err(VerifyError::Malformed("a claim appears twice"));
        }
        let mut known_at = [0; KNOWN.len()];
        for (i, (name, _)) in claims.entries.iter().enumerate() {
            if let Some(slot) = known(claims.text(name)) {
                known_at[slot] = i + 1;
            }
        }
        claims.known = known_at;
        Ok(claims)
    }

    /// RFC 7519 section 4 lets a parser take the last of two claims of one name; two readers
    /// of one token that take different ones disagree about who it is for, so a repeated
    /// claim is refused. Pair by pair for a handful of claims, sorted for more (an 8 KiB
    /// token holds a thousand one-letter claims: no quadratic work for an attacker to ask).
    fn has_repeated_name(&self) -> bool {
        let n = self.entries.len();
        if n <= 16 {
            return (0..n).any(|i| {
                let a = self.text(&self.entries[i].0);
                self.entries[i + 1..].iter().any(|(b, _)| self.text(b) == a)
            });
        }
        let mut names: Vec<&str> = self.entries.iter().map(|(n, _)| self.text(n)).collect();
        names.sort_unstable();
        names.windows(2).any(|w| w[0] == w[1])
    }
}

/// The span of `base` that `s` is (`serde_json` hands out borrowed strings only from its
/// input), or a copy of `s` should it not be one.
fn text_in(base: &str, s: &str) -> Text {
    let start = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    let end = start.wrapping_add(s.len());
    match (
        u32::try_from(start),
        u32::try_from(end),
        base.get(start..end),
    ) {
        (Ok(a), Ok(b), Some(at)) if std::ptr::eq(at, s) => Text::At(a, b),
        _ => Text::Owned(s.into()),
    }
}

/// Reads the top-level object of the payload `.0` into claims.
struct Entries<'j>(&'j str);

impl<'de> serde::de::DeserializeSeed<'de> for Entries<'de> {
    type Value = Vec<(Text, Item)>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Entries<'de> {
    type Value = Vec<(Text, Item)>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    #[inline]
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(8);
        while let Some(name) = map.next_key_seed(ItemSeed(self.0))? {
            let Item::Str(name) = name else {
                return Err(serde::de::Error::custom("a claim name is not a string"));
            };
            entries.push((name, map.next_value_seed(ItemSeed(self.0))?));
        }
        Ok(entries)
    }
}

/// Reads one value (or name) of the payload `.0`.
#[derive(Clone, Copy)]
struct ItemSeed<'j>(&'j str);

impl<'de> serde::de::DeserializeSeed<'de> for ItemSeed<'de> {
    type Value = Item;
    #[inline]
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ItemSeed<'de> {
    type Value = Item;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Item, E> {
        Ok(Item::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Item, E> {
        Ok(Item::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Item, E> {
        Ok(Item::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Item, E> {
        // As `serde_json::Value` reads it (a JSON number is always finite).
        Ok(serde_json::Number::from_f64(n).map_or(Item::Null, Item::Number))
    }
    #[inline]
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Item, E> {
        Ok(Item::Str(text_in(self.0, s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Item, E> {
        Ok(Item::Str(Text::Owned(s.into())))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        let d = serde::de::value::SeqAccessDeserializer::new(seq);
        Value::deserialize(d).map(Item::Composite)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        let d = serde::de::value::MapAccessDeserializer::new(map);
        Value::deserialize(d).map(Item::Composite)
    }
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
}

/// Reads the header and claims of a compact JWS without verifying it.
///
/// A token that is not three segments is refused as "not a compact JWS", whatever else is
/// wrong with it.
pub(crate) fn inspect(token: &str) -> Result<Unverified, VerifyError> {
    // The first and the last dot are found from the two ends, so the claims (most of the
    // token) are not scanned for dots (issue 11: splitting the whole token cost about 1,000
    // instructions). A dot among the claims cannot pass unseen: `.` is not base64url, so
    // such a token fails below, and is then named for its shape.
    let not_compact = VerifyError::Malformed("not a compact JWS");
    let (Some(first), Some(last)) = (token.find('.'), token.rfind('.')) else {
        return Err(not_compact);
    };
    if first == last {
        return Err(not_compact);
    }
    inspect_segments(token, first, last).map_err(|e| {
        if token[first + 1..last].contains('.') {
            not_compact
        } else {
            e
        }
    })
}

/// [`inspect`] of a token whose first dot is at `first` and last dot at `last`. Inlined:
/// as a call of its own, the claims reader was no longer inlined into it (about 500
/// instructions more, callgrind).
#[inline(always)]
fn inspect_segments(token: &str, first: usize, last: usize) -> Result<Unverified, VerifyError> {
    let (header, payload) = (&token[..first], &token[first + 1..last]);
    let signing_input_end = last;
    let mut buf = [0u8; 512];
    let header_bytes =
        crate::jws::base64url(header, &mut buf).map_err(|_| Part::Header.not_base64url())?;
    let header: RawHeader<'_> = object(&header_bytes).map_err(|()| Part::Header.not_an_object())?;
    for (present, name) in [
        (header.jku.is_some(), "jku"),
        (header.x5u.is_some(), "x5u"),
        (header.jwk.is_some(), "jwk"),
        (header.x5c.is_some(), "x5c"),
    ] {
        if present {
            return Err(VerifyError::KeyInHeader(name));
        }
    }
    if header.crit.is_some() {
        // RFC 7515 4.1.11: a recipient that does not understand a critical extension must
        // reject the token. We understand none.
        return Err(VerifyError::Malformed("unsupported `crit` header"));
    }
    let alg = match header.alg.as_deref() {
        None => return Err(VerifyError::Malformed("header has no alg")),
        Some(a) if a.eq_ignore_ascii_case("none") => return Err(VerifyError::AlgorithmNone),
        Some(a) => a
            .parse::<Algorithm>()
            .map_err(|_| VerifyError::Malformed("unknown alg"))?,
    };
    let claims = Claims::decode(payload)?;
    match claims.find("iss") {
        None | Some(Item::Null | Item::Str(_)) => {}
        Some(_) => return Err(VerifyError::Malformed("iss is not a string")),
    }
    match claims.find("aud") {
        None | Some(Item::Null | Item::Str(_)) => {}
        Some(Item::Composite(Value::Array(items))) => {
            if !items.iter().all(Value::is_string) {
                return Err(VerifyError::Malformed("aud holds a non-string"));
            }
        }
        Some(_) => return Err(VerifyError::Malformed("aud is not a string or list")),
    }
    Ok(Unverified {
        alg,
        typ: header.typ,
        kid: header.kid,
        claims,
        token_len: token.len(),
        signing_input_end,
    })
}

/// `T` read from JSON that is an object: serde also reads a struct from a JSON array
/// (`["ES256", null, ...]` as a header); RFC 7515 and 7519 say header and claims are
/// objects, and jsonwebtoken reads them so.
fn object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ()> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(());
    }
    serde_json::from_slice(bytes).map_err(|_| ())
}

/// A segment of a compact JWS that holds JSON, for naming what is wrong with it.
#[derive(Clone, Copy)]
pub(crate) enum Part {
    Header,
    Claims,
}

impl Part {
    /// `segment` base64url-decoded.
    fn bytes(self, segment: &str) -> Result<Vec<u8>, VerifyError> {
        URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| self.not_base64url())
    }

    fn not_base64url(self) -> VerifyError {
        VerifyError::Malformed(match self {
            Part::Header => "header is not base64url",
            Part::Claims => "claims are not base64url",
        })
    }

    fn not_an_object(self) -> VerifyError {
        VerifyError::Malformed(match self {
            Part::Header => "header is not a JSON object",
            Part::Claims => "claims are not a JSON object",
        })
    }
}

/// `segment`, a header or claims segment, read as a `T` from its JSON object.
pub(crate) fn decode_part<T: serde::de::DeserializeOwned>(
    segment: &str,
    part: Part,
) -> Result<T, VerifyError> {
    let bytes = part.bytes(segment)?;
    object(&bytes).map_err(|()| part.not_an_object())
}

/// The instant an `exp` names, or [`VerifyError::ExpOutOfRange`] when it names no real date.
///
/// Every verifier converts `exp` here, and nowhere else: `exp as i64` turns 2^64 - 1 into -1
/// (1969), and a date past year 9999 cannot be printed in an audit event or a cache entry.
/// `jsonwebtoken` accepts any `exp` up to 2^64 - 1 as "not expired", so the bound is ours.
pub(crate) fn expiry(exp: u64) -> Result<OffsetDateTime, VerifyError> {
    if exp > MAX_EXP {
        return Err(VerifyError::ExpOutOfRange);
    }
    let secs = i64::try_from(exp).map_err(|_| VerifyError::ExpOutOfRange)?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| VerifyError::ExpOutOfRange)
}

/// The verified token's `exp` (a whole number of seconds, checked by [`verify`] already)
/// and the instant it names ([`expiry`]).
pub(crate) fn exp_claim(claims: &Claims) -> Result<(u64, OffsetDateTime), VerifyError> {
    let exp = claims
        .u64("exp")
        .ok_or(VerifyError::Malformed("exp is not a number"))?;
    Ok((exp, expiry(exp)?))
}

/// Verifies the signature of `token` (the token `u` was read from) with `key`, then its
/// standard claims as `validation` asks, and returns the claims, now verified. Every JWT
/// verifier checks here, so every failure is named the same way.
///
/// The checks and their order are `jsonwebtoken::decode`'s (a test compares the two on a
/// grid of claims and options): the algorithm must be allowed and of the key's family, the
/// signature must verify, and only then are the claims looked at ([`validate`]). The
/// difference is the work: the header and claims are not parsed again, and the key is
/// parsed once ([`VerifyingKey`]).
pub(crate) fn verify<'u>(
    token: &str,
    u: &'u Unverified,
    key: &VerifyingKey,
    validation: &Validation,
) -> Result<&'u Claims, VerifyError> {
    let end = u.signing_input_end;
    if token.len() != u.token_len || token.as_bytes().get(end) != Some(&b'.') {
        // Not the token `u` was read from: a bug in the caller, refused all the same.
        return Err(VerifyError::Malformed("token does not decode"));
    }
    if !validation.algorithms.contains(&u.alg) {
        return Err(VerifyError::AlgorithmNotAllowed);
    }
    if key.family() != u.alg.family() {
        return Err(VerifyError::KeyAlgorithmMismatch);
    }
    if validation
        .algorithms
        .iter()
        .any(|a| a.family() != key.family())
    {
        return Err(VerifyError::AlgorithmNotAllowed);
    }
    key.verify(u.alg, &token.as_bytes()[..end], &token[end + 1..])?;
    validate(&u.claims, validation, jsonwebtoken::get_current_timestamp())?;
    Ok(&u.claims)
}

/// A standard claim, read as `jsonwebtoken` reads it for validation.
enum Claim<T> {
    Absent,
    /// Present as `null`.
    Null,
    Read(T),
    /// Present, of a type the claim cannot have.
    Unreadable,
}

impl<'a, T> Claim<T> {
    fn read(claims: &'a Claims, name: &str, f: impl FnOnce(&'a Item) -> Option<T>) -> Self {
        match claims.find(name) {
            None => Claim::Absent,
            Some(Item::Null) => Claim::Null,
            Some(v) => f(v).map_or(Claim::Unreadable, Claim::Read),
        }
    }

    fn is_read(&self) -> bool {
        matches!(self, Claim::Read(_))
    }
}

/// A NumericDate as `jsonwebtoken` takes it: a whole number of seconds from 0 to 2^64 - 1,
/// or a finite, non-negative float below 2^64, rounded.
fn seconds(v: &Item) -> Option<u64> {
    let Item::Number(n) = v else { return None };
    n.as_u64().or_else(|| {
        let f = n.as_f64()?;
        (n.is_f64() && f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.round() as u64)
    })
}

/// A string, or a list of strings (`iss` and `aud`).
enum Names<'a> {
    One(&'a str),
    Many(&'a [Value]),
}

impl Names<'_> {
    fn any(&self, accepted: impl Fn(&str) -> bool) -> bool {
        match self {
            Names::One(s) => accepted(s),
            Names::Many(items) => items.iter().filter_map(Value::as_str).any(accepted),
        }
    }
}

/// `v` as [`Names`], if it is a string or a list of nothing but strings.
fn names<'a>(claims: &'a Claims, v: &'a Item) -> Option<Names<'a>> {
    match v {
        Item::Str(t) => Some(Names::One(claims.text(t))),
        Item::Composite(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Some(Names::Many(items))
        }
        _ => None,
    }
}

/// Checks the standard claims as `validation` asks, at `now`, with `jsonwebtoken`'s rules:
/// the required claims present and readable, `exp` and `nbf` within the leeway, `sub`, `iss`
/// and `aud` among the accepted values (a list of `iss` or `aud` values passes when any of
/// them is accepted). An `exp` that is there but names no real date is
/// [`VerifyError::ExpOutOfRange`], not a missing claim.
fn validate(claims: &Claims, validation: &Validation, now: u64) -> Result<(), VerifyError> {
    let exp = Claim::read(claims, "exp", seconds);
    let nbf = Claim::read(claims, "nbf", seconds);
    let sub = Claim::read(claims, "sub", |v| match v {
        Item::Str(t) => Some(claims.text(t)),
        _ => None,
    });
    let iss = Claim::read(claims, "iss", |v| names(claims, v));
    let aud = Claim::read(claims, "aud", |v| names(claims, v));
    // The set holds a name or three: walked, not hashed.
    let required = |name: &str| validation.required_spec_claims.iter().any(|c| c == name);
    if required("exp") && !exp.is_read() {
        return Err(match exp {
            Claim::Unreadable => VerifyError::ExpOutOfRange,
            _ => VerifyError::MissingClaim("exp"),
        });
    }
    for (name, present) in [
        ("sub", sub.is_read()),
        ("iss", iss.is_read()),
        ("aud", aud.is_read()),
        ("nbf", nbf.is_read()),
    ] {
        if required(name) && !present {
            return Err(VerifyError::MissingClaim(name));
        }
    }
    if validation.validate_exp || validation.validate_nbf {
        if validation.validate_exp && matches!(exp, Claim::Null | Claim::Unreadable) {
            return Err(VerifyError::ExpOutOfRange);
        }
        if validation.validate_nbf && matches!(nbf, Claim::Null | Claim::Unreadable) {
            return Err(VerifyError::Malformed("nbf is out of range"));
        }
        let early = validation.reject_tokens_expiring_in_less_than;
        if let Claim::Read(exp) = exp {
            if exp < early {
                return Err(VerifyError::Malformed("token expires too soon"));
            }
            if validation.validate_exp && exp - early < now.saturating_sub(validation.leeway) {
                return Err(VerifyError::Expired);
            }
        }
        if let Claim::Read(nbf) = nbf
            && validation.validate_nbf
            && nbf > now.saturating_add(validation.leeway)
        {
            return Err(VerifyError::NotYetValid);
        }
    }
    if let (Claim::Read(sub), Some(accepted)) = (&sub, validation.sub.as_deref())
        && *sub != accepted
    {
        return Err(VerifyError::WrongSubject);
    }
    if let (Claim::Read(iss), Some(accepted)) = (&iss, &validation.iss)
        && !iss.any(|i| accepted.contains(i))
    {
        return Err(VerifyError::WrongIssuer);
    }
    if !validation.validate_aud {
        return Ok(());
    }
    match (&aud, &validation.aud) {
        (Claim::Read(_), None) => Err(VerifyError::WrongAudience),
        (Claim::Read(aud), Some(accepted)) if !aud.any(|a| accepted.contains(a)) => {
            Err(VerifyError::WrongAudience)
        }
        _ => Ok(()),
    }
}

/// Refuses a token whose `iat` is later than now plus the leeway: a clock that far ahead,
/// or a token minted to start in the future, is not trusted.
pub(crate) fn check_iat(claims: &Claims, leeway: u64) -> Result<(), VerifyError> {
    if let Some(iat) = claims.find("iat") {
        let iat = match iat {
            Item::Number(n) => n.as_f64(),
            _ => None,
        }
        .ok_or(VerifyError::Malformed("iat is not a number"))?;
        let now = jsonwebtoken::get_current_timestamp() as f64;
        if iat > now + leeway as f64 {
            return Err(VerifyError::IssuedInFuture);
        }
    }
    Ok(())
}

/// A string claim.
pub(crate) fn str_claim<'a>(
    claims: &'a Claims,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    match claims.find(name) {
        Some(Item::Str(t)) if !claims.text(t).is_empty() => Ok(claims.text(t)),
        Some(_) => Err(VerifyError::Malformed("a claim has the wrong type")),
        None => Err(VerifyError::MissingClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(claims))
    }

    #[test]
    fn reads_header_and_claims() {
        let u = inspect(&token(
            r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#,
            r#"{"iss":"https://idp","aud":["a","b"]}"#,
        ))
        .unwrap();
        assert_eq!(u.alg, Algorithm::ES256);
        assert_eq!(u.kid.as_deref(), Some("k1"));
        assert_eq!(u.iss(), Some("https://idp"));
        assert_eq!(u.aud().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn expiry_is_bounded_to_year_9999() {
        assert_eq!(
            expiry(MAX_EXP).unwrap(),
            time::macros::datetime!(9999-12-31 23:59:59 UTC)
        );
        assert_eq!(expiry(0).unwrap(), OffsetDateTime::UNIX_EPOCH);
        for exp in [MAX_EXP + 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(
                expiry(exp).unwrap_err(),
                VerifyError::ExpOutOfRange,
                "{exp}"
            );
        }
    }

    #[test]
    fn refuses_none_and_key_headers() {
        assert_eq!(
            inspect(&token(r#"{"alg":"none"}"#, "{}")).unwrap_err(),
            VerifyError::AlgorithmNone
        );
        assert_eq!(
            inspect(&token(r#"{"alg":"NoNe"}"#, "{}")).unwrap_err(),
            VerifyError::AlgorithmNone
        );
        for h in ["jku", "x5u", "jwk", "x5c"] {
            let header = format!(r#"{{"alg":"RS256","{h}":"x"}}"#);
            assert_eq!(
                inspect(&token(&header, "{}")).unwrap_err(),
                VerifyError::KeyInHeader(h)
            );
        }
        assert!(inspect("a.b").is_err());
        assert!(inspect(&token(r#"{"alg":"XX1"}"#, "{}")).is_err());
        assert!(inspect(&token(r#"{"alg":"RS256"}"#, r#"{"iss":5}"#)).is_err());
    }

    /// The dots are found from the two ends, but a token of any other number of segments
    /// than three is still refused for its shape, before anything about its contents, and
    /// a three-segment token is read as before.
    #[test]
    fn refuses_every_token_not_of_three_segments_for_its_shape() {
        let h = b64(r#"{"alg":"ES256"}"#);
        let c = b64(r#"{"sub":"a"}"#);
        let not_compact = VerifyError::Malformed("not a compact JWS");
        for t in [
            String::new(),
            ".".to_owned(),
            h.clone(),
            format!("{h}.{c}"),
            format!("{h}.{c}.sig.more"),
            format!("{h}.{c}..sig"),
            format!("{h}..{c}.sig"),
            format!("{h}.{c}.{c}.{c}.sig"),
            // Bad contents too: the shape is still what is named.
            format!("%%.{c}.x.y"),
            format!("{h}.%%.x.y"),
            "...".to_owned(),
            "a.b.c.d".to_owned(),
        ] {
            assert_eq!(inspect(&t).unwrap_err(), not_compact, "{t:?}");
        }
        let u = inspect(&format!("{h}.{c}.sig")).unwrap();
        assert_eq!(u.sub(), Some("a"));
        assert_eq!(u.signing_input_end, h.len() + 1 + c.len());
        // Three segments, some empty: read (and refused) for what is in them.
        assert_eq!(
            inspect(&format!("{h}..sig")).unwrap_err(),
            VerifyError::Malformed("claims are not a JSON object")
        );
        assert_eq!(
            inspect(&format!(".{c}.sig")).unwrap_err(),
            VerifyError::Malformed("header is not a JSON object")
        );
        assert!(
            inspect(&format!("{h}.{c}.")).is_ok(),
            "signature checked later"
        );
    }

    /// serde reads a struct from an array too: `["ES256",null,...]` was a header with an
    /// `alg`, and `["https://idp",...]` claims with an `iss`.
    #[test]
    fn refuses_header_and_claims_written_as_arrays() {
        let header = r#"["ES256",null,null,null,null,null,null,null]"#;
        assert_eq!(
            inspect(&token(header, "{}")).unwrap_err(),
            VerifyError::Malformed("header is not a JSON object")
        );
        let claims = r#"["https://idp.example.com",null,null,null]"#;
        assert_eq!(
            inspect(&token(r#"{"alg":"ES256"}"#, claims)).unwrap_err(),
            VerifyError::Malformed("claims are not a JSON object")
        );
    }

    #[test]
    fn refuses_a_repeated_claim() {
        for claims in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"aud":"x","exp":1,"aud":"y"}"#,
            r#"{"azp":"ci","azp":"evil"}"#,
        ] {
            assert_eq!(
                inspect(&token(r#"{"alg":"ES256"}"#, claims)).unwrap_err(),
                VerifyError::Malformed("a claim appears twice"),
                "{claims}"
            );
        }
        // The same name at another depth is not a repeat.
        let u = inspect(&token(
            r#"{"alg":"ES256"}"#,
            r#"{"sub":"a","act":{"sub":"b"}}"#,
        ));
        assert_eq!(u.unwrap().sub(), Some("a"));
    }

    /// Claims are read as `serde_json` reads a map of values: escapes undone (in names too,
    /// so an escaped repeat is a repeat), numbers and nesting under its rules, strings kept
    /// as spans of the payload when they hold no escape.
    #[test]
    fn claims_read_as_serde_json_reads_them() {
        let json = r#"{"s\u0075b":"ja\u006ee","iss":"https://idp","n":-3,"f":1.5,
            "t":true,"z":null,"l":["a",{"b":[1]}],"o":{"k":"v"},"\u00e9":"\u00e9t\u00e9"}"#;
        let c = Claims::from_json(json.to_owned()).unwrap();
        let map: Map<String, Value> = serde_json::from_str(json).unwrap();
        assert_eq!(c.entries.len(), map.len());
        for (name, value) in &map {
            assert_eq!(c.get(name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(c.str("sub"), Some("jane"));
        assert_eq!(c.str("iss"), Some("https://idp"));
        assert!(matches!(c.find("iss"), Some(Item::Str(Text::At(..)))));
        assert_eq!(c.str("é"), Some("été"));
        assert_eq!(c.u64("n"), None);
        assert!(c.contains_key("z") && !c.contains_key("y"));
        assert_eq!(
            format!("{c:?}"),
            r#"["sub", "iss", "n", "f", "t", "z", "l", "o", "é"]"#
        );
        assert_eq!(
            Claims::from_json(r#"{"sub":"a","s\u0075b":"b"}"#.to_owned()).unwrap_err(),
            VerifyError::Malformed("a claim appears twice")
        );
        // Refused by a map of values too.
        for refused in [
            r#"{"n":1e400}"#,
            r#"{"n":01}"#,
            r#"{"s":"\ud800"}"#,
            r#"{"a":1}x"#,
            r#"{"a":1,}"#,
            r#"["a"]"#,
            "7",
        ] {
            assert!(Claims::from_json(refused.to_owned()).is_err(), "{refused}");
            assert!(serde_json::from_str::<Map<String, Value>>(refused).is_err());
        }
        // Nested past serde_json's limit: refused, as a map of values refuses it.
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(serde_json::from_str::<Map<String, Value>>(&deep).is_err());
        assert!(Claims::from_json(deep).is_err());
    }

    #[test]
    fn known_slots_are_the_known_names() {
        for (slot, name) in KNOWN.iter().enumerate() {
            assert_eq!(known(name), Some(slot));
        }
        for other in ["", "ex", "expp", "EXP", "jti", "azp", "act"] {
            assert_eq!(known(other), None);
        }
    }

    /// A repeated claim is found among a thousand as among two, without a quadratic scan.
    #[test]
    fn finds_a_repeat_among_many_claims() {
        let many = |last: &str| {
            let mut json = String::from("{");
            for i in 0..1_000 {
                json.push_str(&format!(r#""c{i}":{i},"#));
            }
            json.push_str(&format!(r#""{last}":0}}"#));
            json
        };
        assert!(Claims::from_json(many("fresh")).is_ok());
        assert_eq!(
            Claims::from_json(many("c500")).unwrap_err(),
            VerifyError::Malformed("a claim appears twice")
        );
    }

    /// `verify` checks the token it is given is the one the claims were read from.
    #[test]
    fn verify_refuses_another_token_than_the_one_read() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = VerifyingKey::hmac(secret);
        let enc = jsonwebtoken::EncodingKey::from_secret(secret);
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        let one = jsonwebtoken::encode(&header, &serde_json::json!({"sub": "a"}), &enc).unwrap();
        let other = jsonwebtoken::encode(&header, &serde_json::json!({"sub": "bb"}), &enc).unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let u = inspect(&one).unwrap();
        assert_eq!(verify(&one, &u, &key, &v).unwrap().str("sub"), Some("a"));
        assert_eq!(
            verify(&other, &u, &key, &v).unwrap_err(),
            VerifyError::Malformed("token does not decode")
        );
    }

    /// How the crate named `jsonwebtoken::decode`'s errors before it verified tokens itself.
    fn jsonwebtoken_verdict(
        token: &str,
        claims: &Value,
        v: &Validation,
    ) -> Result<(), VerifyError> {
        use jsonwebtoken::errors::ErrorKind as K;
        let key = jsonwebtoken::DecodingKey::from_secret(SECRET);
        let Err(e) = jsonwebtoken::decode::<Map<String, Value>>(token, &key, v) else {
            return Ok(());
        };
        Err(match e.kind() {
            K::ExpiredSignature => VerifyError::Expired,
            K::ImmatureSignature => VerifyError::NotYetValid,
            K::InvalidAudience => VerifyError::WrongAudience,
            K::InvalidIssuer => VerifyError::WrongIssuer,
            K::InvalidSubject => VerifyError::WrongSubject,
            // An `exp` that is there but does not read as seconds: no real date.
            K::MissingRequiredClaim(c) if c == "exp" && !claims["exp"].is_null() => {
                VerifyError::ExpOutOfRange
            }
            K::MissingRequiredClaim(c) => VerifyError::MissingClaim(match c.as_str() {
                "exp" => "exp",
                "iss" => "iss",
                "aud" => "aud",
                "sub" => "sub",
                "nbf" => "nbf",
                _ => "a required claim",
            }),
            K::InvalidClaimFormat(c) if c == "exp" => VerifyError::ExpOutOfRange,
            K::InvalidClaimFormat(c) if c == "nbf" => VerifyError::Malformed("nbf is out of range"),
            other => panic!("unexpected jsonwebtoken error {other:?}"),
        })
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// The claim checks give `jsonwebtoken::decode`'s verdict, error for error, on 40,000
    /// combinations of claims (absent, null, in and out of range, of the wrong type, lists)
    /// and options (required claims, issuers, audiences, leeway, what is validated).
    #[test]
    fn claim_checks_agree_with_jsonwebtoken() {
        use serde_json::json;
        let now = jsonwebtoken::get_current_timestamp();
        let absent = Value::Null; // `Value::Null` here means: leave the claim out.
        let times = |base: u64| {
            vec![
                absent.clone(),
                json!(null),
                json!(base + 300),
                json!(base - 30),
                json!(base - 300),
                json!((base + 300) as f64 + 0.4),
                json!(1e300),
                json!(-1),
                json!("soon"),
                json!(u64::MAX),
                json!(true),
            ]
        };
        let exps = times(now);
        let nbfs = times(now);
        let names = |a: &str, b: &str| {
            vec![
                absent.clone(),
                json!(null),
                json!(a),
                json!(b),
                json!([b, a]),
                json!([b]),
                json!([]),
                json!([5]),
                json!(5),
            ]
        };
        let isss = names("https://a", "https://b");
        let auds = names("svc", "other");
        let subs = vec![
            absent.clone(),
            json!(null),
            json!("x"),
            json!("y"),
            json!(5),
        ];
        let required: [&[&str]; 6] = [
            &["exp"],
            &["exp", "sub"],
            &["exp", "iss", "aud"],
            &[],
            &["nbf"],
            &["aud"],
        ];
        let enc = jsonwebtoken::EncodingKey::from_secret(SECRET);
        let key = VerifyingKey::hmac(SECRET);
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        // A fixed pseudo-random walk through the grid, the same on every run.
        let mut state: u64 = 0x5eed_1234_abcd_ef01;
        let mut pick = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % n
        };
        let mut compared = 0;
        for _ in 0..40_000 {
            let mut claims = Map::new();
            for (name, values) in [
                ("exp", &exps),
                ("nbf", &nbfs),
                ("iss", &isss),
                ("aud", &auds),
                ("sub", &subs),
            ] {
                let i = pick(values.len());
                // Index 0 is "absent"; a JSON null elsewhere is a present null.
                if i != 0 {
                    claims.insert(name.to_owned(), values[i].clone());
                }
            }
            let mut v = Validation::new(Algorithm::HS256);
            let names = required[pick(required.len())];
            v.set_required_spec_claims(names);
            v.leeway = [0, 60][pick(2)];
            v.validate_exp = pick(4) != 0;
            v.validate_nbf = pick(2) == 0;
            v.validate_aud = pick(4) != 0;
            if pick(2) == 0 {
                v.set_issuer(&["https://a"]);
            }
            if pick(3) != 0 {
                v.set_audience(&["svc"]);
            }
            if pick(8) == 0 {
                v.sub = Some("x".to_owned());
            }
            let claims = Value::Object(claims);
            let token = jsonwebtoken::encode(&header, &claims, &enc).unwrap();
            let u = inspect(&token);
            let ours = u
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|u| verify(&token, u, &key, &v).map(|_| ()));
            if let Err(VerifyError::Malformed(
                "iss is not a string" | "aud holds a non-string" | "aud is not a string or list",
            )) = u
            {
                // Refused before any verifier is chosen, stricter than `jsonwebtoken`.
                continue;
            }
            let theirs = jsonwebtoken_verdict(&token, &claims, &v);
            let read = Claims::from_json(claims.to_string()).unwrap();
            let readable = |name: &str| match read.find(name) {
                None | Some(Item::Null) => false,
                Some(v) if name == "exp" || name == "nbf" => seconds(v).is_some(),
                Some(Item::Str(_)) => true,
                Some(v) => name != "sub" && super::names(&read, v).is_some(),
            };
            let missing = names.iter().filter(|n| !readable(n)).count();
            if missing > 1 {
                // `jsonwebtoken` checks required claims in a `HashSet`'s order: which one it
                // names first varies; that one is missing does not.
                assert_eq!(ours.is_ok(), theirs.is_ok(), "{claims} {v:?}");
            } else {
                assert_eq!(ours, theirs, "{claims} {v:?}");
            }
            compared += 1;
        }
        // The rest are refused before any verifier is chosen (an `iss` or `aud` of another type).
        assert!(compared > 12_000, "{compared}");
    }
}
