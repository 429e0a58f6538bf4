//! The HTML pages in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, the `fantoccini` crate). Each test opens a page
//! from a `file://` URL with the network closed, and checks what a reader
//! would: no console errors, every chart drawn, a table sorted by a click,
//! a value shown on hover, one timeline bar per request. A screenshot of
//! each page is kept under `CARGO_TARGET_TMPDIR/pages/`. Without
//! `chromium` and `chromedriver` (Debian's packages; `make test` and
//! `.ci/run` install them when missing) a test says why and skips, except
//! under CI, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::repo_root;

/// One browser at a time: Chromium is heavy on two cores, and the load
/// page also needs the engine.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A chromedriver process and a session of headless Chromium in it; the
/// driver is ended when this is dropped.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends chromedriver and the Chromium it started: they share the
    /// process group chromedriver leads, so a failed test leaves none.
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Ok(group) = i32::try_from(self.driver.id()) {
            // SAFETY: kill(2) with a process group id this test created.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/chromium"),
        ])
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Starts chromedriver and a headless Chromium session, or says why not.
/// Under CI a missing browser is a failure.
async fn browser() -> Option<Browser> {
    let (Some(chromium), Some(driver)) = (
        find(&["chromium", "chromium-browser", "google-chrome"]),
        find(&["chromedriver"]),
    ) else {
        let reason = "no chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)";
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the page tests: {reason}"
        );
        eprintln!("page test skipped: {reason}");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(&driver);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let driver = command
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,2000",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
    builder.capabilities(caps);
    let mut browser = None;
    while browser.is_none() {
        match builder.connect(&url).await {
            Ok(client) => browser = Some(client),
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver at {url} gave no session: {e}"),
        }
    }
    Some(Browser {
        client: browser.unwrap(),
        driver,
        _profile: profile,
    })
}

/// chromedriver's browser log (`POST /session/{id}/se/log`).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// What a loaded page shows: its console errors, its charts, how long it
/// took to be usable.
#[derive(Debug)]
struct Loaded {
    severe: Vec<Value>,
    /// Per chart: its kind, whether it was drawn, and its hoverable marks.
    charts: Vec<(String, bool, u64)>,
    /// From navigation start to the page's script having drawn everything.
    usable_ms: f64,
}

/// Keeps a screenshot of what `b` shows now as `name.png`; returns its path.
async fn screenshot(b: &Browser, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pages");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, b.client.screenshot().await.unwrap()).unwrap();
    path
}

/// Opens `page`, waits for its script to finish, and keeps a screenshot
/// as `name.png`.
async fn open(b: &Browser, page: &Path, name: &str) -> Loaded {
    let url = url::Url::from_file_path(page.canonicalize().unwrap()).unwrap();
    b.client.goto(url.as_str()).await.unwrap();
    b.client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("body[data-ready]"))
        .await
        .unwrap_or_else(|e| panic!("{name}: the page script never finished: {e}"));
    let usable_ms = b
        .client
        .execute(
            "return +document.body.getAttribute('data-ready-ms');",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    let charts = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll('[data-chart]')).map(function (c) {
                return [c.getAttribute('data-chart'), c.getAttribute('data-drawn') === '1',
                        c.querySelectorAll('svg [data-tip]').length]; });",
            vec![],
        )
        .await
        .unwrap();
    let charts: Vec<(String, bool, u64)> = serde_json::from_value(charts).unwrap();
    let log = b.client.issue_cmd(BrowserLog).await.unwrap();
    let severe = log
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["level"] == "SEVERE")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let shot = screenshot(b, name).await;
    eprintln!(
        "{name}: {} bytes, usable after {usable_ms:.0} ms, screenshot {}",
        std::fs::metadata(page).unwrap().len(),
        shot.display()
    );
    Loaded {
        severe,
        charts,
        usable_ms,
    }
}

/// No console errors, and every chart drew hoverable marks.
fn assert_drawn(loaded: &Loaded) {
    assert!(loaded.severe.is_empty(), "console errors: {loaded:?}");
    assert!(!loaded.charts.is_empty(), "{loaded:?}");
    assert!(
        loaded
            .charts
            .iter()
            .all(|(_, drawn, marks)| *drawn && *marks > 0),
        "a chart did not draw: {loaded:?}"
    );
}

