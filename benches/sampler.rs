//! Sampler benchmark: what one reading of a process tree's memory and CPU
//! costs (`/proc` scan plus per-process reads), for a tree of 1 and of 9
//! processes, and the CPU the 20 Hz sampler thread itself uses over two
//! seconds. Shows that sampling at ≥ 10 Hz does not perturb what it
//! measures. `cargo bench --bench sampler`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn reading_cost(root: u32) -> (f64, usize) {
    let mut times = Vec::new();
    let mut processes = 0;
    for _ in 0..500 {
        let start = Instant::now();
        let usage = dyno::measure::resources::tree::tree_usage(root).expect("the tree exists");
        times.push(start.elapsed().as_secs_f64() * 1e6);
        processes = usage.processes;
    }
    (median(times), processes)
}

fn own_cpu_s() -> f64 {
    dyno::measure::resources::tree::tree_usage(std::process::id()).map_or(0.0, |u| u.cpu_s)
}

fn main() {
    let single = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let tree = Command::new("sh")
        .args(["-c", "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; wait"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sh");
    std::thread::sleep(Duration::from_millis(300));
    for (name, pid) in [("1 process", single.id()), ("9 processes", tree.id())] {
        let (us, n) = reading_cost(pid);
        println!("one reading of a tree of {name} ({n} seen): median {us:.1} µs");
    }
    let before = own_cpu_s();
    let mut sampler = dyno::measure::resources::Sampler::start(
        tree.id(),
        dyno::measure::resources::DEFAULT_PERIOD,
    );
    let mark = sampler.mark();
    std::thread::sleep(Duration::from_secs(2));
    let window = sampler.window(&mark);
    sampler.stop();
    let used = own_cpu_s() - before;
    println!(
        "sampler at {:.0} Hz for 2 s: {} readings, {:.1} ms of CPU ({:.2}% of one core)",
        1.0 / dyno::measure::resources::DEFAULT_PERIOD.as_secs_f64(),
        window.samples,
        used * 1000.0,
        used / 2.0 * 100.0
    );
    for mut child in [single, tree] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
