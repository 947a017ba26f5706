//! `hark serve`: the one server process — the collector API, the built web
//! app and the published models — on one address (`hark-collector`'s
//! `bind` and `serve_on`; this module only lowers the command line onto them).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::flags;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 takes any free port (the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Where the collector keeps its data (`collector.sqlite3`, `audio/`) [default: ~/.cache/hark/data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The built web app (trunk's `dist/`); without it only the API and the models are served.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// The published models folder, served under /models/.
    #[arg(long, default_value = "web/models")]
    pub models: PathBuf,
    /// Operating settings (TOML: admin token, CORS origins, rate limits,
    /// retention; see `hark_collector::settings`). Without it, the defaults;
    /// HARK_ADMIN_TOKEN sets the admin token either way.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let data = args.data.clone().unwrap_or_else(|| flags::cache_dir().join("data"));
    std::fs::create_dir_all(&data).with_context(|| format!("creating the data folder {}", data.display()))?;
    let settings = match &args.config {
        Some(path) => hark_collector::Settings::load(path)?,
        None => hark_collector::Settings::from_env(),
    };
    let config = hark_collector::Config {
        site: args.site.clone(),
        models: Some(args.models.clone()),
        data: data.clone(),
        settings,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = hark_collector::bind(args.addr).await?;
        eprintln!("hark is serving on http://{} (Ctrl-C or SIGTERM stops it)", listener.local_addr()?);
        hark_collector::serve_on(config, listener, hark_collector::shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
