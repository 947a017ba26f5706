//! `hark-collector`: serves the collector API, the web app and its models.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

/// hark's server: opt-in prediction logs in, web app and models out.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    addr: IpAddr,
    /// Port to listen on.
    #[arg(long, short, default_value_t = 8080)]
    port: u16,
    /// Built web app to serve (trunk's dist folder). Omit to serve the API only.
    #[arg(long)]
    dist: Option<PathBuf>,
    /// Published models folder, served under /models/.
    #[arg(long, default_value = "web/models")]
    models: PathBuf,
    /// SQLite database for received events.
    #[arg(long, default_value = "collector.sqlite3")]
    db: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let config = hark_collector::Config { dist: args.dist, models: Some(args.models), db: args.db };
    hark_collector::serve(config, SocketAddr::new(args.addr, args.port)).await?;
    Ok(())
}
