//! A throwaway PostgreSQL server for tests and benchmarks: Debian's
//! `postgresql` binaries, `initdb` into a temporary folder, `pg_ctl` on a
//! free loopback port; stopped and deleted on drop. As root (CI), the
//! server runs as the `postgres` user (PostgreSQL refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `postgres://hark@127.0.0.1:PORT/postgres`
    pub url: String,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The newest installed PostgreSQL's binaries.
fn binaries() -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL is not installed: `apt-get install postgresql` (`cargo xtask test` installs it)".to_owned()
        })?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Postgres {
    pub fn start() -> Result<Self, String> {
        let bin = binaries()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = is_root();
        if root {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
            if !ok.is_ok_and(|s| s.success()) {
                return Err("cannot hand the cluster's folder to the postgres user".into());
            }
        }
        let run = |program: &str, args: &[&str]| -> Result<(), String> {
            let mut command = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(program));
                c
            } else {
                Command::new(bin.join(program))
            };
            let output = command.args(args).output().map_err(|e| format!("{program}: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!("{program} failed: {}", String::from_utf8_lossy(&output.stderr)))
            }
        };
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        run("initdb", &["-D", data_s, "-U", "hark", "--auth=trust", "-E", "UTF8", "--no-sync"])?;
        let port = free_port();
        let options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200", dir.path().display());
        let log = dir.path().join("log");
        run("pg_ctl", &["-D", data_s, "-l", log.to_str().unwrap(), "-o", &options, "-w", "start"])?;
        Ok(Self { dir, bin, url: format!("postgres://hark@127.0.0.1:{port}/postgres") })
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn stop(&self, dir: &Path) {
        let data = self.data();
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = command.args(["-D"]).arg(&data).args(["-m", "immediate", "stop"]).current_dir(dir).output();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop(self.dir.path());
    }
}
