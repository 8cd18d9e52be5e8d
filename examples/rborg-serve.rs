//! `rborg serve` as a stand-alone program until the CLI grows the subcommand; used by
//! `tests/remote_interop.rs` as borg's `--remote-path`.
//!
//! Usage: `rborg-serve [serve] [--restrict-to-path P]... [--restrict-to-repository P]...
//! [--append-only] [--storage-quota Q] [--umask M] [--lock-wait N] [--debug|--info|...]`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match rborg::repo::serve::ServeOptions::parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rborg-serve: error: {e}");
            std::process::exit(2);
        }
    };
    std::process::exit(rborg::repo::serve::serve_stdio(opts));
}
