//! The Corral operator: reconciles Agents, Environments and Sessions.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = corral_operator::Args::parse();
    args.log.init()?;
    corral_operator::run(args).await
}
