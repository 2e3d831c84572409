//! The one reader of `/proc` files made of `Name:   value kB` lines (`status`, `meminfo`,
//! `smaps_rollup`): the memory experiment, the scaling experiment, the measuring core and the
//! machine description all read their fields through it.

/// The field `name` of such a text, in bytes (its value is in KiB).
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// The field `name` of the file at `path`, in bytes; `None` if the file or field is missing.
pub fn read_kib_field(path: &str, name: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string(path).ok()?, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_exact_name_in_bytes() {
        let text = "Rss:                 1084 kB\nPss_Anon:    12 kB\nPss:    900 kB\n";
        assert_eq!(kib_field(text, "Rss"), Some(1084 * 1024));
        assert_eq!(kib_field(text, "Pss"), Some(900 * 1024), "not Pss_Anon");
        assert_eq!(kib_field(text, "Swap"), None);
        assert!(read_kib_field("/proc/self/status", "VmRSS").is_some_and(|b| b > 0));
    }
}
