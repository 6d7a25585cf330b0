//! Splitting a URL into its components ([`UrlParts`]), without validating
//! or normalising it.

use memchr::{memchr, memchr2};

/// The components of an absolute or relative URL, as slices of it.
///
/// A light RFC 3986 split for referrers: no validation, no normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlParts<'a> {
    /// Scheme without `:` (`https`), when present.
    pub scheme: Option<&'a str>,
    /// `user:pass` before `@` in the authority, when present.
    pub userinfo: Option<&'a str>,
    /// Host (with brackets for IPv6 literals), when the URL has an authority.
    pub host: Option<&'a str>,
    /// Port digits after the host, when present.
    pub port: Option<&'a str>,
    /// Path (may be empty).
    pub path: &'a str,
    /// Query without `?`, when present.
    pub query: Option<&'a str>,
    /// Fragment without `#`, when present.
    pub fragment: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// Splits `url` into its components.
    ///
    /// `scheme://authority/...` and scheme-relative `//authority/...` have an
    /// authority; anything else (`/path`, `mailto:x`, garbage) is a path, query
    /// and fragment only.
    ///
    /// ```
    /// use footfall_parse::url::UrlParts;
    /// let p = UrlParts::split("https://u:p@Example.org:8443/a;b?c=d#e");
    /// assert_eq!(p.scheme, Some("https"));
    /// assert_eq!(p.userinfo, Some("u:p"));
    /// assert_eq!(p.host, Some("Example.org"));
    /// assert_eq!(p.port, Some("8443"));
    /// assert_eq!((p.path, p.query, p.fragment), ("/a;b", Some("c=d"), Some("e")));
    /// ```
    pub fn split(url: &'a str) -> UrlParts<'a> {
        let (before_fragment, fragment) = match memchr(b'#', url.as_bytes()) {
            Some(n) => (&url[..n], Some(&url[n + 1..])),
            None => (url, None),
        };
        let mut parts = match Self::split_absolute(before_fragment) {
            Some(parts) => parts,
            None => {
                let (path, query) = match memchr(b'?', before_fragment.as_bytes()) {
                    Some(n) => (&before_fragment[..n], Some(&before_fragment[n + 1..])),
                    None => (before_fragment, None),
                };
                UrlParts {
                    path,
                    query,
                    ..UrlParts::default()
                }
            }
        };
        parts.fragment = fragment;
        parts
    }

    /// [`split`](Self::split), reading a reference without a scheme whose
    /// first part is a host name or address (`www.example.com/search?q=x`,
    /// `84.203.1.217:80/`, as some proxies log referrers) as if it began
    /// with `//`.
    ///
    /// ```
    /// use footfall_parse::url::UrlParts;
    /// let p = UrlParts::split_lenient("www.google.com/search?q=x");
    /// assert_eq!((p.host, p.path, p.query), (Some("www.google.com"), "/search", Some("q=x")));
    /// assert_eq!(UrlParts::split_lenient("/a").host, None);
    /// ```
    pub fn split_lenient(url: &'a str) -> UrlParts<'a> {
        let parts = Self::split(url);
        if parts.host.is_some() || url.starts_with('/') {
            return parts;
        }
        let Some(hostport) = schemeless_host(url) else {
            return parts;
        };
        let (host, port) = split_host_port(hostport);
        UrlParts {
            host: Some(host),
            port,
            ..Self::split(&url[hostport.len()..])
        }
    }

    /// Splits a URL without fragment that has an authority; `None` otherwise.
    pub(super) fn split_absolute(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, after_scheme) = if let Some(rest) = url.strip_prefix("//") {
            (None, rest)
        } else {
            let colon = scheme_end(url)?;
            let rest = url[colon + 1..].strip_prefix("//")?;
            (Some(&url[..colon]), rest)
        };
        let auth_end = memchr2(b'/', b'?', after_scheme.as_bytes()).unwrap_or(after_scheme.len());
        let authority = &after_scheme[..auth_end];
        let after_authority = &after_scheme[auth_end..];
        let (userinfo, hostport) = match memchr::memrchr(b'@', authority.as_bytes()) {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport);
        let (path, query) = match memchr(b'?', after_authority.as_bytes()) {
            Some(n) => (&after_authority[..n], Some(&after_authority[n + 1..])),
            None => (after_authority, None),
        };
        Some(UrlParts {
            scheme,
            userinfo,
            host: Some(host),
            port,
            path,
            query,
            fragment: None,
        })
    }
}

/// The host of a scheme-less reference such as `www.example.com/page`: the
/// first `/`-delimited part, when it contains a dot and only host characters.
fn schemeless_host(reference: &str) -> Option<&str> {
    let end = reference.find(['/', '?', '#']).unwrap_or(reference.len());
    let host = &reference[..end];
    let valid = host.contains('.')
        && !host.starts_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    valid.then_some(host)
}

/// Byte index of the `:` ending a valid scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn scheme_end(url: &str) -> Option<usize> {
    let bytes = url.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        match b {
            b':' => return Some(i),
            b if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') => {}
            _ => return None,
        }
    }
    None
}

/// Splits `host[:port]`, keeping IPv6 brackets on the host.
fn split_host_port(hostport: &str) -> (&str, Option<&str>) {
    if hostport.starts_with('[') {
        if let Some(close) = memchr(b']', hostport.as_bytes()) {
            let host = &hostport[..=close];
            let port = hostport[close + 1..].strip_prefix(':');
            return (host, port);
        }
        return (hostport, None);
    }
    match memchr::memrchr(b':', hostport.as_bytes()) {
        Some(c) => (&hostport[..c], Some(&hostport[c + 1..])),
        None => (hostport, None),
    }
}