/// The `data-v` values of column `col` of table `id`, top to bottom.
async fn column(b: &Browser, id: &str, col: usize) -> Vec<f64> {
    let values = b
        .client
        .execute(
            "var col = arguments[1];
             return Array.from(document.getElementById(arguments[0]).tBodies[0].rows)
                .map(function (r) { return parseFloat(r.cells[col].getAttribute('data-v')); });",
            vec![json!(id), json!(col)],
        )
        .await
        .unwrap();
    serde_json::from_value(values).unwrap()
}

/// Clicking a numeric header of `id` sorts its rows ascending, a second
/// click descending.
async fn assert_sorts(b: &Browser, id: &str, col: usize) {
    let before = column(b, id, col).await;
    let header = b
        .client
        .find(Locator::Css(&format!(
            "#{id} thead th:nth-child({})",
            col + 1
        )))
        .await
        .unwrap();
    header.click().await.unwrap();
    let up = column(b, id, col).await;
    header.click().await.unwrap();
    let down = column(b, id, col).await;
    let mut sorted = before.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(up, sorted, "ascending after one click; before {before:?}");
    sorted.reverse();
    assert_eq!(down, sorted, "descending after two; before {before:?}");
    assert_ne!(
        up, down,
        "a sort that cannot reorder proves nothing: {up:?}"
    );
}

/// Moving the pointer onto the first mark of `chart` shows its value.
async fn assert_hover(b: &Browser, chart: &str) -> String {
    let mark = b
        .client
        .find(Locator::Css(&format!(
            "[data-chart=\"{chart}\"] svg [data-tip]"
        )))
        .await
        .unwrap();
    let expected = mark.attr("data-tip").await.unwrap().unwrap();
    b.client
        .perform_actions(
            MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
                element: mark,
                duration: None,
                x: 0.0,
                y: 0.0,
            }),
        )
        .await
        .unwrap();
    let tip = b.client.find(Locator::Id("tip")).await.unwrap();
    let shown = tip.text().await.unwrap();
    assert!(
        tip.is_displayed().await.unwrap(),
        "{chart}: no tip for {expected:?}"
    );
    assert_eq!(
        shown.replace('\n', " "),
        expected.replace('\n', " "),
        "{chart}"
    );
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_page_in_a_browser() {
    let _one = BROWSER.lock().await;
    let Some(b) = browser().await else { return };
    let page = repo_root().join("results/quickstart/report.html");
    let loaded = open(&b, &page, "quickstart").await;
    assert_drawn(&loaded);
    let kinds: Vec<&str> = loaded.charts.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["latency-bars", "ttft-vs-tps", "cdf-ttft", "cdf-e2e"],
        "{loaded:?}"
    );
    // TTFT p50 is the third column of the summary.
    assert_sorts(&b, "t-summary", 2).await;
    let shown = assert_hover(&b, "cdf-ttft").await;
    assert!(shown.contains("TTFT") && shown.contains("ms"), "{shown}");
    // Filtering keeps the rows that mention the text.
    let filter = b
        .client
        .find(Locator::Css("input[data-table=\"t-cells\"]"))
        .await
        .unwrap();
    filter.send_keys("gemma").await.unwrap();
    let visible = b
        .client
        .execute(
            "return Array.from(document.getElementById('t-cells').tBodies[0].rows)
                .filter(function (r) { return r.style.display !== 'none'; })
                .map(function (r) { return r.cells[0].textContent; });",
            vec![],
        )
        .await
        .unwrap();
    let visible: Vec<String> = serde_json::from_value(visible).unwrap();
    assert_eq!(visible.len(), 8, "{visible:?}");
    assert!(
        visible.iter().all(|m| m.starts_with("gemma")),
        "{visible:?}"
    );
    // A dimension switched off leaves the selection table.
    let rows = "return Array.from(document.querySelectorAll('#t-selection tbody tr'))
        .filter(function (r) { return r.style.display !== 'none'; }).length;";
    assert_eq!(b.client.execute(rows, vec![]).await.unwrap(), json!(6));
    b.client
        .find(Locator::Css("input[data-toggle=\"t-selection-Memory\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(b.client.execute(rows, vec![]).await.unwrap(), json!(5));
}

/// The load suite at 1 and 4 streams against the real engine: the page
/// draws one timeline bar per recorded request of each point, and latency
/// against throughput.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_page_in_a_browser_has_one_bar_per_request() {
    let _engine = crate::engine::ENGINE.lock().await;
    let _one = BROWSER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let suite = crate::engine::suite_variant(
        "load.yaml",
        dir.path(),
        "load.yaml",
        &[
            ("requests: 24", "requests: 8"),
            ("concurrency: [1, 2, 4, 8]", "concurrency: [1, 4]"),
        ],
    );
    let out = dir.path().join("out");
    let (_, doc) = crate::run_and_load(&suite, &dyno::plan::Filter::default(), &out).await;
    let Some(b) = browser().await else { return };
    let loaded = open(&b, &out.join("report.html"), "load").await;
    assert_drawn(&loaded);
    assert_eq!(doc.load.len(), 2, "{:?}", doc.load);
    for (i, point) in doc.load.iter().enumerate() {
        let recorded = doc.samples.iter().filter(|s| s.key == point.key).count();
        let bars = b
            .client
            .execute(
                "return document.querySelectorAll('[data-chart=\"timeline\"][data-index=\"' + arguments[0] + '\"] .req').length;",
                vec![json!(i)],
            )
            .await
            .unwrap();
        eprintln!("{}: {recorded} requests recorded, {bars} bars", point.key);
        assert!(recorded >= 8, "{}: {recorded}", point.key);
        assert_eq!(bars, json!(recorded), "{}", point.key);
    }
    let shown = assert_hover(&b, "timeline").await;
    assert!(shown.starts_with("request 1 ("), "{shown}");
    // A second screenshot with the timelines in view.
    b.client
        .execute("document.getElementById('load').scrollIntoView();", vec![])
        .await
        .unwrap();
    screenshot(&b, "load-timeline").await;
    let shown = assert_hover(&b, "latency-throughput").await;
    assert!(shown.contains("tok/s"), "{shown}");
}

