"""The README's benchmark tables are the committed benchmark results, rendered by the benchmark itself."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_step():
    spec = importlib.util.spec_from_file_location("bench_step", ROOT / "benchmarks" / "bench_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_precision_table_renders_speed_ups_only_where_a_float32_row_exists():
    rows = [{"train_layers": "full", "precision": "float32", "msc_step_s": 4.0, "bce_step_s": 3.0,
             "bf16_speedup_msc": 1.0, "bf16_speedup_bce": 1.0},
            {"train_layers": "1", "precision": "bf16", "msc_step_s": 0.5, "bce_step_s": 0.25,
             "bf16_speedup_msc": None, "bf16_speedup_bce": None}]
    lines = _bench_step().precision_markdown(rows).splitlines()
    assert lines[2] == "| whole encoder | float32 | 4.00 | 3.00 | 1.00x | 1.00x |"
    assert lines[3] == "| top 1 | bf16 | 0.50 | 0.25 |  |  |"


def test_readme_precision_table_is_the_committed_benchmark():
    result = json.loads((ROOT / "benchmarks" / "results" / "step_precision.json").read_text())
    table = _bench_step().precision_markdown(result["precision"])
    assert table in (ROOT / "README.md").read_text(), (
        "README.md's float32 / bfloat16 table differs from benchmarks/results/step_precision.json: "
        "paste the table bench_step.py prints")
