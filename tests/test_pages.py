"""Results pages from templates: placeholders filled from summaries, typed numbers refused."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.pages import fill, lookup, render_page, typed_numbers

SUMMARY = {
    "config": {"eps_grid": [1e-4, 1e-6, 1e-8], "seeds": 10},
    "rows": [
        {"family": 0, "method": "greedy-local", "verdict": "exponential",
         "c": [0.01634, [0.01391, 0.01862]], "p": [3.1, [2.9, 3.3]],
         "n_eps": [1.0, 32.0, None], "steps": 3000},
        {"family": 0, "method": "fixed-step", "verdict": "power",
         "c": [0.002, [0.001, 0.003]], "p": [1.943, [1.912, 1.961]],
         "n_eps": [4.0, None, None], "steps": 3000},
        {"family": 1, "method": "greedy-local", "error": "too few points", "n_eps": [1.0, 2.0, 3.0],
         "steps": 40},
    ],
}  # fmt: skip
SUMMARY["families"] = [{"spec": {"samples": 50, "dim": 10}}, {"spec": {"samples": 5, "dim": 10}}]
SUMMARIES = {"sims-rates": SUMMARY}


def test_paths_pick_keys_indices_and_list_elements_by_their_fields():
    assert lookup(SUMMARY, "config/seeds") == 10
    assert lookup(SUMMARY, "rows/family=0,method=fixed-step/p/1/0") == 1.912
    assert lookup(SUMMARY, "rows/2/steps") == 40
    with pytest.raises(ValueError, match="2 elements with family=0"):
        lookup(SUMMARY, "rows/family=0/verdict")
    with pytest.raises(ValueError, match="no 'config/missing': at 'missing'"):
        lookup(SUMMARY, "config/missing")


def test_placeholders_are_filled_with_values_and_views():
    text = (
        "{{ sims-rates config/seeds }} seeds; c = {{ sims-rates rows/0/c/0 .2f }}; "
        "{{ sims-rates rate 0 greedy-local }}; {{ sims-rates rate 0 fixed-step }}; "
        "{{ sims-rates rate 1 greedy-local }}; needed {{ sims-rates needed 0 greedy-local }}, "
        "{{ sims-rates needed 0 fixed-step 1e-4 }}"
    )
    assert fill(text, SUMMARIES, "page.md") == (
        "10 seeds; c = 0.02; exponential, c = 0.0163 [0.0139, 0.0186]; "
        "power, p = 1.94 [1.91, 1.96]; no fit; needed 1 / 32 / > 3000, 4"
    )


def test_counts_and_spans_over_families():
    text = (
        "{{ sims-rates count greedy-local exponential }} of {{ sims-rates count greedy-local any }}"
        ", {{ sims-rates count greedy-local any samples=5 }} with m = 5; "
        "{{ sims-rates span greedy-local c exponential dim=10 }}; "
        "{{ sims-rates span fixed-step p any }}"
    )
    assert fill(text, SUMMARIES, "p.md") == "1 of 2, 1 with m = 5; 0.016 to 0.016; 1.9 to 1.9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ sims-other config/seeds }}", "no summary sims-other.json"),
        ("{{ sims-rates }}", "a placeholder is"),
        ("{{ sims-rates config/seeds .2f x }}", "one FORMAT at most"),
        ("{{ sims-rates needed 0 greedy-local 1e-5 }}", "not in the run's eps grid"),
        ("{{ sims-rates rate 0 }}", "view rate: wrong arguments"),
        ("{{ sims-rates span greedy-local q any }}", "SYMBOL is c or p"),
        ("{{ sims-rates span fixed-step c exponential }}", "no family where fixed-step's"),
        ("{{ sims-rates count omp power colour=red }}", "no field 'colour'"),
        ("{{ sims-rates config/seeds .2q }}", "Unknown format code"),
    ],
)
def test_bad_placeholders_are_named(text, message):
    with pytest.raises(ValueError, match=message) as error:
        fill(f"before {text} after", SUMMARIES, "results/pages/x.md")
    assert "results/pages/x.md" in str(error.value)


def test_only_decimals_outside_placeholders_and_code_count_as_typed():
    text = (
        "Statement 4 and n^-2, 10 seeds, eps 1e-6; `--flops 0.5` and\n"
        "```sh\nrun --keep 0.775\n```\n"
        "{{ sims-rates rows/0/c/0 .4f }} but 0.0163 and 1.5 typed."
    )
    assert typed_numbers(text) == ["0.0163", "1.5"]


def test_a_page_says_it_is_written_and_refuses_typed_numbers(tmp_path):
    template = tmp_path / "rates.md"
    template.write_text("# Rates\n\n{{ sims-rates rate 0 greedy-local }}\n")
    page = render_page(template, SUMMARIES)
    assert page.startswith("<!-- written by `make results` from results/pages/rates.md")
    assert page.endswith("# Rates\n\nexponential, c = 0.0163 [0.0139, 0.0186]\n")
    template.write_text("c = 0.0163\n")
    with pytest.raises(ValueError, match=r"rates\.md: decimal numbers typed by hand \(0\.0163\)"):
        render_page(template, SUMMARIES)


def test_above_bound_compares_each_instance_with_statement_4_at_the_upper_margin():
    summary = {
        "families": [{"spec": {"samples": 5}}, {"spec": {"samples": 50}}],
        "instances": [
            {"family": 0, "c": 0.2, "x_hi": 1e-3},  # bound -log(1 - 1e-3) = 1.0005e-3: 200x
            {"family": 0, "c": 0.05, "x_hi": 1e-3},  # 50x
            {"family": 1, "c": 3.0, "x_hi": 1e-4},  # 30,000x
            {"family": 1, "c": 0.0, "x_hi": 1e-4},  # no positive fit: left out
            {"family": 1, "c": 1.0, "x_hi": 0.0},  # r = 0: left out
        ],
    }
    assert fill("{{ s above-bound }}", {"s": summary}, "p.md") == (
        "50 times (median 200 times; 3 instances)"
    )
    assert fill("{{ s above-bound samples=5 }}", {"s": summary}, "p.md") == (
        "50 times (median 120 times; 2 instances)"
    )


def test_comparison_cells_and_tables():
    seeds = {"rows": {
        "omp": {"accuracy": {"mean": 0.9513, "std": 0.0104, "values": [0.94, 0.95, 0.96]},
                "flops": {"mean": 0.5, "std": 0.0, "values": [0.5]}},
        "omp+refit": {"accuracy": {"mean": 0.96, "std": 0.0, "values": [0.96, 0.96]},
                      "flops": {"mean": 0.4998, "std": 0.0, "values": [0.4998]}},
    }}  # fmt: skip
    one = {"rows": {"omp": {"agreement": 0.075, "kl": 1.8889}}}
    summaries = {"m": seeds, "e": one}
    assert fill("{{ m cell omp accuracy }}; {{ m cell omp flops }}; {{ e cell omp kl }}",
                summaries, "p.md") == "0.951 +- 0.010; 0.500; 1.889"  # fmt: skip
    assert fill("{{ m table accuracy,flops omp+refit }}", summaries, "p.md") == (
        "| method | accuracy | flops |\n| --- | --- | --- |\n| omp+refit | 0.960 +- 0.000 | 0.500 |"
    )
    with pytest.raises(ValueError, match="no 'rows/tp-taylor/kl'"):
        fill("{{ e table kl omp,tp-taylor }}", summaries, "p.md")


def test_aggregates_over_wildcard_paths_and_the_mlp_table():
    deep = {
        "config": {"methods": ["greedy-local", "global-imitation"]},
        "families": [
            {"label": "3-layer", "methods": {
                "greedy-local": {"agreement": [0.6, 0.7], "change": [0.7, 0.6], "fewer": 0},
                "global-imitation": {"agreement": [0.8, 0.7], "change": [0.5, 0.6], "fewer": 2},
            }},
            {"label": "4-layer", "methods": {
                "greedy-local": {"agreement": [0.4, 0.4], "change": [0.8, 0.8], "fewer": 0},
                "global-imitation": {"agreement": [0.6, 0.5], "change": [0.6, None], "fewer": 1},
            }},
        ],
    }  # fmt: skip
    text = (
        "{{ d sum families/*/methods/global-imitation/fewer }} of "
        "{{ d len families/*/methods/greedy-local/agreement/* }}; "
        "{{ d mean families/*/methods/greedy-local/agreement .3f }}; "
        "{{ d range families/*/methods/*/change .1f }}; "
        "{{ d len families/1/methods/global-imitation/change }}"
    )
    assert fill(text, {"d": deep}, "p.md") == "3 of 4; 0.525; 0.5 to 0.8; 1"
    assert fill("{{ d mlp-table agreement change }}", {"d": deep}, "p.md") == (
        "| MLP family | greedy-local | global-imitation |\n| --- | --- | --- |\n"
        "| 3-layer | 0.65 / 0.65 | 0.75 / 0.55 |\n| 4-layer | 0.40 / 0.80 | 0.55 / 0.60 |"
    )
    with pytest.raises(ValueError, match="'3-layer' is not a number"):
        fill("{{ d sum families/*/label }}", {"d": deep}, "p.md")


def test_the_explain_view_is_the_held_out_r2_of_sims_explain():
    from sims.spectrum import explain, held_out

    rng = np.random.default_rng(0)
    table = [
        {"activation": a, "log_rank": float(r), "spectral_slope": float(s),
         "decades": float(2 * r + 0.1 * s + rng.normal(0, 0.1))}
        for a in ("relu", "tanh") for r, s in rng.uniform(0, 3, (6, 2))
    ]  # fmt: skip
    summary = {"explain": {"at50": {"table": table, "censored": []}}}
    expected = explain(table, ("log_rank",), ~held_out(table, "activation=tanh"), "decades")
    text = fill("{{ s explain at50 activation=tanh log_rank }}", {"s": summary}, "p.md")
    assert text == f"{expected.test_r2:.2f}" and expected.test_r2 > 0.9
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        fill("{{ s explain at50 colour=red log_rank }}", {"s": summary}, "p.md")


def test_the_bench_view_gives_one_group_of_a_benchmark_as_its_table():
    """``bench GROUP``: that group's table of a benchmark summary; a group it lacks, or a
    summary that is not a benchmark's, named."""
    bench = {"experiment": "bench-torch", "rows": {
        "surgery": [{"network": "resnet18", "chains": 8, "ours_s": 0.04, "torch_pruning_s": 0.1,
                     "torch_pruning_over_ours": 2.5, "same_shapes": True}]}}  # fmt: skip
    summaries = SUMMARIES | {"bench-torch": bench}
    text = fill("{{ bench-torch bench surgery }}", summaries, "x.md")
    assert text.splitlines()[2] == "| resnet18 | 8 | 0.040 | 0.100 | 2.5 | True |"
    with pytest.raises(ValueError, match="no group 'gram' in bench-torch"):
        fill("{{ bench-torch bench gram }}", summaries, "x.md")
    with pytest.raises(ValueError, match="not a benchmark's summary"):
        fill("{{ sims-rates bench gram }}", summaries, "x.md")


