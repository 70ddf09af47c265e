from abalone_core import notebook, sweep
from abalone_core.report import paper


def test_scores_prefer_table3_and_carry_table4():
    scores = paper.scores()
    assert scores[("aapd", "msc")]["macro_f1"] == paper.TABLE3["aapd"]["msc"][1] != paper.TABLE2["aapd"]["msc"][1]
    assert scores[("aapd", "bqueue")] == dict(zip(paper.METRICS, paper.TABLE2["aapd"]["bqueue"]))
    assert scores[("rcv1", "msc-ft")]["silhouette"] == paper.TABLE4["msc-ft"][0]
    assert "silhouette" not in scores[("aapd", "msc")]
    assert all(o in paper.NAMES for _, o in scores)


def test_one_source_for_the_sweep_and_the_notebooks():
    assert not [n for n in dir(sweep) if n.startswith("PAPER")], "the paper's figures live in paper.py only"
    linear = notebook.paper_table("linear").set_index("objective")
    assert linear.at["msc", "AAPD macro_f1"] == paper.TABLE2["aapd"]["msc"][1]
    assert linear.at["frozen", "RCV1 hamming"] == paper.TABLE2["rcv1"]["frozen"][2]
    clustering = notebook.paper_table("clustering").set_index("objective")
    assert clustering.at["base", "RCV1 davies_bouldin"] == paper.TABLE4["base"][1]
