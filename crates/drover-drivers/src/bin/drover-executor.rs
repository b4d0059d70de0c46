//! The executor as its own binary, for this crate's tests (the drover binary runs the same code
//! as `drover executor <spec>`). See `drover_drivers::executor`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(drover_drivers::executor::run_main(args));
}