RATES = {"eps_grid": [0.1, 0.01], "layers": [
    {"chain": "a", "N": 10, "rank": [9, 9], "methods": {
        "greedy-local": {"verdict": "exponential", "c": [0.5, [0.4, 0.6]], "p": [1.0, [0.9, 1.1]],
                         "n_eps": [2.0, 6.0]},
        "omp": {"verdict": "power", "c": [0.2, [0.1, 0.3]], "p": [0.5, [0.4, 0.6]],
                "n_eps": [1.0, 3.0]}}},
    {"chain": "b", "N": 20, "rank": [18, 19], "methods": {
        "greedy-local": {"verdict": "unresolved", "c": [0.1, [0.05, 0.15]],
                         "p": [1.5, [1.2, 1.8]], "n_eps": [4.0, None]},
        "omp": {"error": "only 2 usable points", "n_eps": [2.0, 8.0]}}},
]}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ r verdicts greedy-local }}", "exponential in 1, unresolved in 1 of 2 layers"),
        ("{{ r verdicts omp }}", "power law in 1, no fit in 1 of 2 layers"),
        ("{{ r layer-span greedy-local cN }}", "2 to 5"),
        ("{{ r layer-span greedy-local p unresolved }}", "1.5 to 1.5"),
        ("{{ r needed-ratio omp greedy-local 0.1 }}", "0.5 (from 0.5 to 0.5 over 2 layers)"),
        ("{{ r needed-ratio omp greedy-local 0.01 }}", "0.5 (from 0.5 to 0.5 over 1 layer)"),
    ],
)
def test_rates_views_count_span_and_compare_the_layers(text, expected):
    assert fill(text, {"r": RATES}, "x.md") == expected