/// A synthetic run of 100,000 samples (1,000 cells of 95 rounds, and a
/// load point of 5,000 requests), rendered by the built `dyno report`:
/// the page stays under 10 MB, its timeline is downsampled and says so,
/// and the time the browser took to make it usable is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_100k_samples_stays_small_and_says_it_is_downsampled() {
    let _one = BROWSER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let doc = big_run();
    assert_eq!(doc.samples.len(), 100_000);
    std::fs::write(
        dir.path().join("results.json"),
        dyno::results::to_json(&doc).unwrap(),
    )
    .unwrap();
    let report = Command::new(env!("CARGO_BIN_EXE_dyno"))
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let page = dir.path().join("report.html");
    let size = std::fs::metadata(&page).unwrap().len();
    let text = std::fs::read_to_string(&page).unwrap();
    assert!(size < 10_000_000, "{size} bytes");
    assert!(
        text.contains("<b>Downsampled:</b> 1667 of 5000 requests drawn"),
        "{}",
        &text[text.find("Timeline").unwrap_or(0)..][..400]
    );
    let Some(b) = browser().await else { return };
    let loaded = open(&b, &page, "100k").await;
    assert_drawn(&loaded);
    let bars = b
        .client
        .execute(
            "return document.querySelectorAll('.timeline .req').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bars, json!(1667), "{loaded:?}");
    assert_sorts(&b, "t-cells", 3).await;
    eprintln!(
        "100k samples: page {size} bytes, usable after {:.0} ms in headless Chromium",
        loaded.usable_ms
    );
}

/// splitmix64: deterministic values in `[0, 1)`.
fn unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1_u64 << 53) as f64
}

