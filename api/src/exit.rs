//! Process exit codes, the same for `node-lite` and `oracle` (and listed in the README).

/// How a DSI command ended. The numeric value is the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exit {
    /// It did what was asked.
    Success = 0,
    /// An unexpected failure (a bug, or an environment problem without a better code).
    Failure = 1,
    /// Bad command-line or configuration input (also clap's usage errors).
    Usage = 2,
    /// What was asked for does not exist: unknown content, epoch, proposal or leaf, or a
    /// missing input file.
    NotFound = 3,
    /// Data failed verification: a manifest or chunks that do not hash to their ids, or an
    /// epoch batch whose recomputed root differs.
    Integrity = 4,
    /// Could not be done now: a download left incomplete, no usable peer, the oracle or the
    /// chain unreachable. Trying again later may work.
    Unavailable = 5,
    /// The data directory is missing, unreadable, not initialized, or holds a secret other
    /// users can read.
    DataDir = 6,
    /// The oracle or the chain understood the request and refused it (wrong admin token,
    /// an epoch that cannot close, a contract error such as `BadProof` or `Timelocked`).
    Refused = 7,
    /// Interrupted by Ctrl-C or SIGTERM (128 + SIGINT); a download keeps its partial file.
    Interrupted = 130,
}

impl Exit {
    /// Every code, in numeric order.
    pub const ALL: [Exit; 9] = [
        Self::Success,
        Self::Failure,
        Self::Usage,
        Self::NotFound,
        Self::Integrity,
        Self::Unavailable,
        Self::DataDir,
        Self::Refused,
        Self::Interrupted,
    ];

    /// The numeric exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short description, as printed by `--help`.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "unexpected failure",
            Self::Usage => "bad input (arguments, configuration, file contents)",
            Self::NotFound => "not found (content, epoch, proposal, leaf, input file)",
            Self::Integrity => "integrity failure (manifest, chunks, epoch batch)",
            Self::Unavailable => {
                "unavailable: download incomplete, no peer, oracle or chain unreachable"
            }
            Self::DataDir => {
                "data directory unusable, not initialized, or a secret readable by others"
            }
            Self::Refused => "refused by the oracle or the chain",
            Self::Interrupted => "interrupted (Ctrl-C)",
        }
    }

    /// The table for `--help`: one `code meaning` line per exit code.
    pub fn help() -> String {
        let mut out = String::from("Exit codes:\n");
        for exit in Self::ALL {
            out.push_str(&format!("  {:>3}  {}\n", exit.code(), exit.meaning()));
        }
        out
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}
