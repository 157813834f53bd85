//! Command-line interface: the verbs a user types, their flags and help.
//! Parsing only; each verb's behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "secmon",
    version,
    about = "Security monitoring and alerting: ingest logs, detect attacks on event time, respond.",
    long_about = "secmon reads application logs (JSON events, syslog, text lines through pattern parsers), \
evaluates stateful detection rules on event time (thresholds, distinct counts, metric conditions, \
absence) and reports alerts.\n\nWithout -c, secmon uses its embedded default configuration: \
every alert of the seed documents (examples/seeds.yaml) plus the builtin sshd patterns."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// secmon's own log level (error, warn, info, debug, trace). Default:
    /// info for `run`, warn for the other commands.
    #[arg(long, global = true, env = "SECMON_LOG")]
    pub log_level: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (YAML). Default: the embedded examples/seeds.yaml.
    #[arg(short, long, value_name = "CONFIG", env = "SECMON_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration and its rule files; every error names file, line and field.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Evaluate whole log files on event time and print one JSON alert per line.
    Replay(ReplayArgs),
    /// Run the `tests:` cases carried in rule files (events in, expected alerts out).
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// Print every case, not only failures.
        #[arg(short, long)]
        verbose: bool,
        /// Year for RFC 3164 syslog lines in test inputs (they carry none).
        #[arg(long)]
        year: Option<i32>,
    },
    /// Follow the configured sources live: print alerts as they fire, open incidents,
    /// make and publish decisions, deliver notifications.
    Run(RunArgs),
    /// Automated and manual decisions (blocked IPs, locked accounts…).
    Decisions {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: DecisionsCmd,
    },
    /// Send a test message to one receiver right away.
    Notify {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: NotifyCmd,
    },
    /// The notification outbox: pending, sent and dead-lettered messages.
    Notifications {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: NotificationsCmd,
    },
    /// Silences: alerts matching them are recorded but not notified.
    Silences {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: SilencesCmd,
    },
    /// The log archive: verify, search, export, prune, legal holds, erasure,
    /// key rotation, checkpoint export.
    Archive {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: crate::commands::archive::ArchiveCmd,
    },
    /// API keys for the HTTP API: create (printed once), list, revoke.
    Keys {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Web dashboard users: add, passwd, remove, list (Argon2id passwords from stdin).
    Users {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: crate::commands::users::UsersCmd,
    },
    /// The dashboards as Grafana JSON and the metric rules as Prometheus
    /// alerting rules, for teams that already run Grafana.
    Export {
        #[command(subcommand)]
        cmd: crate::commands::export::ExportCmd,
    },
    /// Incidents: list, show, acknowledge, resolve, add notes.
    Incidents {
        #[command(flatten)]
        args: ManageArgs,
        #[command(subcommand)]
        cmd: IncidentsCmd,
    },
}

#[derive(Debug, Args)]
pub struct ManageArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Override the data directory (where secmon.db lives).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DecisionsCmd {
    /// Decisions in force now.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a decision by hand (the allowlist still wins).
    Add {
        /// ip, user, vault, admin or a custom scope.
        #[arg(long)]
        scope: String,
        #[arg(long)]
        value: String,
        /// e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h")]
        duration: String,
        #[arg(long, default_value = "manual")]
        reason: String,
        #[arg(long)]
        author: Option<String>,
    },
    /// Lift a decision before it expires.
    Delete {
        id: i64,
        #[arg(long)]
        author: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key and print it once: it is stored only as an HMAC under
    /// SECMON_API_KEY_SECRET and cannot be shown again.
    Create {
        /// admin, responder (ack, silence, decisions), viewer (read), ingest
        /// (only POST /v1/events) or bouncer (only read decisions).
        #[arg(long, value_enum)]
        role: crate::api::keys::Role,
        /// A label to recognise the key by (e.g. the app or host using it).
        #[arg(long)]
        name: String,
        /// Print the key as JSON with its metadata.
        #[arg(long)]
        json: bool,
    },
    /// Keys by prefix, role and state (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by prefix (or id); a running secmon refuses it within seconds.
    Revoke { key: String },
}

#[derive(Debug, Subcommand)]
pub enum SilencesCmd {
    /// Silence alerts matching every `--match` (NAME=VALUE, NAME=~REGEX,
    /// NAME!=VALUE, NAME!~REGEX; NAME is rule, severity, priority,
    /// label.<key> or a group field such as fields.ip).
    Add {
        #[arg(long = "match", value_name = "MATCHER", required = true)]
        matchers: Vec<String>,
        /// How long from now, e.g. 2h.
        #[arg(long, default_value = "1h")]
        duration: String,
        #[arg(long, default_value = "")]
        comment: String,
        #[arg(long)]
        author: Option<String>,
    },
    /// Silences active now (all with --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Deliver a test message to RECEIVER (exit 1 if it is not accepted).
    Test { receiver: String },
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCmd {
    /// Outbox entries: pending ones, or with --failed the dead letters.
    List {
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        json: bool,
    },
    /// Re-queue dead letters: one by id, or all with --all.
    Retry {
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IncidentsCmd {
    List {
        /// triggered, acknowledged or resolved.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The incident with its timeline, evidence and checklist (JSON).
    Show { id: i64 },
    Ack {
        id: i64,
        #[arg(long)]
        author: Option<String>,
    },
    Resolve {
        id: i64,
        #[arg(long)]
        author: Option<String>,
    },
    Note {
        id: i64,
        text: String,
        #[arg(long)]
        author: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Log files to read (`-` for stdin). JSON lines are parsed as events; other
    /// lines go through syslog and the configured pattern parsers.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print per-rule counts, parse errors and catalog violations to stderr.
    #[arg(long)]
    pub summary: bool,
    /// Force one input format instead of detecting it per line.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// Year for RFC 3164 syslog timestamps (they carry none). Default: inferred
    /// from the current date.
    #[arg(long)]
    pub year: Option<i32>,
    /// How many located examples of each parse error to report.
    #[arg(long, default_value_t = crate::summary::DEFAULT_SAMPLES)]
    pub max_errors: usize,
    /// Never draw a progress bar (it is drawn only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Parser threads (default: available cores minus one, at least one; the
    /// engine runs on a thread of its own).
    #[arg(long)]
    pub threads: Option<usize>,
    /// `dry-run`: instead of alerts, print the response plan (alert lifecycle,
    /// incidents, decisions, escalations) as JSON lines, using an in-memory
    /// store and event time as the clock. Nothing is published or stored.
    #[arg(long, value_enum, default_value_t = RespondMode::Off)]
    pub respond: RespondMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RespondMode {
    Off,
    DryRun,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Override the data directory (checkpoints) from the configuration.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Read stdin as a source in addition to the configured ones.
    #[arg(long)]
    pub stdin: bool,
    /// Serve the HTTP API on this address (overrides `api.listen`; port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Do not serve the HTTP API.
    #[arg(long)]
    pub no_api: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Auto,
    Json,
    Syslog,
    Text,
}

impl From<FormatArg> for secmon_parse::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => secmon_parse::Format::Auto,
            FormatArg::Json => secmon_parse::Format::Json,
            FormatArg::Syslog => secmon_parse::Format::Syslog,
            FormatArg::Text => secmon_parse::Format::Text,
        }
    }
}
