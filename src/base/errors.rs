//! An error and its causes on one line.

/// `e` and its causes joined by `: `, each cause once: a message that
/// already quotes its source (`cannot read: No such file…`) is not followed
/// by that source again.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}