/// The committed quickstart's header and models with 100,000 synthetic
/// samples: 4 model runs × 250 prompts × 95 rounds, and one load point of
/// 5,000 requests at 8 streams.
fn big_run() -> dyno::results::Results {
    use dyno::plan::Round;
    use dyno::results::{self, Sample, Status};
    let (base, _) = results::read(&repo_root().join("results/quickstart/results.json")).unwrap();
    let mut rng = 7_u64;
    let mut samples = Vec::new();
    let push = |mut s: Sample, rng: &mut u64, samples: &mut Vec<Sample>| {
        s.index = samples.len() + 1;
        s.stream = true;
        s.status = Status::Ok;
        let ttft = results::to_microsecond(20.0 + 10.0 * unit(rng));
        let e2e = results::to_microsecond(ttft + 900.0 + 400.0 * unit(rng));
        s.ttft_ms = Some(ttft);
        s.e2e_ms = Some(e2e);
        s.output_tokens = Some(96);
        s.text = "A synthetic answer of a few words.".into();
        s.derive_rates();
        samples.push(s);
    };
    for round in 1..=95 {
        for run in &base.models {
            for p in 0..250 {
                let prompt = format!("p{p:03}");
                let variant = run.variant.as_deref().unwrap_or_default();
                let key = format!("{}/{prompt}[{variant}]", run.id);
                let mut s = Sample::new(key, &run.id, &prompt, Round::Measured(round));
                s.variant.clone_from(&run.variant);
                push(s, &mut rng, &mut samples);
            }
        }
    }
    let run = &base.models[0];
    let key = format!(
        "{}/*[{},concurrency=8]",
        run.id,
        run.variant.as_deref().unwrap_or_default()
    );
    for n in 0..5000_u32 {
        let mut s = Sample::new(key.clone(), &run.id, "p000", Round::Measured(n + 1));
        s.variant.clone_from(&run.variant);
        s.scheduled_ms = Some(f64::from(n / 8) * 1200.0);
        s.schedule_lag_ms = Some(0.05);
        push(s, &mut rng, &mut samples);
    }
    let mut doc = base.clone();
    let point: Vec<&Sample> = samples.iter().filter(|s| s.key == key).collect();
    doc.load = vec![results::load_stats(
        &key,
        &results::PointLabel::point("concurrency=8"),
        (Some(8), None),
        &point,
        results::ClientCost {
            window_s: 750.0,
            wall_s: 751.0,
            cpu_s: Some(3.0),
            loop_lag_p99_ms: Some(0.2),
        },
        None,
    )];
    doc.cells = results::aggregate(&samples);
    doc.summaries = results::summarize_models(
        &doc.models,
        &samples,
        &dyno::suite::EnergySettings::default(),
    );
    doc.highlights = results::highlights(&doc.summaries, &samples);
    doc.samples = samples;
    doc
}