def test_the_layer_table_and_bad_rates_placeholders():
    table = fill("{{ r layer-table greedy-local,omp }}", {"r": RATES}, "x.md").splitlines()
    assert table[2] == ("| a | 10 | 9 | exponential, c = 0.5 [0.4, 0.6] | "
                        "power, p = 0.5 [0.4, 0.6] |")  # fmt: skip
    assert table[3] == ("| b | 20 | 18-19 | unresolved, c = 0.1 [0.05, 0.15], "
                        "p = 1.5 [1.2, 1.8] | no fit |")  # fmt: skip
    for text, message in [
        ("{{ r verdicts random }}", "no layer was run with 'random'"),
        ("{{ r needed-ratio omp greedy-local 0.5 }}", "not in the run's eps grid"),
        ("{{ r layer-span omp q }}", "SYMBOL is c, p or cN"),
        ("{{ sims-rates verdicts omp }}", "not a rates summary"),
    ]:
        with pytest.raises(ValueError, match=message):
            fill(text, SUMMARIES | {"r": RATES}, "x.md")


def _instances(rng: np.random.Generator, count: int, slope: float) -> list[dict]:
    """Rows with every feature of sims.spectrum and decades = slope * (log_rank - 2.5) + 5 +
    noise (log_rank from 1 to 4: the mean is 5 for any slope)."""
    rows = []
    for r in rng.uniform(1, 4, count):
        features = {"log_rank": r, "log_effective_rank": r / 2 + rng.normal(0, 0.3),
                    "spectral_slope": rng.uniform(0, 3), "log_d_over_upper_r": rng.uniform(2, 9),
                    "log_d_over_lower_r": rng.uniform(2, 9)}  # fmt: skip
        rows.append(features | {"decades": slope * (r - 2.5) + 5 + rng.normal(0, 0.05)})
    return rows


