//! What every agent-talking command shares: the connection flags ([`ApiArgs`]), the terminal
//! ([`Ui`]), and the glue that runs an async command on a small runtime ([`run_with_client`]).
//!
//! ```text
//!  main ─▶ module::run(cmd) ─▶ run_with_client(&api_args, |client, ui| command(args, client, ui))
//!                                    │ Client::from_env(-address) + -region/-namespace/-token
//!                                    │ Ui::stdio() (stdout, stderr, stdin, system clock)
//!                                    └▶ current-thread tokio runtime ─▶ exit code (u8)
//! ```
//!
//! Command entry points are `pub async fn x(args, &Client, &mut Ui) -> u8`, so tests (and the
//! end-to-end suite) can call them with a captured [`Ui`] ([`Ui::capture`]) and a client for any
//! agent, then assert on the text and the exit code.
//!
//! Exit codes: 0 success, 1 error, 2 placement failures (`job run`, `job stop`), 255 `job plan`
//! errors — as Nomad.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use drover_api::{ApiError, Client};

/// Connection flags accepted by every command that talks to an agent.
#[derive(Debug, Clone, Default, Args)]
pub struct ApiArgs {
    /// Address of the Drover agent [default: $NOMAD_ADDR, else http://127.0.0.1:4646].
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,
    /// Region to send the request to [default: $NOMAD_REGION, else the agent's].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Namespace [default: $NOMAD_NAMESPACE, else "default"].
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// ACL token [default: $NOMAD_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Accepted for compatibility with Nomad's CLI; output is never coloured.
    #[arg(long = "no-color")]
    pub no_color: bool,
}

impl ApiArgs {
    /// The client these flags (and the `NOMAD_*` environment) describe.
    pub fn client(&self) -> Result<Client, ApiError> {
        let mut c = Client::from_env(self.address.clone())?;
        if self.region.is_some() {
            c = c.with_region(self.region.clone());
        }
        if self.namespace.is_some() {
            c = c.with_namespace(self.namespace.clone());
        }
        if self.token.is_some() {
            c = c.with_token(self.token.clone());
        }
        Ok(c)
    }
}

/// The terminal a command talks to: output, errors, input (prompts, `-` job files), a clock
/// and the monitors' poll interval. Write failures (a closed pipe) are ignored.
pub struct Ui {
    /// Standard output.
    pub out: Box<dyn Write + Send>,
    /// Standard error.
    pub err: Box<dyn Write + Send>,
    /// Standard input.
    pub input: Box<dyn BufRead + Send>,
    /// The current time as Unix nanoseconds.
    pub now: fn() -> i64,
    /// How often monitors poll an evaluation or a node.
    pub poll: Duration,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// The system clock as Unix nanoseconds.
pub fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Text captured by [`Ui::capture`].
#[derive(Debug, Clone, Default)]
pub struct Captured {
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    /// Everything written to standard output so far.
    pub fn out(&self) -> String {
        read_shared(&self.out)
    }
    /// Everything written to standard error so far.
    pub fn err(&self) -> String {
        read_shared(&self.err)
    }
}

fn read_shared(b: &Arc<Mutex<Vec<u8>>>) -> String {
    let guard = match b.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    String::from_utf8_lossy(&guard).into_owned()
}

struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut g) => g.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Ui {
    /// The process's stdout, stderr and stdin, the system clock, a 250 ms poll.
    pub fn stdio() -> Ui {
        Ui {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            input: Box::new(std::io::BufReader::new(std::io::stdin())),
            now: system_now,
            poll: Duration::from_millis(250),
        }
    }

    /// A UI that records output in memory and reads `input` as standard input; for tests.
    pub fn capture(input: &str) -> (Ui, Captured) {
        let cap = Captured::default();
        let ui = Ui {
            out: Box::new(SharedBuf(cap.out.clone())),
            err: Box::new(SharedBuf(cap.err.clone())),
            input: Box::new(std::io::Cursor::new(input.as_bytes().to_vec())),
            now: system_now,
            poll: Duration::from_millis(10),
        };
        (ui, cap)
    }

    /// Writes a line to standard output.
    pub fn output(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", s.as_ref());
        let _ = self.out.flush();
    }

    /// Writes a line to standard error.
    pub fn error(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.err, "{}", s.as_ref());
        let _ = self.err.flush();
    }

    /// The current time (Unix nanoseconds).
    pub fn now(&self) -> i64 {
        (self.now)()
    }

    /// Asks a yes/no question on standard output; only `y`/`yes` (any case) is yes.
    pub fn confirm(&mut self, question: &str) -> bool {
        let _ = write!(self.out, "{question} ");
        let _ = self.out.flush();
        let mut line = String::new();
        if self.input.read_line(&mut line).is_err() {
            return false;
        }
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }

    /// Prints `value` as four-space-indented JSON; 0 on success, 1 if it cannot be encoded.
    pub fn json<T: serde::Serialize>(&mut self, value: &T) -> u8 {
        match crate::format::json_pretty(value) {
            Ok(s) => {
                self.output(s);
                0
            }
            Err(e) => {
                self.error(format!("Error formatting JSON: {e}"));
                1
            }
        }
    }
}

/// Runs an async command against the agent `api` points at, on a current-thread runtime, with
/// the process's terminal. Returns the exit code.
pub fn run_with_client<F>(api: &ApiArgs, f: F) -> u8
where
    F: AsyncFnOnce(&Client, &mut Ui) -> u8,
{
    run_with_client_or(api, 1, f)
}

/// [`run_with_client`] with the exit code to use when no client or runtime can be set up.
pub fn run_with_client_or<F>(api: &ApiArgs, error_code: u8, f: F) -> u8
where
    F: AsyncFnOnce(&Client, &mut Ui) -> u8,
{
    let mut ui = Ui::stdio();
    let client = match api.client() {
        Ok(c) => c,
        Err(e) => {
            ui.error(format!("Error initializing client: {e}"));
            return error_code;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            ui.error(format!("Error starting the async runtime: {e}"));
            return error_code;
        }
    };
    rt.block_on(f(&client, &mut ui))
}

/// Sleeps on the async runtime.
pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await
}
