//! The machine facts that decide what a switch between processes costs beyond one between
//! threads: whether the TLB keeps each address space's entries (PCID, INVPCID), whether the
//! kernel isolates its page tables (PTI, the Meltdown mitigation), and whether it flushes the
//! branch predictors when it switches address spaces (IBPB, part of the Spectre v2 state).
//!
//! Without PCID, every switch to another address space flushes the TLB, and the process
//! refills it: an indirect cost threads do not pay. With IBPB on every switch, each switch to
//! another process pays a barrier of thousands of cycles. The machine section lists every
//! mitigation; this module picks out the few that bear on switches, for the section's notes.

use serde::Serialize;

/// What this machine says about the TLB and the mitigations a switch pays for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Facts {
    /// The CPU has process-context identifiers (`pcid` in /proc/cpuinfo); `None` where the
    /// flags cannot be read or the architecture has none (e.g. not x86).
    pub pcid: Option<bool>,
    /// The CPU has the INVPCID instruction (`invpcid`).
    pub invpcid: Option<bool>,
    /// The kernel isolates its page tables (`pti` in the flags).
    pub pti: Option<bool>,
    /// /sys/devices/system/cpu/vulnerabilities/meltdown, as the kernel wrote it.
    pub meltdown: Option<String>,
    /// /sys/devices/system/cpu/vulnerabilities/spectre_v2, as the kernel wrote it.
    pub spectre_v2: Option<String>,
    /// The `IBPB:` part of the Spectre v2 line ("conditional", "always-on", "disabled"), where
    /// the kernel reports one.
    pub ibpb: Option<String>,
}

impl Facts {
    /// Reads /proc/cpuinfo and the vulnerability files.
    pub(super) fn detect() -> Facts {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let vuln = |name: &str| {
            read(&format!("/sys/devices/system/cpu/vulnerabilities/{name}"))
                .map(|s| s.trim().to_string())
        };
        Facts::from_parts(
            read("/proc/cpuinfo").as_deref(),
            vuln("meltdown"),
            vuln("spectre_v2"),
        )
    }

    /// The facts from the text of /proc/cpuinfo and the two vulnerability lines.
    pub(super) fn from_parts(
        cpuinfo: Option<&str>,
        meltdown: Option<String>,
        spectre_v2: Option<String>,
    ) -> Facts {
        let flags: Option<Vec<&str>> = cpuinfo.and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("flags"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.split_whitespace().collect())
        });
        let has = |flag: &str| flags.as_ref().map(|f| f.contains(&flag));
        let ibpb = spectre_v2.as_deref().and_then(|line| {
            line.split(';')
                .map(str::trim)
                .find_map(|part| part.strip_prefix("IBPB:"))
                .map(|v| v.trim().to_string())
        });
        Facts {
            pcid: has("pcid"),
            invpcid: has("invpcid"),
            pti: has("pti"),
            meltdown,
            spectre_v2,
            ibpb,
        }
    }

    /// One note for the section: each fact and what it means for a switch between processes.
    pub(super) fn describe(&self) -> String {
        let yes_no = |v: Option<bool>| match v {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        let tlb = match self.pcid {
            Some(true) => {
                "the TLB keeps each address space's entries, so a switch to another process \
                 need not flush it"
            }
            Some(false) => {
                "every switch to another process flushes the TLB, an indirect cost threads of one \
                 process do not pay"
            }
            None => "whether the TLB is flushed on a process switch is unknown here",
        };
        let ibpb = match self.ibpb.as_deref() {
            Some(v) if v.starts_with("always") => {
                format!("IBPB {v}: a branch-predictor barrier on every switch to another process")
            }
            Some(v) if v.starts_with("conditional") => format!(
                "IBPB {v}: a barrier only when switching to a process that asked for it \
                 (seccomp or prctl)"
            ),
            Some(v) => format!("IBPB {v}"),
            None => "no IBPB on switch reported".to_string(),
        };
        format!(
            "Machine facts for switches: PCID {}, INVPCID {} ({tlb}); page-table isolation {} \
             (meltdown: {}); spectre_v2: {}; {ibpb}.",
            yes_no(self.pcid),
            yes_no(self.invpcid),
            yes_no(self.pti),
            self.meltdown.as_deref().unwrap_or("unknown"),
            self.spectre_v2.as_deref().unwrap_or("unknown"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_mitigations_are_read_from_their_text() {
        let cpuinfo = "processor\t: 0\nflags\t\t: fpu pcid sse2 invpcid_single pti\n\
                       bugs\t\t: spectre_v2\nprocessor\t: 1\nflags\t\t: fpu\n";
        let f = Facts::from_parts(
            Some(cpuinfo),
            Some("Mitigation: PTI".into()),
            Some("Mitigation: Retpolines; IBPB: always-on; STIBP: disabled".into()),
        );
        assert_eq!(f.pcid, Some(true));
        // `invpcid_single` is not `invpcid`: flags match whole words.
        assert_eq!(f.invpcid, Some(false));
        assert_eq!(f.pti, Some(true));
        assert_eq!(f.ibpb.as_deref(), Some("always-on"));
        let note = f.describe();
        assert!(note.contains("PCID yes, INVPCID no"), "{note}");
        assert!(note.contains("every switch to another process"), "{note}");

        let none = Facts::from_parts(None, None, Some("Mitigation: Retpolines".into()));
        assert_eq!((none.pcid, none.ibpb.clone()), (None, None));
        assert!(none.describe().contains("no IBPB on switch reported"));
        let no_pcid = Facts::from_parts(Some("flags\t: fpu sse2\n"), None, None);
        assert_eq!(no_pcid.pcid, Some(false));
        assert!(no_pcid.describe().contains("flushes the TLB"));
    }
}
