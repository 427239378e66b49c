//! A client's file name is kept only to name downloads (RFC 6266 Content-Disposition);
//! storage keys are generated. Still, clean it: no path, no control or bidi-override
//! characters, at most 255 characters, never empty.

/// Characters that reorder displayed text (U+202E in `invoice<U+202E>fdp.exe` shows it as `invoiceexe.pdf`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

pub fn sanitize_file_name(raw: Option<&str>, extension: &str) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        return format!("upload.{extension}");
    }
    if cleaned.chars().count() <= 255 {
        return cleaned.to_owned();
    }
    // Keep the extension when shortening.
    let ext = cleaned
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.len() <= 16)
        .unwrap_or(extension);
    let stem: String = cleaned
        .chars()
        .take(255 - ext.chars().count() - 1)
        .collect();
    format!("{stem}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_paths_controls_and_bidi() {
        assert_eq!(
            sanitize_file_name(Some("../../etc/passwd"), "txt"),
            "passwd"
        );
        assert_eq!(
            sanitize_file_name(Some("C:\\x\\report.pdf"), "pdf"),
            "report.pdf"
        );
        assert_eq!(sanitize_file_name(Some("a\u{0}b.pdf"), "pdf"), "ab.pdf");
        assert_eq!(
            sanitize_file_name(Some("invoice\u{202E}fdp.exe"), "pdf"),
            "invoicefdp.exe"
        );
        assert_eq!(sanitize_file_name(Some("..."), "wav"), "upload.wav");
        assert_eq!(sanitize_file_name(None, "wav"), "upload.wav");
        let long = format!("{}.flac", "n".repeat(300));
        let short = sanitize_file_name(Some(&long), "flac");
        assert_eq!(short.chars().count(), 255);
        assert!(short.ends_with(".flac"));
    }
}
