//! The console: a unix socket (mode 0600, root peers only) where a responder lists what is
//! held, releases it, or kills by entity id or container id, and the `tprobe respond` client.
//! One JSON request per connection, one JSON reply. The socket thread only carries requests:
//! the pipeline thread answers them, so every action is made, and reported, in one place.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{
        fs::PermissionsExt as _,
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The default path of `tprobe respond --socket`.
pub const DEFAULT_SOCKET: &str = "/run/tprobe/respond.sock";
/// Longest wait for the pipeline's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    List,
    Release { target: String },
    Kill { target: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub result: serde_json::Value,
}

impl Reply {
    pub fn ok(result: serde_json::Value) -> Self {
        Reply {
            ok: true,
            error: None,
            result,
        }
    }

    pub fn err(e: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(e.into()),
            result: serde_json::Value::Null,
        }
    }

    /// A failed action, with its response object.
    pub fn err_with(result: serde_json::Value) -> Self {
        let e = result["reason"]
            .as_str()
            .unwrap_or("the action failed")
            .to_owned();
        Reply {
            ok: false,
            error: Some(e),
            result,
        }
    }
}

type Pending = (Request, mpsc::Sender<Reply>);

/// The listening side; the socket file goes when it is dropped.
pub struct Server {
    rx: mpsc::Receiver<Pending>,
    path: PathBuf,
}

impl Server {
    pub fn start(
        path: &Path,
        wake: tokio::sync::mpsc::WeakSender<Vec<Event>>,
    ) -> std::io::Result<Server> {
        use std::os::unix::fs::FileTypeExt as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // A socket left by an earlier run is replaced; any other file is not touched.
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.file_type().is_socket() {
                std::fs::remove_file(path)?;
            }
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let (tx, rx) = mpsc::channel::<Pending>();
        std::thread::Builder::new()
            .name("tprobe-respond".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    if !serve_one(conn, &tx, &wake) {
                        break;
                    }
                }
            })?;
        Ok(Server {
            rx,
            path: path.to_owned(),
        })
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> Vec<Pending> {
        self.rx.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn write_reply(conn: &mut UnixStream, r: &Reply) {
    if let Ok(mut s) = serde_json::to_string(r) {
        s.push('\n');
        let _ = conn.write_all(s.as_bytes());
    }
}

/// The uid of the peer process (`SO_PEERCRED`).
fn peer_uid(conn: &UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd as _;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket fd, and a buffer of the size passed.
    let r = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

/// One connection; false once the pipeline is gone.
fn serve_one(
    mut conn: UnixStream,
    tx: &mpsc::Sender<Pending>,
    wake: &tokio::sync::mpsc::WeakSender<Vec<Event>>,
) -> bool {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if peer_uid(&conn) != Some(0) {
        write_reply(
            &mut conn,
            &Reply::err("only root may use the respond socket"),
        );
        return true;
    }
    let mut line = String::new();
    if BufReader::new(&conn).read_line(&mut line).is_err() {
        return true;
    }
    let req: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => {
            write_reply(&mut conn, &Reply::err(format!("bad request: {e}")));
            return true;
        }
    };
    let (rtx, rrx) = mpsc::channel();
    if tx.send((req, rtx)).is_err() {
        return false;
    }
    // An empty batch wakes the pipeline, which answers between batches.
    match wake.upgrade() {
        Some(w) => {
            if w.blocking_send(Vec::new()).is_err() {
                return false;
            }
        }
        None => return false,
    }
    let reply = rrx
        .recv_timeout(ANSWER_WAIT)
        .unwrap_or_else(|_| Reply::err("the probe did not answer in time"));
    write_reply(&mut conn, &reply);
    true
}

/// `tprobe respond list|release|kill`.
#[derive(clap::Subcommand, Debug)]
pub enum RespondCommand {
    /// What is frozen or isolated now.
    List {
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Lift a freeze or an isolation: a container id, an entity id, `pid:N`, an interface or
    /// `all`.
    Release {
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        target: String,
    },
    /// Kill a process (entity id or `pid:N`) or every process of a container (its id).
    Kill {
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        target: String,
    },
}

fn ask(socket: &Path, req: &Request) -> std::io::Result<Reply> {
    let mut c = UnixStream::connect(socket)?;
    c.set_read_timeout(Some(ANSWER_WAIT + Duration::from_secs(1)))?;
    let mut s = serde_json::to_string(req)?;
    s.push('\n');
    c.write_all(s.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line)?;
    Ok(serde_json::from_str(line.trim())?)
}

/// Sends one request and prints the reply; the exit code: 0 done, 1 refused or failed (the
/// reason on stderr), 2 no probe listening.
pub fn client(cmd: RespondCommand) -> u8 {
    let (socket, req) = match cmd {
        RespondCommand::List { socket } => (socket, Request::List),
        RespondCommand::Release { socket, target } => (socket, Request::Release { target }),
        RespondCommand::Kill { socket, target } => (socket, Request::Kill { target }),
    };
    let reply = ask(&socket, &req);
    match reply {
        Ok(r) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&r.result).unwrap_or_default()
            );
            match r.error {
                Some(e) => {
                    eprintln!("tprobe: {e}");
                    1
                }
                None => 0,
            }
        }
        Err(e) => {
            eprintln!(
                "tprobe: no probe answers on {}: {e} (is `respond.control_socket` set?)",
                socket.display()
            );
            crate::exit_code::USAGE
        }
    }
}
