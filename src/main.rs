fn main() {
    std::process::exit(rborg::cli::main());
}
