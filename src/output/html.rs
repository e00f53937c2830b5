//! The self-contained HTML page of `rdbkit report --format html`: inline CSS and JavaScript, the
//! report's JSON embedded, no network access. The script draws a zoomable treemap of memory by key
//! prefix (squarified layout; click a prefix to zoom in, the path above it to zoom out) and fills
//! the totals and the tables (biggest keys, per type, encoding, database, expiry).

use super::report::Report;

const TEMPLATE: &str = include_str!("report.html");

/// Children kept per prefix node in the page (largest first, the rest merged into `(other)`).
pub const TREE_CHILDREN: usize = 40;

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders `report` as a standalone page titled `title`.
///
/// ```
/// use rdbkit::output::report::{Report, ReportOptions};
/// let report = Report::new(ReportOptions::default());
/// let page = rdbkit::output::html::render(&report, "dump.rdb <test>");
/// assert!(page.starts_with("<!DOCTYPE html>"));
/// assert!(page.contains("<title>dump.rdb &lt;test&gt;</title>"));
/// assert!(!page.contains("__DATA__"));
/// ```
pub fn render(report: &Report, title: &str) -> String {
    let mut data = report.to_json();
    data["prefix"]["tree"] = report.prefix_json(TREE_CHILDREN);
    // `<` never appears raw inside the script element, so no key can close it
    let json = data.to_string().replace('<', "\\u003c");
    let title = escape_html(title);
    let (head, tail) = TEMPLATE
        .split_once("__DATA__")
        .expect("template has a data slot");
    let mut out = String::with_capacity(TEMPLATE.len() + json.len());
    out.push_str(&head.replace("__TITLE__", &title));
    out.push_str(&json);
    out.push_str(&tail.replace("__TITLE__", &title));
    out
}
