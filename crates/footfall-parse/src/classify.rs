//! Request classification: page view, static asset, redirect, error or other.

use footfall_event::Label;
use std::borrow::Cow;

/// File extensions counted as static assets: GoAccess's static-file list plus
/// the modern formats it lacks (webp, avif, woff2 maps, wasm, ...).
pub const STATIC_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "map", "jpg", "jpeg", "png", "gif", "ico", "svg", "webp", "avif", "bmp",
    "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "pdf", "txt", "csv", "xls", "xlsx", "doc",
    "docx", "ppt", "pptx", "zip", "gz", "tgz", "tar", "rar", "7z", "iso", "exe", "dmg", "mp3",
    "mp4", "m4a", "ogg", "wav", "flac", "webm", "mpeg", "mpg", "avi", "flv", "mov", "swf", "wasm",
    "xml", "json",
];

/// Whether a path names a static asset, by extension (case-insensitive).
pub fn is_static_path(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 5 => {
            let mut buf = [0u8; 5];
            let e = &mut buf[..ext.len()];
            e.copy_from_slice(ext.as_bytes());
            e.make_ascii_lowercase();
            STATIC_EXTENSIONS.iter().any(|s| s.as_bytes() == e)
        }
        _ => false,
    }
}

/// `redirect` for 3xx (except 304), `error` for 4xx/5xx, `static` for asset
/// paths, `page` for a successful GET/HEAD of anything else, `other` otherwise
/// (POST, OPTIONS, 1xx, ...).
pub fn classify_request(method: Option<&str>, path: &str, status: u16) -> Label {
    classify_kind(method, path.is_empty(), is_static_path(path), status)
}

/// [`classify_request`] with the path's properties already known (callers
/// that cache per path).
pub fn classify_kind(
    method: Option<&str>,
    path_is_empty: bool,
    is_static: bool,
    status: u16,
) -> Label {
    let s = match status {
        400..=599 => "error",
        300..=399 if status != 304 => "redirect",
        _ if is_static => "static",
        200..=299 | 304
            if matches!(method, Some("GET") | Some("HEAD") | None) && !path_is_empty =>
        {
            "page"
        }
        _ => "other",
    };
    Cow::Borrowed(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("page", Some("GET"), "/about", 200, "page"),
            ("not modified page", Some("GET"), "/", 304, "page"),
            ("asset", Some("GET"), "/css/site.CSS", 200, "static"),
            ("asset 304", Some("GET"), "/a.png", 304, "static"),
            ("hidden file is a page", Some("GET"), "/.env", 200, "page"),
            ("redirect", Some("GET"), "/old", 301, "redirect"),
            ("not found", Some("GET"), "/x.png", 404, "error"),
            ("server error", Some("POST"), "/api", 502, "error"),
            ("post", Some("POST"), "/wp-login.php", 200, "other"),
            ("empty request", None, "", 400, "error"),
            ("php page", Some("GET"), "/index.php", 200, "page"),
        ];
        for (name, m, p, s, want) in cases {
            assert_eq!(classify_request(m, p, s), want, "{name}");
        }
    }
}