/// `dyno compare BASE NEW --html FILE` on the committed quickstart and a
/// copy whose Gemma TTFTs are 30% longer: the forest plot draws every
/// model row, hovering one shows its verdict and ratio, the cell rows open
/// behind their toggle, and the REGRESSED rows are marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparison_page_in_a_browser() {
    let _one = BROWSER.lock().await;
    let committed = repo_root().join("results/quickstart/results.json");
    let (mut slower, _) = dyno::results::read(&committed).unwrap();
    for s in slower
        .samples
        .iter_mut()
        .filter(|s| s.model == "gemma3-270m")
    {
        s.ttft_ms = s.ttft_ms.map(|t| t * 1.3);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("new")).unwrap();
    std::fs::write(
        dir.path().join("new/results.json"),
        dyno::results::to_json(&slower).unwrap(),
    )
    .unwrap();
    let page = dir.path().join("compare.html");
    let out = Command::new(env!("CARGO_BIN_EXE_dyno"))
        .arg("compare")
        .arg(&committed)
        .arg(dir.path().join("new"))
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&page).unwrap();
    assert!(text.contains("REGRESSED (confirmed)"), "{text}");
    // The same comparison gives the same bytes.
    let again = dir.path().join("again.html");
    let out = Command::new(env!("CARGO_BIN_EXE_dyno"))
        .arg("compare")
        .arg(&committed)
        .arg(dir.path().join("new"))
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        std::fs::read_to_string(&again).unwrap() == text,
        "two renders differ"
    );
    let Some(b) = browser().await else { return };
    let loaded = open(&b, &page, "compare").await;
    assert_drawn(&loaded);
    let marks: Vec<u64> = loaded.charts.iter().map(|c| c.2).collect();
    assert_eq!(marks, [16, 64], "{loaded:?}");
    let shown = assert_hover(&b, "forest").await;
    assert!(shown.contains("UNCHANGED: 1.000×"), "{shown}");
    // The ratio column sorts; the regressed rows end up last going up.
    assert_sorts(&b, "t-models", 4).await;
    let verdicts = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#t-models tbody tr td.verdict')).map(function (c) { return c.textContent; });",
            vec![],
        )
        .await
        .unwrap();
    let verdicts: Vec<String> = serde_json::from_value(verdicts).unwrap();
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| v.starts_with("REGRESSED"))
            .count(),
        2,
        "{verdicts:?}"
    );
    assert!(
        verdicts[0].starts_with("REGRESSED"),
        "sorted descending by ratio: {verdicts:?}"
    );
    let cells = b
        .client
        .find(Locator::Css("#cells-toggle summary"))
        .await
        .unwrap();
    cells.click().await.unwrap();
    let open_chart = b
        .client
        .find(Locator::Css("[data-set=\"cells\"] svg"))
        .await
        .unwrap();
    assert!(
        open_chart.is_displayed().await.unwrap(),
        "the cell rows did not open"
    );
    screenshot(&b, "compare-cells").await;
}

/// `dyno merge --fleet` of the quickstart as measured on two machines: the
/// page shows both side by side, each with its own selection table, and
/// the CDFs carry a line per machine and model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_in_a_browser_puts_machines_side_by_side() {
    let _one = BROWSER.lock().await;
    let committed = repo_root().join("results/quickstart/results.json");
    let dir = tempfile::tempdir().unwrap();
    let mut parts = Vec::new();
    for name in ["laptop", "ci"] {
        let (mut doc, _) = dyno::results::read(&committed).unwrap();
        doc.environment.machine = Some(name.into());
        let part = dir.path().join(name);
        std::fs::create_dir(&part).unwrap();
        std::fs::write(
            part.join("results.json"),
            dyno::results::to_json(&doc).unwrap(),
        )
        .unwrap();
        parts.push(part);
    }
    let fleet = dir.path().join("fleet");
    let out = Command::new(env!("CARGO_BIN_EXE_dyno"))
        .args(["merge", "--fleet", "--out"])
        .arg(&fleet)
        .args(&parts)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(b) = browser().await else { return };
    let loaded = open(&b, &fleet.join("report.html"), "fleet").await;
    assert_drawn(&loaded);
    let side = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll('.side > div')).map(function (d) {
                return [d.querySelector('h3').textContent, d.querySelectorAll('table.selection thead th').length - 2,
                        Math.round(d.getBoundingClientRect().top)]; });",
            vec![],
        )
        .await
        .unwrap();
    let side: Vec<(String, u64, i64)> = serde_json::from_value(side).unwrap();
    assert_eq!(side.len(), 2, "{side:?}");
    assert_eq!(
        (side[0].0.as_str(), side[1].0.as_str()),
        ("ci", "laptop"),
        "{side:?}"
    );
    assert!(
        side.iter().all(|m| m.1 == 4),
        "four rows a machine: {side:?}"
    );
    assert_eq!(
        side[0].2, side[1].2,
        "the machines are not side by side: {side:?}"
    );
    b.client
        .execute(
            "document.getElementById('machines').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&b, "fleet-machines").await;
    let lines = b
        .client
        .execute("return document.querySelectorAll('[data-chart=\"cdf-ttft\"] path[stroke-width]').length;", vec![])
        .await
        .unwrap();
    assert_eq!(lines, json!(8), "a CDF line per machine and row");
}
