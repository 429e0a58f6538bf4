//! Workloads beyond one short prompt: context depth (`context_tokens`),
//! the prompt cache (`cached_tokens`, `cache: false`) and shared prefixes.
//! What a suite declares is checked here; what a real server does with it
//! is measured in `engine_workloads.rs`.

use dyno::plan::{Filter, plan};
use dyno::suite;

use crate::suite::{GOOD, errors_with};
use crate::{Tree, test_env};

fn errors(yaml: &str) -> String {
    errors_with(yaml, &[], &|file| suite::load(file, &test_env))
}

#[test]
fn a_depth_beyond_the_declared_window_is_an_error_at_its_value() {
    let yaml = GOOD.replace(
        "    endpoint: local\n",
        "    endpoint: local\n    context_window: 2048\n",
    ) + "  max_tokens: 64\nmatrix:\n  context_tokens: [0, 512, 4096]\n";
    assert_eq!(
        errors(&yaml),
        "\
error: context_tokens 4096 plus max_tokens 64 is 4160 tokens, more than model `m1` holds (context_window 2048)
  --> DIR/s.yaml:16:28
   |
16 |   context_tokens: [0, 512, 4096]
   |                            ^^^^
   = hint: use at most 1984 context tokens, or a larger window (llama-server `--ctx-size`)
"
    );
    // Within the window, the suite is valid.
    let fits = yaml.replace("4096]", "1984]");
    assert_eq!(errors(&fits), "(valid)");
}

#[test]
fn depth_and_cache_are_axes_of_the_cell_key() {
    let yaml = GOOD.to_string() + "matrix:\n  context_tokens: [0, 2048]\n  cache: [true, false]\n";
    let tree = Tree::new(&[("s.yaml", &yaml)]);
    let suite = suite::load(&tree.path("s.yaml"), &test_env).unwrap();
    let cells = plan(&suite, &Filter::default()).unwrap();
    let keys: std::collections::BTreeSet<String> =
        cells.iter().map(|c| c.key.to_string()).collect();
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        [
            "m1/p1[context_tokens=0,cache=false]",
            "m1/p1[context_tokens=0,cache=true]",
            "m1/p1[context_tokens=2048,cache=false]",
            "m1/p1[context_tokens=2048,cache=true]",
        ],
    );
    let deep = cells
        .iter()
        .find(|c| c.key.contains("2048,cache=false"))
        .unwrap();
    assert_eq!(deep.params().context_tokens, 2048, "{deep:?}");
    assert!(!deep.params().cache, "{deep:?}");
}
