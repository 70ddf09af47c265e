"""The objectives' one table: every module asks it, and adding an objective is one entry."""
import subprocess

import pytest
import torch

from abalone_core.method import objectives
from abalone_core.method.losses import contrastive_loss


def test_the_table_says_what_each_objective_is():
    assert objectives.get("frozen").kind == "untrained" and not objectives.get("frozen").trains
    msc, base = objectives.get("msc"), objectives.get("base")
    assert (msc.queue, msc.prototypes, base.queue, base.prototypes) == (True, True, False, False)
    assert msc.selection == "val_loss_in_batch" and objectives.get("bce").selection == "val_micro_f1"
    assert objectives.get("tfidf-cut").text == "cut" and not objectives.get("tfidf-linear").encoder
    assert objectives.row_kind("msc-ft") == "fine-tuning" and objectives.row_kind("db") == "classifier"
    with pytest.raises(ValueError, match="objective must be one of"):
        objectives.get("mcs")
    with pytest.raises(ValueError, match="needs its loss"):
        objectives.Objective("x", "contrastive")


@pytest.fixture
def half_msc():
    """A new objective, added the only way there is: its loss and one entry of the table."""
    def loss(z, y, *, temperature, beta, prototypes=None, queue_z=None, queue_y=None):
        return 0.5 * contrastive_loss(z, y, variant="msc", temperature=temperature, beta=beta,
                                      prototypes=prototypes, queue_z=queue_z, queue_y=queue_y)

    objectives.register(objectives.Objective("half-msc", "contrastive", loss, queue=True, prototypes=True))
    yield "half-msc"
    del objectives.TABLE["half-msc"]


def test_an_objective_added_to_the_table_trains_and_is_scored_like_the_others(tiny_config, half_msc):
    from abalone_core.method.model import ContrastiveModel
    from abalone_core.training.runs import run
    from helpers import tiny_encoder

    model = ContrastiveModel(tiny_encoder(), 6, half_msc, queue_size=8)
    assert model.queue is not None and model.prototypes is not None
    cfg = tiny_config(objective=half_msc, max_steps=4, eval_every=2)
    assert cfg.contrastive and cfg.resolved_schedule == "cosine"
    m = run(cfg, progress=False)
    assert m["objective"] == half_msc and m["selected_candidate"] in ("last", "best_train_loss", "best_val_loss")
    assert m["convergence"]["metric"] == "val_loss_in_batch" and 0 <= m["test"]["macro_f1"] <= 100
    torch.manual_seed(0)
    z, y = torch.randn(6, 4), (torch.rand(6, 3) < 0.5).float()
    y[:, 0] = 1
    p = torch.randn(3, 4)
    full = contrastive_loss(z, y, variant="msc", temperature=0.1, beta=0.1, prototypes=p)
    assert objectives.get(half_msc).loss(z, y, temperature=0.1, beta=0.1, prototypes=p) == pytest.approx(0.5 * full.item())


def test_no_module_decides_an_objectives_kind_by_its_name():
    """The kind of an objective is read from the table: no comparison with an objective's name
    (or the name constants) is left in the package outside the table and the configuration."""
    found = subprocess.run(
        ["git", "grep", "-n", "-E", r"objective (==|!=|in|not in) (\"|')?(frozen|tfidf|FROZEN|TFIDF|SUPERVISED|CONTRASTIVE)",
         "--", "abalone_core", "notebooks/run.py", "scripts"], capture_output=True, text=True)
    assert found.stdout == "", found.stdout
