//! `keyshift-loadtest`: drives a keyshift issuer and verifier on loopback
//! through the migration phases (dual → transition → asymmetric) with goose,
//! and reports throughput, latency, outcomes, cache hit rates and capacity
//! from goose's figures and the services' own `/metrics`. `make loadtest`
//! runs it on a release build; `--quick` is the smoke run of `make test`;
//! `make soak` runs `--soak`.
//! docs/loadtest.md describes the options and the report.
//!
//! Layout: [`cli`] flags and their validation; [`sut`] the services (started
//! here or running elsewhere) and [`services`] their processes; [`phase`]
//! switching phases; [`token`] and [`pool`] the tokens goose sends;
//! [`drive`] goose; [`events`] rotation and JWKS outage ([`proxy`]);
//! [`prom`] metrics; [`summarize`], [`check`], [`capacity`] and [`report`]
//! the results; [`run`] the order of it all; [`smoke`] the external-mode
//! part of `--quick`. `--soak` ([`soak`]) adds forged and expired tokens,
//! background token requests ([`token_traffic`]), its own account of every
//! answer ([`answers`]), RSS and fd sampling ([`resources`]), and its checks
//! ([`soak_check`]) and report ([`soak_report`]). `--legacy-issuer` mixes
//! in tokens of an independent old issuer ([`legacy`]); `--through-gateway`
//! drives each phase's tokens through `keyshift gateway` too ([`gateway`]);
//! managed runs measure the token endpoint per client-secret hash kind
//! ([`token_capacity`]).

mod answers;
mod capacity;
mod check;
mod cli;
mod drive;
mod events;
mod gateway;
mod http;
mod legacy;
mod phase;
mod pool;
mod prom;
mod proxy;
mod report;
mod resources;
mod run;
mod services;
mod smoke;
mod soak;
mod soak_check;
mod soak_report;
mod summarize;
mod sut;
#[cfg(test)]
mod testutil;
mod token;
mod token_capacity;
mod token_traffic;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if args.print_clients {
        print!("{}", services::clients_toml(&token::builtin_clients()));
        return ExitCode::SUCCESS;
    }
    let opts = match args.validate() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("keyshift-loadtest: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyshift-loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyshift-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