@pytest.mark.parametrize(("slope", "transfers"), [(2.0, True), (-2.0, False)])
def test_the_transfer_view_carries_a_decay_model_between_generated_and_real_layers(
    slope, transfers
):
    """Generated instances whose decades grow with log_rank: real layers that follow the same
    law are predicted in both directions (R^2 near 1 on log_rank), real layers that follow the
    opposite law are not (R^2 < -1: worse than the training mean); a resample without decades
    (too few steps) or with an unknown feature is left out of the sets that need it."""
    rng = np.random.default_rng(3)
    generated = {"explain": {"at50": {"table": _instances(rng, 30, 2.0), "censored": []}}}
    real = _instances(rng, 12, slope)
    real[0]["decades"] = None
    real[1]["log_d_over_upper_r"] = None
    layers = [{"chain": "a", "N": 64, "methods": {}, "instances": real[:6]},
              {"chain": "b", "N": 96, "methods": {}, "instances": real[6:]}]  # fmt: skip
    summaries = {"g": generated, "r": {"layers": layers}}
    lines = fill("{{ g transfer at50 r }}", summaries, "x.md").splitlines()
    assert lines[0].startswith("| features | generated -> real")
    rank = next(line for line in lines if line.startswith("| log_rank |")).split("|")
    forward, back = (float(cell.split()[0]) for cell in rank[2:4])
    assert (forward > 0.9 and back > 0.9) if transfers else (forward < -1 and back < -1)
    assert "(30 -> 11)" in rank[2] and "(11 -> 30)" in rank[3]
    upper = next(line for line in lines if line.startswith("| log_d_over_upper_r |"))
    assert "(30 -> 10)" in upper
    for text, message in [
        ("{{ g transfer eps1e-06 r }}", "no instance table 'eps1e-06' with the decades"),
        ("{{ g transfer at50 q }}", "no summary q.json"),
        ("{{ g transfer at50 g }}", "not a rates summary with each resample's features"),
    ]:
        with pytest.raises(ValueError, match=message):
            fill(text, summaries, "x.md")


def test_one_transfer_r2_is_the_cell_of_the_transfer_table():
    rng = np.random.default_rng(4)
    generated = {"explain": {"at50": {"table": _instances(rng, 20, 2.0), "censored": []}}}
    real = {
        "layers": [{"chain": "a", "N": 64, "methods": {}, "instances": _instances(rng, 8, 1.5)}]
    }
    summaries = {"g": generated, "r": real}
    spectrum = "log_rank + log_effective_rank + spectral_slope"
    table = fill("{{ g transfer at50 r }}", summaries, "x.md").splitlines()
    row = next(line for line in table if line.startswith(f"| {spectrum} |")).split("|")
    for direction, cell in (("to-real", row[2]), ("to-generated", row[3])):
        placeholder = f"g transfer-r2 at50 r {spectrum.replace(' + ', '+')} {direction}"
        text = fill("{{ " + placeholder + " }}", summaries, "x.md")
        assert text == cell.split()[0]
    with pytest.raises(ValueError, match="DIRECTION is to-real or to-generated"):
        fill("{{ g transfer-r2 at50 r log_rank sideways }}", summaries, "x.md")
